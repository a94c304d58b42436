-- The records of a JSON source file as DuckDB reads it directly (an array's elements, or NDJSON
-- lines when every line is one JSON value): a temp table the landing fills once, before they become
-- raw rows (objects) or rejected records (anything else). Grain: one row per record of the file.
-- line_number: an array element's position, or the NDJSON line (the landing takes this path for
-- NDJSON only when the file has no blank line, so a record's ordinal is its line).
select
    records.ordinality::bigint as line_number,
    records.json::varchar as record,
    -- the reader returns valid JSON values: an object starts with '{' (no second parse for the common case)
    case when starts_with(records.json::varchar, '{') then 'OBJECT' else json_type(records.json) end as json_type,
from read_json_objects($path, format = $json_format, compression = $compression) with ordinality as records
