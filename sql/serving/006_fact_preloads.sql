-- Preloads: a date's fact partition copied and indexed in Postgres while its quality gate runs,
-- then moved into `warehouse` by the publish transaction (pipeline.serving.facts). BI never sees
-- this schema: ecomm_reader has no USAGE on it, so a preload is invisible until it is published.
-- Grain of preload.fact_loads: one row per preloaded table.
create schema if not exists preload;

comment on schema preload is
    'Fact partitions copied and indexed ahead of their publish (not yet validated, not for BI); publish moves one into warehouse and drops the rest.';

create table if not exists preload.fact_loads (
    stage_table text primary key,
    fact_table text not null,
    load_date date not null,
    lake_file text not null,
    lake_version text not null,
    row_count bigint not null,
    min_id text,
    max_id text,
    loaded_at timestamptz not null default now()
);
create index if not exists fact_loads_fact_date_idx on preload.fact_loads (fact_table, load_date);

comment on table preload.fact_loads is
    'Directory of preloaded fact tables. Grain: one row per table in schema preload. Publish uses a row only if the lake file still has the version it was loaded from.';
comment on column preload.fact_loads.stage_table is 'Name of the preloaded table in schema preload (<fact>_all_YYYYMMDD_<token>).';
comment on column preload.fact_loads.fact_table is 'Partitioned table it is a partition for: fact_orders_all or fact_events_all.';
comment on column preload.fact_loads.load_date is 'Load date of the rows.';
comment on column preload.fact_loads.lake_file is 'The lake partition file the rows were read from.';
comment on column preload.fact_loads.lake_version is 'That file''s version when it was read (pipeline.lake.file_version); a rebuilt partition has another.';
comment on column preload.fact_loads.row_count is 'Rows in the table.';
comment on column preload.fact_loads.min_id is 'Smallest business key (order_id / event_id) in the table.';
comment on column preload.fact_loads.max_id is 'Largest business key in the table.';
comment on column preload.fact_loads.loaded_at is 'When the preload committed.';

-- ecomm_writer creates, fills and drops preloads; readers get nothing here. A preloaded table keeps
-- its grants when publish moves it into warehouse, so it is created readable by ecomm_reader and
-- becomes reachable only through warehouse's USAGE.
revoke all on schema preload from public;
grant usage, create on schema preload to ecomm_writer;
grant select, insert, delete on preload.fact_loads to ecomm_writer;
alter default privileges in schema preload grant select on tables to ecomm_reader;
do $$
begin
    if pg_has_role(current_user, 'ecomm_writer', 'MEMBER') then
        alter default privileges for role ecomm_writer in schema preload grant select on tables to ecomm_reader;
    end if;
end
$$;
