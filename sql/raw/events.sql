-- raw.events: the day's clickstream events exactly as received from the CSV file.
-- Grain: one row per accepted CSV record; partition: load_date (in the path).
-- Columns are the file's own header names, all text (extra columns kept as they are); lines the
-- reader rejected are recorded in audit.rejected_lines by the landing task.
with csv_rows as (
    select * from csv_source
),

final as (
    select
        csv_rows.*,
        $source_file as _source_file,
        (row_number() over ())::bigint as _row_number,
        $ingested_at::timestamptz as _ingested_at,
    from csv_rows
)

select * from final
