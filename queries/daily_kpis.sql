-- Question: What are each day's headline numbers: orders, gross and net revenue, average order value, events, active users and conversion?
-- Grain: one row per business day (UTC unless [model] business_timezone says otherwise) with orders or
-- events in the reporting window: the 30 days ending at the latest complete day (marts.reporting_window;
-- to see other days, replace it by `(select date '2026-01-01' as first_date, date '2026-03-31' as
-- last_date)`). Orders and revenue by order date,
-- events and users by event date. avg_order_value = gross revenue / orders; conversion_rate = users
-- with a purchase event / active users, in %. Both rounded half up, exactly on both engines.
-- Reads the window's days of the mart marts.daily_kpis (one row per day, kept exact by each publish):
-- its cost does not grow with history.
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
        kpis.kpi_date,
        kpis.order_count,
        kpis.gross_revenue,
        kpis.net_revenue,
        -- a / b rounded half up to 2 decimals, exactly; NULL when b = 0 (queries/README.md)
        cast(cast(floor(
            (200 * kpis.gross_revenue + kpis.order_count)
            / cast(2 * nullif(kpis.order_count, 0) as double precision)
        ) as bigint) * 0.01 as decimal(18, 2)) as avg_order_value,
        kpis.event_count,
        kpis.active_users,
        kpis.purchasing_users,
        cast(cast(floor(
            (20000 * kpis.purchasing_users + kpis.active_users)
            / cast(2 * nullif(kpis.active_users, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as conversion_rate
    from kpis
)

select * from final
order by final.kpi_date
