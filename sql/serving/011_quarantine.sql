-- Raw payloads of rejected data are for operators. The quarantined records and the rejected lines
-- (whole raw records and lines, unknown fields included: card numbers, e-mail addresses ...) move
-- to schema `quarantine`, which ecomm_reader has no USAGE on; audit.bad_records and
-- audit.rejected_lines become views of them that carry no value taken from the rejected input:
-- no raw_record / raw_text, no failing_value, no message or error text (they quote values), no
-- record_id (a rejected record's id is input too) and no source_file.
-- Grain: as the tables (see their comments).
create schema if not exists quarantine;

comment on schema quarantine is
    'Rejected input kept whole for operators (raw records and lines, failing values); not for BI: ecomm_reader has no USAGE. BI reads audit.bad_records and audit.rejected_lines.';

do $$
begin
    if to_regclass('quarantine.bad_records') is null then
        alter table audit.bad_records set schema quarantine;
    end if;
    if to_regclass('quarantine.rejected_lines') is null then
        alter table audit.rejected_lines set schema quarantine;
    end if;
end
$$;

comment on table quarantine.bad_records is
    'Raw rows that staging quarantined, with the reason and the whole raw record (operators only; BI reads the view audit.bad_records). Grain: one row per quarantined raw row per source_table per load_date.';
comment on table quarantine.rejected_lines is
    'Lines of a source file that the reader could not parse at all, as read (operators only; BI reads the view audit.rejected_lines). Grain: one row per rejected line per source file per load_date.';

revoke all on schema quarantine from public;
revoke all on quarantine.bad_records, quarantine.rejected_lines from public, ecomm_reader;
grant usage on schema quarantine to ecomm_writer;
grant select, insert, update, delete on quarantine.bad_records, quarantine.rejected_lines to ecomm_writer;
alter default privileges in schema quarantine grant select, insert, update, delete on tables to ecomm_writer;

create or replace view audit.bad_records as
select
    bad_records.load_date,
    bad_records.source_table,
    bad_records.reason_code,
    bad_records.row_number
from quarantine.bad_records as bad_records;

comment on view audit.bad_records is
    'Quarantined rows for BI: what was quarantined and why, without any value of the rejected record (operators find the record in quarantine.bad_records by load_date, source_table and row_number). Grain: one row per quarantined raw row per source_table per load_date.';
comment on column audit.bad_records.load_date is 'Load date of the raw file.';
comment on column audit.bad_records.source_table is 'Staging table that quarantined the row: stg_orders, stg_events, stg_products or stg_users.';
comment on column audit.bad_records.reason_code is 'Why it was quarantined (a staging reason code).';
comment on column audit.bad_records.row_number is 'Position of the record in the source (1-based).';

create or replace view audit.rejected_lines as
select
    rejected_lines.load_date,
    rejected_lines.source_table,
    rejected_lines.line_number,
    -- only the reader's error class (upper-case letters and spaces), never the message, which may quote the line
    substring(rejected_lines.error from '^([A-Z][A-Z ]{0,39}):') as error_type
from quarantine.rejected_lines as rejected_lines;

comment on view audit.rejected_lines is
    'Lines the reader could not parse, for BI: where and which kind of error, without the line''s text (operators find it in quarantine.rejected_lines). Grain: one row per rejected line per source file per load_date.';
comment on column audit.rejected_lines.load_date is 'Load date of the file.';
comment on column audit.rejected_lines.source_table is 'Raw source the file belongs to (events, orders).';
comment on column audit.rejected_lines.line_number is 'Line number in the file (1-based, header included).';
comment on column audit.rejected_lines.error_type is 'The reader''s error class (e.g. TOO MANY COLUMNS, UNQUOTED VALUE, INVALID UNICODE); null if the error text has none.';

grant select on audit.bad_records, audit.rejected_lines to ecomm_reader;
