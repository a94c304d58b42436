-- raw.events: the day's clickstream events exactly as received from the CSV file.
-- Grain: one row per accepted CSV line; partition: load_date (in the path).
-- Columns are the file's own header names, all text (extra columns kept as they are; a name the
-- lineage or the partition uses is renamed by the landing, e.g. _row_number -> csv__row_number):
-- $columns maps each header name to VARCHAR. Lines the reader rejects go to its csv_rejects table,
-- which sql/raw/events_rejected.sql turns into audit.rejected_lines. The landing checks that
-- accepted + rejected lines = the file's records (one per line), see pipeline/ingest/lines.py.
-- $parallel: false on the line-safe path. DuckDB's parallel reader (2.0) drops every line after a
-- buffer boundary (8,000,000 bytes) that a rejected line straddles; the landing's accounting sees it
-- and reads the file again on the line-safe path, one thread, which does not. A line over
-- lines.MAX_RECORD_BYTES is rejected by the line-safe path, with its whole text (the reader keeps 10,000
-- characters of a line it rejects); the landing takes it when the file has such a line (lines.Scan).
-- $max_line_size: room for every line the limit allows, its line end included (readers.READER_LINE_BYTES); the
-- reader counts the blank lines before a line in its size, and the landing reads the file line by line then.
with csv_rows as (
    select *
    from read_csv(
        $path, columns = $columns, header = true, auto_detect = false, delim = ',', quote = '"',
        escape = '"', compression = $compression, store_rejects = true, rejects_table = 'csv_rejects',
        rejects_scan = 'csv_scans', null_padding = false, parallel = $parallel, max_line_size = $max_line_size
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
