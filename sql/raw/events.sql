-- raw.events: the day's clickstream events exactly as received from the CSV file.
-- Grain: one row per accepted CSV record; partition: load_date (in the path).
-- Columns are the file's own header names, all text (extra columns kept as they are): $columns maps
-- each header name to VARCHAR. Lines the reader rejects go to its csv_rejects table, which the
-- landing task records in audit.rejected_lines.
with csv_rows as (
    select *
    from read_csv(
        $path, columns = $columns, header = true, auto_detect = false, delim = ',', quote = '"',
        escape = '"', store_rejects = true, rejects_table = 'csv_rejects', rejects_scan = 'csv_scans',
        null_padding = false
    )
),

final as (
    select
        csv_rows.*,
        $source_file as _source_file,
        -- an empty OVER keeps the reader's (file) order: the number of the record among accepted lines
        (row_number() over ())::bigint as _row_number,
        $ingested_at::timestamptz as _ingested_at,
    from csv_rows
)

select * from final
