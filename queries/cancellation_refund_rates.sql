-- Question: What share of each day's orders were cancelled or refunded, and how much revenue did that take back?
-- Grain: one row per order date (business day) with orders in the reporting window: the 30 days
-- ending at the latest complete day (marts.reporting_window; to see other days, replace it by
-- `(select date '2026-01-01' as first_date, date '2026-03-31' as last_date)`), over the current version of every order (a status restated by a later
-- file counts as restated). Rates are % of the day's orders, rounded half up exactly.
-- Reads the window's days of the mart marts.daily_kpis (one row per day).
with reporting_days as (
    select * from marts.reporting_window
),

-- the window's bounds as scalar subqueries: on Postgres an index range on the day (run-time values),
-- so the query reads the window's rows whatever the history (a join would scan the mart)
kpis as (
    select * from marts.daily_kpis
    where daily_kpis.kpi_date >= (select reporting_days.first_date from reporting_days)
        and daily_kpis.kpi_date <= (select reporting_days.last_date from reporting_days)
),

final as (
    select
        kpis.kpi_date as order_date,
        kpis.order_count,
        kpis.paid_order_count as paid_count,
        kpis.pending_order_count as pending_count,
        kpis.cancelled_order_count as cancelled_count,
        kpis.refunded_order_count as refunded_count,
        -- 100 * a / b rounded half up to 2 decimals, exactly (queries/README.md)
        cast(cast(floor(
            (20000 * kpis.cancelled_order_count + kpis.order_count)
            / cast(2 * kpis.order_count as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as cancellation_rate,
        cast(cast(floor(
            (20000 * kpis.refunded_order_count + kpis.order_count)
            / cast(2 * kpis.order_count as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as refund_rate,
        kpis.cancelled_revenue,
        kpis.refunded_revenue
    from kpis
    where kpis.order_count > 0
)

select * from final
order by final.order_date
