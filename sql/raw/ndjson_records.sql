-- The records of an NDJSON file read line by line (the line-safe path, pipeline/ingest/lines.py):
-- every non-blank UTF-8 line of ndjson_lines parsed on its own. Grain: one row per record (line).
-- json_type is NULL when the line is not valid JSON.
select
    ndjson_lines.line_number,
    ndjson_lines.text as record,
    case when json_valid(ndjson_lines.text) then json_type(ndjson_lines.text) end as json_type,
from ndjson_lines
