-- raw.products / raw.users: a weekly catalog snapshot exactly as received (API pages or file).
-- Grain: one row per catalog object record; partition: load_date = the snapshot's date (in the path).
-- Reads json_records (sql/raw/json_records.sql): elements that are not objects are rejected into
-- audit.rejected_lines instead. `record` keeps the whole object; staging extracts fields from either
-- source shape.
with objects as (
    select
        json_records.record,
        json_records.line_number as row_number,
    from json_records
    where json_records.json_type = 'OBJECT' and not json_records.is_too_large
),

final as (
    select
        objects.record,
        $source_kind as _source_kind,
        $source_file as _source_file,
        objects.row_number::bigint as _row_number,
        $ingested_at::timestamptz as _ingested_at,
    from objects
)

select * from final
