-- A date counts as done only once its serving reconciliation passed after its publish, so that a
-- run whose reconciliation failed after the commit (or was killed before it) is not taken for a
-- finished date by the next run's completeness check: that run reconciles it again.
-- Dates published before this migration are reconciled again once (cheap: three figures per date).
alter table audit.publish_log add column if not exists reconciled_at timestamptz;

comment on column audit.publish_log.reconciled_at is
    'When the serving reconciliation last passed for this publish (Postgres holds the lake''s rows and revenue for the date); null: published, not yet reconciled, so the next run of the date reconciles it.';
