-- A read-only login cannot stop publishing (pipeline/serving/locks.py). The pipeline's writers lock rows
-- of pipeline_lock.locks (SELECT ... FOR UPDATE needs UPDATE privilege and this schema's USAGE,
-- which only ecomm_writer has) instead of advisory locks, which any role can take. BI sessions get
-- time limits, so one left idle in a transaction cannot hold the publish's swap for long.
-- Grain of pipeline_lock.locks: one row per lock key. The table is created by
-- pipeline.serving.migrations.BOOTSTRAP before the first migration (migrations themselves take the `schema`
-- lock); the statements below repeat it so that this file states what exists.
create schema if not exists pipeline_lock;
create table if not exists pipeline_lock.locks (
    lock_key text primary key,
    created_at timestamptz not null default now()
);

comment on schema pipeline_lock is
    'Locks of the pipeline''s writers (row locks, taken with SELECT ... FOR UPDATE); not for BI: ecomm_reader has no USAGE.';
comment on table pipeline_lock.locks is
    'One row per lock the pipeline''s Postgres writers take. Grain: one row per lock key (schema = migrations, publish = the bookkeeping of any publish, date:YYYY-MM-DD = one load date).';
comment on column pipeline_lock.locks.lock_key is 'The lock''s name; a writer holds the lock while its transaction holds this row FOR UPDATE.';
comment on column pipeline_lock.locks.created_at is 'When the key was first used.';

revoke all on schema pipeline_lock from public;
revoke all on pipeline_lock.locks from public;
grant usage on schema pipeline_lock to ecomm_writer;
grant select, insert, update on pipeline_lock.locks to ecomm_writer;

-- BI session limits, on the login role: role settings are not inherited through membership of
-- ecomm_reader, so a DBA gives every other BI login the same two settings (docs: serving). A value
-- the DBA already set on bi_reader is kept. Setting them needs CREATEROLE with ADMIN on bi_reader
-- (or superuser); without it the migration warns and says what to run.
do $$
declare
    wanted constant text[] := array['idle_in_transaction_session_timeout=1min', 'statement_timeout=5min'];
    setting text;
    existing text[];
begin
    select s.setconfig into existing
    from pg_db_role_setting as s
    where s.setrole = 'bi_reader'::regrole and s.setdatabase = 0;
    foreach setting in array wanted loop
        if not exists (
            select 1 from unnest(coalesce(existing, '{}'::text[])) as c
            where split_part(c, '=', 1) = split_part(setting, '=', 1)
        ) then
            execute format('alter role bi_reader set %I = %L', split_part(setting, '=', 1), split_part(setting, '=', 2));
        end if;
    end loop;
exception when insufficient_privilege then
    raise warning 'cannot set the session limits of bi_reader (%); have the DBA run: alter role bi_reader set idle_in_transaction_session_timeout = ''1min''; alter role bi_reader set statement_timeout = ''5min''', sqlerrm;
end
$$;
