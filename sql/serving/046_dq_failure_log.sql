-- The quality gate's history: audit.dq_failures holds a date's latest gate run only (replaced when the
-- date is checked again), so the outcomes of a blocked run that was then fixed and rerun went. Every
-- gate run's warn/fail/error outcomes are kept here as well, written by the same statement path and in
-- the same transaction that replaces dq_failures (pipeline.serving.publish._write_dq).
-- A gate run is (run_date, checked_at): the time the gate started, carried with its results in
-- lake/audit/dq_results. The same gate run recorded twice (the blocked gate's record, then a retry, a
-- republish or a rebuild of the same results) keeps the rows written first: entry is the outcome's
-- place in the run (by table and check name), so the key repeats and the insert does nothing.
create table if not exists audit.dq_failure_log (
    run_date date not null,
    checked_at timestamptz not null,
    entry integer not null,
    run_id text not null,
    check_name text not null,
    table_name text,
    check_type text,
    outcome text not null check (outcome in ('warn', 'fail', 'error')),
    value text,
    message text,
    recorded_at timestamptz not null default now(),
    primary key (run_date, checked_at, entry)
);
create index if not exists dq_failure_log_run_id_idx on audit.dq_failure_log (run_id);

comment on table audit.dq_failure_log is
    'Every quality-gate run''s warn, fail and error outcomes, appended and never replaced (audit.dq_failures holds the latest run only). Grain: one row per check outcome per gate run (run_date, checked_at).';
comment on column audit.dq_failure_log.run_date is 'Load date that was checked.';
comment on column audit.dq_failure_log.checked_at is 'When the gate run started (lake/audit/dq_results.checked_at); with run_date, it names the gate run.';
comment on column audit.dq_failure_log.entry is 'Position of the outcome in its gate run (1-based, by table_name and check_name).';
comment on column audit.dq_failure_log.run_id is 'Pipeline run that recorded the outcomes (audit.pipeline_runs.run_id): the run of the gate, or the run that published its results; rebuild_... for a rebuild-serving.';
comment on column audit.dq_failure_log.check_name is 'Name of the check (as in checks/*.yml).';
comment on column audit.dq_failure_log.table_name is 'Table the check ran on.';
comment on column audit.dq_failure_log.check_type is 'Kind of check (row_count, duplicate_count, missing_count ...).';
comment on column audit.dq_failure_log.outcome is 'warn (recorded, the pipeline goes on), fail or error (the gate run blocked the date).';
comment on column audit.dq_failure_log.value is 'Measured value, as text.';
comment on column audit.dq_failure_log.message is 'What went wrong, for a person.';
comment on column audit.dq_failure_log.recorded_at is 'When the outcomes were first recorded in Postgres.';

-- The gate runs recorded before the log existed: each date's latest, as audit.dq_failures holds it, so the
-- log's latest gate run of a date is what dq_failures holds from the start. Postgres kept no checked_at
-- for them: their recorded_at stands in for it, under the run id 'before_dq_failure_log'. (A later
-- republish of the same gate results appends them once more, under the lake's checked_at.)
insert into audit.dq_failure_log
    (run_date, checked_at, entry, run_id, check_name, table_name, check_type, outcome, value, message, recorded_at)
select
    dq_failures.run_date,
    min(dq_failures.recorded_at) over (partition by dq_failures.run_date),
    row_number() over (partition by dq_failures.run_date
                       order by dq_failures.table_name nulls last, dq_failures.check_name, dq_failures.outcome,
                                dq_failures.value, dq_failures.message, dq_failures.id),
    'before_dq_failure_log',
    dq_failures.check_name,
    dq_failures.table_name,
    dq_failures.check_type,
    dq_failures.outcome,
    dq_failures.value,
    dq_failures.message,
    dq_failures.recorded_at
from audit.dq_failures
on conflict (run_date, checked_at, entry) do nothing;

-- BI reads it like the other audit tables; the pipeline only appends to it (no update, no delete).
grant select on audit.dq_failure_log to ecomm_reader;
grant select, insert on audit.dq_failure_log to ecomm_writer;
revoke update, delete, truncate on audit.dq_failure_log from ecomm_writer;
