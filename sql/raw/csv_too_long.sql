-- How many lines DuckDB's CSV reader refused for their size (csv_rejects, filled by events.sql). It counts the
-- blank lines before a line in that size, so a record within lines.MAX_RECORD_BYTES can be refused: the landing
-- then reads the file line by line (pipeline.ingest.readers.events_direct). Grain: one row.
select count(*) as refused
from csv_rejects
where csv_rejects.error_type = 'LINE SIZE OVER MAXIMUM'
