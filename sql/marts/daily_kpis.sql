-- daily_kpis: each business day's headline numbers: orders and revenue by order date, events and users by event date.
-- Grain: one row per business day (kpi_date) with orders or events. Not partitioned: computed from the
-- current contributions (marts.product_sales_daily for the orders, marts.user_activity_daily for the
-- events; Postgres keeps it up to date in each publish, pipeline.serving.mart_deltas). active_users:
-- users with an event that day; purchasing_users (the buyers): users with a purchase event that day,
-- each counted once however many load dates their events came in. paid_order_count: status 'paid';
-- sold_order_count: orders with net revenue > 0 ([model] sold_statuses, and a positive amount: a paid order
-- priced 0.00 is paid, not sold, so the two counts can differ). Ratios (average order value,
-- conversion) are left to the queries, which round them the same way on both engines.
with sales as (
    select * from marts.product_sales_daily
),

activity as (
    select * from marts.user_activity_daily
),

order_days as (
    select
        sales.order_date as kpi_date,
        cast(sum(sales.order_count) as bigint) as order_count,
        cast(sum(sales.paid_order_count) as bigint) as paid_order_count,
        cast(sum(sales.pending_order_count) as bigint) as pending_order_count,
        cast(sum(sales.cancelled_order_count) as bigint) as cancelled_order_count,
        cast(sum(sales.refunded_order_count) as bigint) as refunded_order_count,
        cast(sum(sales.sold_order_count) as bigint) as sold_order_count,
        cast(sum(sales.units_sold) as bigint) as units_sold,
        cast(sum(sales.gross_revenue) as decimal(18, 2)) as gross_revenue,
        cast(sum(sales.net_revenue) as decimal(18, 2)) as net_revenue,
        cast(sum(sales.cancelled_revenue) as decimal(18, 2)) as cancelled_revenue,
        cast(sum(sales.refunded_revenue) as decimal(18, 2)) as refunded_revenue
    from sales
    group by sales.order_date
),

event_days as (
    select
        activity.event_date as kpi_date,
        cast(sum(activity.event_count) as bigint) as event_count,
        count(*) as active_users,
        count(case when activity.purchase_count > 0 then 1 end) as purchasing_users
    from activity
    group by activity.event_date
),

days as (
    select order_days.kpi_date from order_days
    union
    select event_days.kpi_date from event_days
),

final as (
    select
        days.kpi_date,
        coalesce(order_days.order_count, 0) as order_count,
        coalesce(order_days.paid_order_count, 0) as paid_order_count,
        coalesce(order_days.pending_order_count, 0) as pending_order_count,
        coalesce(order_days.cancelled_order_count, 0) as cancelled_order_count,
        coalesce(order_days.refunded_order_count, 0) as refunded_order_count,
        coalesce(order_days.sold_order_count, 0) as sold_order_count,
        coalesce(order_days.units_sold, 0) as units_sold,
        cast(coalesce(order_days.gross_revenue, 0) as decimal(18, 2)) as gross_revenue,
        cast(coalesce(order_days.net_revenue, 0) as decimal(18, 2)) as net_revenue,
        cast(coalesce(order_days.cancelled_revenue, 0) as decimal(18, 2)) as cancelled_revenue,
        cast(coalesce(order_days.refunded_revenue, 0) as decimal(18, 2)) as refunded_revenue,
        coalesce(event_days.event_count, 0) as event_count,
        coalesce(event_days.active_users, 0) as active_users,
        coalesce(event_days.purchasing_users, 0) as purchasing_users
    from days
    left join order_days
        on days.kpi_date = order_days.kpi_date
    left join event_days
        on days.kpi_date = event_days.kpi_date
)

select * from final
