-- audit.rejected_lines for a JSON source (orders, products, users): the records that were not landed.
-- Grain: one row per rejected record; partition: load_date / source_table=<source>.
-- A record that is not a JSON object (a number, string, boolean, null or array), an NDJSON line that
-- is not valid JSON, a record over $max_record_bytes (lines.MAX_RECORD_BYTES; its message is $too_large,
-- lines.TOO_LARGE), and the lines the landing could not decode (line_rejects: invalid UTF-8).
-- line_number: the NDJSON line, or for a JSON array the element's position in the array.
with not_objects as (
    select
        json_records.line_number,
        json_records.record as raw_text,
        case
            when json_records.is_too_large then format($too_large, json_records.record_bytes, $max_record_bytes)
            when json_records.json_type is null then 'not valid JSON (one JSON object per line)'
            else 'a JSON ' || case
                when json_records.json_type = 'VARCHAR' then 'string'
                when json_records.json_type in ('BIGINT', 'UBIGINT', 'DOUBLE') then 'number'
                else lower(json_records.json_type)
            end || ', not an object: every record must be a JSON object'
        end as error,
    from json_records
    where json_records.json_type is distinct from 'OBJECT' or json_records.is_too_large
),

landing_rejects as (
    select
        line_rejects.line_number,
        line_rejects.raw_text,
        line_rejects.error,
    from line_rejects
),

rejected as (
    select * from not_objects
    union all
    select * from landing_rejects
),

final as (
    select
        $source_file as source_file,
        rejected.line_number,
        -- Postgres text cannot hold NUL: shown as U+FFFD
        replace(rejected.raw_text, chr(0), chr(65533)) as raw_text,
        case when $json_format = 'array' then 'array element: ' else '' end || rejected.error as error,
    from rejected
)

select * from final
order by final.line_number
