-- raw.products / raw.users: a weekly catalog snapshot exactly as received (API pages or file).
-- Grain: one row per catalog record; partition: load_date = the snapshot's date (in the path).
-- `record` keeps the whole object; staging extracts fields from either source shape.
with objects as (
    select
        json as record,
        ordinality as row_number
    from read_json_objects($path, format = 'array') with ordinality
),

final as (
    select
        objects.record::varchar as record,
        $source_kind as _source_kind,
        $source_file as _source_file,
        objects.row_number::bigint as _row_number,
        $ingested_at::timestamptz as _ingested_at,
    from objects
)

select * from final
