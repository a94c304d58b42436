-- Question: What are each day's headline numbers: orders, gross and net revenue, average order value, events, active users and conversion?
-- Grain: one row per calendar date (UTC) with orders or events. Orders and revenue by order date,
-- events and users by event date. avg_order_value = gross revenue / orders; conversion_rate = users
-- with a purchase event / active users, in %. Both rounded half up, exactly on both engines.
with orders as (
    select * from warehouse.fact_orders
),

events as (
    select * from warehouse.fact_events
),

order_days as (
    select
        cast(orders.order_ts as date) as activity_date,
        count(*) as order_count,
        sum(orders.revenue) as gross_revenue,
        sum(orders.net_revenue) as net_revenue
    from orders
    group by cast(orders.order_ts as date)
),

event_days as (
    select
        cast(events.event_ts as date) as activity_date,
        count(*) as event_count,
        count(distinct events.user_id) as active_users,
        count(distinct case when events.event_type = 'purchase' then events.user_id end) as purchasing_users
    from events
    group by cast(events.event_ts as date)
),

days as (
    select order_days.activity_date from order_days
    union
    select event_days.activity_date from event_days
),

final as (
    select
        days.activity_date as kpi_date,
        coalesce(order_days.order_count, 0) as order_count,
        cast(coalesce(order_days.gross_revenue, 0) as decimal(18, 2)) as gross_revenue,
        cast(coalesce(order_days.net_revenue, 0) as decimal(18, 2)) as net_revenue,
        -- a / b rounded half up to 2 decimals, exactly; NULL when b = 0 (queries/README.md)
        cast(cast(floor(
            (200 * order_days.gross_revenue + order_days.order_count)
            / cast(2 * nullif(order_days.order_count, 0) as double precision)
        ) as bigint) * 0.01 as decimal(18, 2)) as avg_order_value,
        coalesce(event_days.event_count, 0) as event_count,
        coalesce(event_days.active_users, 0) as active_users,
        coalesce(event_days.purchasing_users, 0) as purchasing_users,
        cast(cast(floor(
            (20000 * event_days.purchasing_users + event_days.active_users)
            / cast(2 * nullif(event_days.active_users, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as conversion_rate
    from days
    left join order_days
        on days.activity_date = order_days.activity_date
    left join event_days
        on days.activity_date = event_days.activity_date
)

select * from final
order by final.kpi_date
