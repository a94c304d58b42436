-- customers: one row per customer: first and last order date, orders, paid orders and revenue.
-- Grain: one row per user_id with at least one current order. Not partitioned: computed from the current
-- marts.customer_orders_daily (Postgres keeps it up to date in each publish, pipeline.serving.mart_deltas).
-- Dates are business days; cohort_week is the Monday of the week of the first order (the customer's
-- cohort, see marts.cohort_retention). gross_revenue counts any status, net_revenue sold statuses only.
with customer_days as (
    select * from marts.customer_orders_daily
),

final as (
    select
        customer_days.user_id,
        min(customer_days.order_date) as first_order_date,
        max(customer_days.order_date) as last_order_date,
        cast(date_trunc('week', min(customer_days.order_date)) as date) as cohort_week,
        cast(sum(customer_days.order_count) as bigint) as order_count,
        cast(sum(customer_days.paid_order_count) as bigint) as paid_order_count,
        cast(sum(customer_days.units_sold) as bigint) as units_sold,
        cast(sum(customer_days.gross_revenue) as decimal(18, 2)) as gross_revenue,
        cast(sum(customer_days.net_revenue) as decimal(18, 2)) as net_revenue
    from customer_days
    group by customer_days.user_id
)

select * from final
