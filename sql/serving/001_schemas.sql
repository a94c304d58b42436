-- Serving schemas: `warehouse` (the star schema BI reads) and `audit` (run, quality and load records).
-- Grain: none (namespaces). Idempotent; applied once by pipeline.serving.migrations.apply_schema.
create schema if not exists warehouse;
create schema if not exists audit;

comment on schema warehouse is
    'Star schema published from the lake (lake/warehouse/*): dimensions, facts (all versions + current-version views) and daily metrics.';
comment on schema audit is
    'Pipeline audit: publish log (completion markers), run log, data-quality failures, quarantined records, rejected lines, reconciliation.';
