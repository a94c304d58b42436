-- Question: For the last 10 load dates, how many rows made it through each layer, and how many were quarantined, dropped as duplicates or failed a check?
-- The seed's "Pipeline Health Dashboard", with the quarantine and duplicate counts the new pipeline
-- records and exact completion rates. runtime_seconds is left out: it is measured by the operations
-- layer and lives in Postgres only (audit.pipeline_runs), so it cannot agree with the lake.
-- Grain: one row per run date (= load date), latest first. Completion rate = fact rows / raw rows, %.
with metrics as (
    select * from warehouse.daily_metrics
),

final as (
    select
        metrics.run_date,
        metrics.raw_orders_count,
        metrics.staging_orders_count,
        metrics.fact_orders_count,
        metrics.quarantined_orders_count,
        metrics.duplicate_orders_count,
        metrics.raw_events_count,
        metrics.staging_events_count,
        metrics.fact_events_count,
        metrics.quarantined_events_count,
        metrics.duplicate_events_count,
        metrics.dq_failed_count,
        -- 100 * a / b rounded half up to 2 decimals, exactly; NULL when b = 0 (queries/README.md)
        cast(cast(floor(
            (20000 * metrics.fact_orders_count + metrics.raw_orders_count)
            / cast(2 * nullif(metrics.raw_orders_count, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as orders_completion_rate,
        cast(cast(floor(
            (20000 * metrics.fact_events_count + metrics.raw_events_count)
            / cast(2 * nullif(metrics.raw_events_count, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as events_completion_rate
    from metrics
)

select * from final
order by final.run_date desc
limit 10
