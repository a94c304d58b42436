-- Line accounting: every record of a source file is a raw row or a rejected record. Two counts join
-- audit.reconciliation (the file's records and those rejected at landing) and its balance rule
-- covers them; audit.rejected_lines now also holds JSON records that are not objects and NDJSON
-- lines that are not JSON (source_table orders, products, users). Rows published before this
-- migration have NULL in the new columns.
alter table audit.reconciliation add column if not exists source_records bigint;
alter table audit.reconciliation add column if not exists rejected_count bigint;

comment on table audit.reconciliation is
    'Record-count reconciliation of a source from its file to staging: source_records = raw_count + rejected_count and raw_count = staged_count + quarantined_count + duplicate_count. Grain: one row per source_table per load_date.';
comment on column audit.reconciliation.source_records is
    'Records in the source file: CSV and NDJSON lines that are not blank (header excluded), or JSON array elements. NULL for dates published before line accounting.';
comment on column audit.reconciliation.rejected_count is
    'Records of the file rejected at landing, each a row of audit.rejected_lines. NULL for dates published before line accounting.';
comment on column audit.reconciliation.is_balanced is
    'source_records = raw_count + rejected_count and raw_count = staged_count + quarantined_count + duplicate_count.';

comment on table audit.rejected_lines is
    'Records of a source file that were not landed: CSV lines the reader could not split into the header''s columns (or whose quoting runs past the line), NDJSON lines that are not JSON, JSON records that are not objects. Grain: one row per rejected line (or record) per source per load_date.';
comment on column audit.rejected_lines.source_table is 'Raw source the file belongs to (events, orders, products, users).';
comment on column audit.rejected_lines.line_number is
    'Line number in the file (1-based, every physical line counted, a CSV header included); for a JSON array file, the element''s position in the array.';
comment on column audit.rejected_lines.raw_text is 'The line (or JSON record) as it was read; invalid UTF-8 and NUL characters shown as U+FFFD.';
comment on column audit.rejected_lines.error is 'Why it was not landed.';
