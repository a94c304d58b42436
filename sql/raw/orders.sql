-- raw.orders: the day's orders exactly as received, one row per JSON object in the source file.
-- Grain: one row per object record of the source file; partition: load_date (in the path).
-- Reads json_records (sql/raw/json_records.sql or ndjson_records.sql): records that are not objects
-- are rejected into audit.rejected_lines instead (sql/raw/json_rejected.sql). Every field is kept as
-- text (casting problems surface in staging with a reason), a JSON number as written (json_number_text in
-- sql/raw/macros.sql: not as the double DuckDB reads it); `record` keeps the whole object, nested
-- and unknown fields included; _row_number is the record's position in the file (array element, or
-- NDJSON line, blank lines counted, as audit.rejected_lines numbers them), so rejected records leave gaps.
with objects as (
    select
        json_records.record,
        json_records.line_number as row_number,
    from json_records
    where json_records.json_type = 'OBJECT' and not json_records.is_too_large
),

fields as (
    select
        -- one parse of each object for all seven fields (a path list), not one per field
        json_extract_string(
            objects.record,
            ['$.order_id', '$.user_id', '$.product_id', '$.quantity', '$.price', '$.timestamp', '$.status']
        ) as field_values,
        objects.record,
        objects.row_number,
    from objects
),

final as (
    select
        json_number_text(fields.record, 'order_id', fields.field_values[1]) as order_id,
        json_number_text(fields.record, 'user_id', fields.field_values[2]) as user_id,
        json_number_text(fields.record, 'product_id', fields.field_values[3]) as product_id,
        json_number_text(fields.record, 'quantity', fields.field_values[4]) as quantity,
        json_number_text(fields.record, 'price', fields.field_values[5]) as price,
        json_number_text(fields.record, 'timestamp', fields.field_values[6]) as "timestamp",
        fields.field_values[7] as status,
        fields.record,
        $source_file as _source_file,
        fields.row_number::bigint as _row_number,
        $ingested_at::timestamptz as _ingested_at,
    from fields
)

select * from final
