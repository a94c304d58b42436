-- Daily metrics and the audit tables. Grain: see each table's comment.
create table if not exists warehouse.daily_metrics (
    run_date date primary key,
    raw_orders_count bigint,
    staging_orders_count bigint,
    fact_orders_count bigint,
    raw_events_count bigint,
    staging_events_count bigint,
    fact_events_count bigint,
    quarantined_orders_count bigint,
    quarantined_events_count bigint,
    duplicate_orders_count bigint,
    duplicate_events_count bigint,
    gross_revenue numeric(18, 2),
    net_revenue numeric(18, 2),
    orders_count bigint,
    events_count bigint,
    unknown_product_share double precision,
    dq_failed_count integer,
    runtime_seconds double precision,
    published_at timestamptz not null default now()
);

comment on table warehouse.daily_metrics is 'Pipeline health and headline numbers. Grain: one row per run_date (= load date).';
comment on column warehouse.daily_metrics.run_date is 'Load date the metrics describe.';
comment on column warehouse.daily_metrics.raw_orders_count is 'Order records landed in lake/raw for the date.';
comment on column warehouse.daily_metrics.staging_orders_count is 'Order rows that passed staging (valid, deduplicated).';
comment on column warehouse.daily_metrics.fact_orders_count is 'Rows published to warehouse.fact_orders_all for the date.';
comment on column warehouse.daily_metrics.raw_events_count is 'Event lines landed in lake/raw for the date.';
comment on column warehouse.daily_metrics.staging_events_count is 'Event rows that passed staging.';
comment on column warehouse.daily_metrics.fact_events_count is 'Rows published to warehouse.fact_events_all for the date.';
comment on column warehouse.daily_metrics.quarantined_orders_count is 'Order rows quarantined to audit.bad_records.';
comment on column warehouse.daily_metrics.quarantined_events_count is 'Event rows quarantined to audit.bad_records.';
comment on column warehouse.daily_metrics.duplicate_orders_count is 'Order rows dropped as duplicates within the date.';
comment on column warehouse.daily_metrics.duplicate_events_count is 'Event rows dropped as duplicates within the date.';
comment on column warehouse.daily_metrics.gross_revenue is 'Sum of revenue over the date''s order lines, any status.';
comment on column warehouse.daily_metrics.net_revenue is 'Sum of net_revenue (sold statuses only).';
comment on column warehouse.daily_metrics.orders_count is 'Distinct orders in the date''s facts.';
comment on column warehouse.daily_metrics.events_count is 'Events in the date''s facts.';
comment on column warehouse.daily_metrics.unknown_product_share is 'Share (0-1) of the date''s fact rows that point at a product unknown to the catalog.';
comment on column warehouse.daily_metrics.dq_failed_count is 'Quality checks that failed or errored for the date.';
comment on column warehouse.daily_metrics.runtime_seconds is 'Wall-clock seconds the pipeline took for the date, when measured.';
comment on column warehouse.daily_metrics.published_at is 'When the row was published.';

create table if not exists audit.publish_log (
    load_date date primary key,
    published_at timestamptz not null default now(),
    fact_orders_rows bigint not null,
    fact_events_rows bigint not null,
    run_id text
);

comment on table audit.publish_log is
    'Completion marker of the Postgres publish, written in the same transaction as the data. Grain: one row per published load_date.';
comment on column audit.publish_log.load_date is 'Load date that is completely published.';
comment on column audit.publish_log.published_at is 'When its publish transaction ran (latest publish).';
comment on column audit.publish_log.fact_orders_rows is 'Order rows published for the date.';
comment on column audit.publish_log.fact_events_rows is 'Event rows published for the date.';
comment on column audit.publish_log.run_id is 'Pipeline run that published it.';

create table if not exists audit.pipeline_runs (
    run_id text not null,
    run_date date,
    task text not null,
    status text not null,
    started_at timestamptz,
    ended_at timestamptz,
    duration_seconds double precision,
    rows_in bigint,
    rows_out bigint,
    error_message text,
    primary key (run_id, task)
);
create index if not exists pipeline_runs_run_date_idx on audit.pipeline_runs (run_date);

comment on table audit.pipeline_runs is 'Task run log. Grain: one row per task per pipeline run.';
comment on column audit.pipeline_runs.run_id is 'Identifier of the pipeline run.';
comment on column audit.pipeline_runs.run_date is 'Load date the task processed.';
comment on column audit.pipeline_runs.task is 'Task identifier (Luigi task_id).';
comment on column audit.pipeline_runs.status is 'running, done or failed.';
comment on column audit.pipeline_runs.started_at is 'When the task started.';
comment on column audit.pipeline_runs.ended_at is 'When the task ended; null while running.';
comment on column audit.pipeline_runs.duration_seconds is 'ended_at - started_at in seconds.';
comment on column audit.pipeline_runs.rows_in is 'Rows the task read, when it reports them.';
comment on column audit.pipeline_runs.rows_out is 'Rows the task wrote, when it reports them.';
comment on column audit.pipeline_runs.error_message is 'The error that failed the task.';

create table if not exists audit.dq_failures (
    id bigserial primary key,
    run_date date not null,
    check_name text not null,
    table_name text,
    check_type text,
    outcome text not null check (outcome in ('warn', 'fail', 'error')),
    value text,
    message text,
    recorded_at timestamptz not null default now()
);
create index if not exists dq_failures_run_date_idx on audit.dq_failures (run_date);

comment on table audit.dq_failures is 'Quality checks that warned, failed or errored. Grain: one row per check outcome per run_date (replaced when the date is checked again).';
comment on column audit.dq_failures.id is 'Surrogate key.';
comment on column audit.dq_failures.run_date is 'Load date that was checked.';
comment on column audit.dq_failures.check_name is 'Name of the check (as in checks/*.yml).';
comment on column audit.dq_failures.table_name is 'Table the check ran on.';
comment on column audit.dq_failures.check_type is 'Kind of check (row_count, duplicate_count, missing_count ...).';
comment on column audit.dq_failures.outcome is 'warn (recorded, the pipeline goes on), fail or error (the date is not published).';
comment on column audit.dq_failures.value is 'Measured value, as text.';
comment on column audit.dq_failures.message is 'What went wrong, for a person.';
comment on column audit.dq_failures.recorded_at is 'When the outcome was recorded.';

create table if not exists audit.bad_records (
    load_date date not null,
    source_table text not null,
    record_id text,
    reason_code text not null,
    message text,
    failing_value text,
    raw_record text,
    source_file text,
    row_number bigint not null,
    primary key (load_date, source_table, row_number)
);
create index if not exists bad_records_reason_code_idx on audit.bad_records (reason_code);

comment on table audit.bad_records is 'Raw rows that staging quarantined, with the reason. Grain: one row per quarantined raw row per source_table per load_date.';
comment on column audit.bad_records.load_date is 'Load date of the raw file.';
comment on column audit.bad_records.source_table is 'Staging table that quarantined the row: stg_orders, stg_events, stg_products or stg_users.';
comment on column audit.bad_records.record_id is 'The record''s id as received (may be missing or malformed).';
comment on column audit.bad_records.reason_code is 'Why it was quarantined (a staging reason code).';
comment on column audit.bad_records.message is 'Reason, failing value and detail for a person.';
comment on column audit.bad_records.failing_value is 'The value that failed the rule, as text.';
comment on column audit.bad_records.raw_record is 'The whole raw record as received (JSON object or CSV fields), as text.';
comment on column audit.bad_records.source_file is 'File (or API URL) the record came from.';
comment on column audit.bad_records.row_number is 'Position of the record in the source (1-based).';

create table if not exists audit.rejected_lines (
    load_date date not null,
    source_table text not null,
    source_file text,
    line_number bigint not null,
    raw_text text,
    error text,
    primary key (load_date, source_table, line_number)
);

comment on table audit.rejected_lines is 'Lines of a source file that the reader could not parse at all. Grain: one row per rejected line per source file per load_date.';
comment on column audit.rejected_lines.load_date is 'Load date of the file.';
comment on column audit.rejected_lines.source_table is 'Raw source the file belongs to (events, orders).';
comment on column audit.rejected_lines.source_file is 'Path of the file.';
comment on column audit.rejected_lines.line_number is 'Line number in the file (1-based, header included).';
comment on column audit.rejected_lines.raw_text is 'The line as it was read.';
comment on column audit.rejected_lines.error is 'Why the reader rejected it.';

create table if not exists audit.reconciliation (
    load_date date not null,
    source_table text not null,
    raw_count bigint not null,
    staged_count bigint not null,
    quarantined_count bigint not null,
    duplicate_count bigint not null,
    is_balanced boolean not null,
    primary key (load_date, source_table)
);

comment on table audit.reconciliation is 'Row-count reconciliation of staging: raw = staged + quarantined + duplicates. Grain: one row per source_table per load_date.';
comment on column audit.reconciliation.load_date is 'Load date.';
comment on column audit.reconciliation.source_table is 'Staging table reconciled: stg_orders, stg_events, stg_products or stg_users.';
comment on column audit.reconciliation.raw_count is 'Rows landed in lake/raw.';
comment on column audit.reconciliation.staged_count is 'Rows that passed staging.';
comment on column audit.reconciliation.quarantined_count is 'Rows quarantined to bad_records.';
comment on column audit.reconciliation.duplicate_count is 'Rows dropped as duplicates.';
comment on column audit.reconciliation.is_balanced is 'raw_count = staged_count + quarantined_count + duplicate_count.';
