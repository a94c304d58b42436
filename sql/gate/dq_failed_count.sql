-- dq_failed_count: per run date, the quality checks that failed or errored (the outcomes that block a
-- date). Grain: one row per run_date with at least one such check (none: the count is 0).
-- warehouse.daily_metrics.dq_failed_count is this figure; the lake's model cannot know it (the gate
-- runs after the model), so the model writes 0 and both readers take it from here: the publish on
-- Postgres, over the audit.dq_failures rows it has just written, and the lake's DuckDB views
-- (pipeline.lake.views), over their audit.dq_failures view. Portable SQL: it runs unchanged on both.
select
    dq_failures.run_date,
    count(*) as dq_failed_count
from audit.dq_failures
where dq_failures.outcome in ('fail', 'error')
group by dq_failures.run_date
