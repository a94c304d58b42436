-- The records of a JSON source file as DuckDB reads it directly (an array's elements, or NDJSON
-- lines when every line is one JSON value): a temp table the landing fills once, before they become
-- raw rows (objects) or rejected records (anything else). Grain: one row per record of the file.
-- line_number: an array element's position, or the NDJSON line (the landing takes this path for
-- NDJSON only when the file has no blank line, so a record's ordinal is its line).
-- record_bytes: the record's size as written; is_too_large: over $max_record_bytes (lines.MAX_RECORD_BYTES),
-- so rejected.
select
    records.ordinality::bigint as line_number,
    records.json::varchar as record,
    -- the reader returns valid JSON values: an object starts with '{' (no second parse for the common case)
    case when starts_with(records.json::varchar, '{') then 'OBJECT' else json_type(records.json) end as json_type,
    strlen(records.json::varchar) as record_bytes,
    strlen(records.json::varchar) > $max_record_bytes as is_too_large,
from read_json_objects(
    $path, format = $json_format, compression = $compression, maximum_object_size = $maximum_object_size
) with ordinality as records
