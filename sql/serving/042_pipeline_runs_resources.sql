-- What each task execution cost the process that ran it (pipeline.tasks.run_audit): its CPU seconds
-- and the process's peak resident memory. NULL for executions recorded before these columns existed,
-- for a task whose process was killed or lost, and (peak_rss_mib) for a task run inside the Luigi
-- process itself.
alter table audit.pipeline_runs
    add column if not exists cpu_seconds double precision,
    add column if not exists peak_rss_mib integer;

comment on column audit.pipeline_runs.cpu_seconds is
    'CPU seconds (user + system, all threads) of the process that ran the task, from its start to its end; not the Postgres server''s work it asked for. Null: not measured (killed or lost, or recorded before this column existed).';
comment on column audit.pipeline_runs.peak_rss_mib is
    'Peak resident memory, in MiB, of the process Luigi forked for the task (pages shared with the Luigi process it was forked from included). Null: not measured, or the task ran in the Luigi process itself.';
