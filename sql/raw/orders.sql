-- raw.orders: the day's orders exactly as received, one row per JSON record in the source file.
-- Grain: one row per record of the source file; partition: load_date (in the path).
-- Every field is kept as text (casting problems surface in staging with a reason); `record` keeps
-- the whole object, nested and unknown fields included.
with objects as (
    select
        json as record,
        ordinality as row_number
    from read_json_objects($path, format = $json_format) with ordinality
),

final as (
    select
        json_extract_string(objects.record, '$.order_id') as order_id,
        json_extract_string(objects.record, '$.user_id') as user_id,
        json_extract_string(objects.record, '$.product_id') as product_id,
        json_extract_string(objects.record, '$.quantity') as quantity,
        json_extract_string(objects.record, '$.price') as price,
        json_extract_string(objects.record, '$.timestamp') as "timestamp",
        json_extract_string(objects.record, '$.status') as status,
        objects.record::varchar as record,
        $source_file as _source_file,
        objects.row_number::bigint as _row_number,
        $ingested_at::timestamptz as _ingested_at,
    from objects
)

select * from final
