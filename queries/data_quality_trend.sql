-- Question: Per load date, how many rows were quarantined, rejected or dropped as duplicates, and how many quality checks warned, failed or errored?
-- Grain: one row per load date known to daily_metrics, audit.bad_records or audit.dq_failures (a date
-- the quality gate blocked has check outcomes but, in Postgres, no metrics), from the first day of the
-- reporting window on (marts.reporting_window: the 30 days ending at the latest complete day; a load
-- date after it, such as one the gate blocked, shows too). To see other days, replace
-- marts.reporting_window by `(select date '2026-01-01' as first_date, date '2026-03-31' as last_date)`.
-- Every source is filtered on its load date, which leads its primary key (audit.dq_failures: its run_date
-- index), so the rows read follow the window, not the history. quarantined_rows counts
-- every source (catalogs included); quarantine_rate = quarantined orders and events / raw orders and
-- events, in %, rounded half up exactly. unknown_product_share is a fraction (a double, 0-1).
with reporting_days as (
    select * from marts.reporting_window
),

metrics as (
    select daily_metrics.*
    from warehouse.daily_metrics as daily_metrics
    inner join reporting_days
        on daily_metrics.run_date >= reporting_days.first_date
),

quarantined as (
    select
        bad_records.load_date,
        count(*) as quarantined_rows,
        count(distinct bad_records.reason_code) as reason_count
    from audit.bad_records
    inner join reporting_days
        on bad_records.load_date >= reporting_days.first_date
    group by bad_records.load_date
),

rejected as (
    select
        rejected_lines.load_date,
        count(*) as rejected_lines
    from audit.rejected_lines
    inner join reporting_days
        on rejected_lines.load_date >= reporting_days.first_date
    group by rejected_lines.load_date
),

checks as (
    select
        dq_failures.run_date,
        count(case when dq_failures.outcome = 'warn' then 1 end) as checks_warned,
        count(case when dq_failures.outcome = 'fail' then 1 end) as checks_failed,
        count(case when dq_failures.outcome = 'error' then 1 end) as checks_errored
    from audit.dq_failures
    inner join reporting_days
        on dq_failures.run_date >= reporting_days.first_date
    group by dq_failures.run_date
),

load_dates as (
    select metrics.run_date as load_date from metrics
    union
    select quarantined.load_date from quarantined
    union
    select checks.run_date from checks
),

final as (
    select
        load_dates.load_date,
        metrics.raw_orders_count + metrics.raw_events_count as raw_rows,
        coalesce(quarantined.quarantined_rows, 0) as quarantined_rows,
        coalesce(quarantined.reason_count, 0) as quarantine_reasons,
        coalesce(rejected.rejected_lines, 0) as rejected_lines,
        metrics.duplicate_orders_count + metrics.duplicate_events_count as duplicate_rows,
        -- 100 * a / b rounded half up to 2 decimals, exactly; NULL when b = 0 (queries/README.md)
        cast(cast(floor(
            (20000 * (metrics.quarantined_orders_count + metrics.quarantined_events_count)
                + metrics.raw_orders_count + metrics.raw_events_count)
            / cast(2 * nullif(metrics.raw_orders_count + metrics.raw_events_count, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as quarantine_rate,
        metrics.unknown_product_share,
        coalesce(checks.checks_warned, 0) as checks_warned,
        coalesce(checks.checks_failed, 0) as checks_failed,
        coalesce(checks.checks_errored, 0) as checks_errored
    from load_dates
    left join metrics
        on load_dates.load_date = metrics.run_date
    left join quarantined
        on load_dates.load_date = quarantined.load_date
    left join rejected
        on load_dates.load_date = rejected.load_date
    left join checks
        on load_dates.load_date = checks.run_date
)

select * from final
order by final.load_date
