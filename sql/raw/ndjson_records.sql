-- The records of an NDJSON file read line by line (the line-safe path, pipeline/ingest/lines.py):
-- every non-blank UTF-8 line of ndjson_lines parsed on its own. Grain: one row per record (line).
-- json_type is NULL when the line is not valid JSON. record_bytes: the line's size without a CR ending it;
-- is_too_large: over $max_record_bytes (lines.MAX_RECORD_BYTES), so rejected.
select
    ndjson_lines.line_number,
    ndjson_lines.text as record,
    case when json_valid(ndjson_lines.text) then json_type(ndjson_lines.text) end as json_type,
    strlen(rtrim(ndjson_lines.text, chr(13))) as record_bytes,
    strlen(rtrim(ndjson_lines.text, chr(13))) > $max_record_bytes as is_too_large,
from ndjson_lines
