-- Question: What are gross and net revenue per day, and their 7-day moving averages?
-- Grain: one row per order date (business day) that has orders in the reporting window: the 30 days
-- ending at the latest complete day (marts.reporting_window; to see other days, replace it by
-- `(select date '2026-01-01' as first_date, date '2026-03-31' as last_date)`). The moving average is
-- the revenue of the 7 calendar days ending on the date divided by 7 (a day without orders counts as
-- 0; the window's first days take the 6 days before it into account); it is NULL until the data covers
-- 7 days: from the first complete day (marts.complete_days: the first load date in), so late orders
-- dated before it do not count the days between as days without sales. Rounded half up to the cent,
-- exactly on both engines (queries/README.md).
-- Reads the window's days of the mart marts.daily_kpis (one row per day), and the 6 days before it.
with reporting_days as (
    select * from marts.reporting_window
),

-- the window's bounds (and the 6 days before it) as scalar subqueries: on Postgres an index range on
-- the day (run-time values), so the query reads the window's rows whatever the history
kpis as (
    select * from marts.daily_kpis
    where daily_kpis.kpi_date >= (select reporting_days.first_date - 6 from reporting_days)
        and daily_kpis.kpi_date <= (select reporting_days.last_date from reporting_days)
),

-- the first day the data covers: the first complete day (a late order can be dated before it)
first_day as (
    select min(complete_days.complete_date) as first_complete_date
    from marts.complete_days
),

daily as (
    select
        kpis.kpi_date as order_date,
        kpis.order_count,
        kpis.gross_revenue,
        kpis.net_revenue
    from kpis
    where kpis.order_count > 0
),

windowed as (
    select
        daily.order_date,
        daily.order_count,
        daily.gross_revenue,
        daily.net_revenue,
        sum(daily.gross_revenue) over last_7_days as gross_revenue_7d,
        sum(daily.net_revenue) over last_7_days as net_revenue_7d
    from daily
    window last_7_days as (
        order by daily.order_date range between interval '6 days' preceding and current row
    )
),

final as (
    select
        windowed.order_date,
        windowed.order_count,
        cast(windowed.gross_revenue as decimal(18, 2)) as gross_revenue,
        cast(windowed.net_revenue as decimal(18, 2)) as net_revenue,
        case when windowed.order_date - first_day.first_complete_date >= 6 then
            cast(cast(floor((200 * windowed.gross_revenue_7d + 7) / cast(14 as double precision)) as bigint)
                * 0.01 as decimal(18, 2))
        end as gross_revenue_7d_avg,
        case when windowed.order_date - first_day.first_complete_date >= 6 then
            cast(cast(floor((200 * windowed.net_revenue_7d + 7) / cast(14 as double precision)) as bigint)
                * 0.01 as decimal(18, 2))
        end as net_revenue_7d_avg
    from windowed
    cross join first_day
    inner join reporting_days
        on windowed.order_date >= reporting_days.first_date
)

select * from final
order by final.order_date
