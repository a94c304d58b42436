-- Question: What share of each day's orders were cancelled or refunded, and how much revenue did that take back?
-- Grain: one row per order date (UTC), over the current version of every order (a status restated by
-- a later file counts as restated). Rates are % of the day's orders, rounded half up exactly.
with orders as (
    select * from warehouse.fact_orders
),

by_day as (
    select
        cast(orders.order_ts as date) as order_date,
        count(*) as order_count,
        count(case when orders.status = 'paid' then 1 end) as paid_count,
        count(case when orders.status = 'pending' then 1 end) as pending_count,
        count(case when orders.status = 'cancelled' then 1 end) as cancelled_count,
        count(case when orders.status = 'refunded' then 1 end) as refunded_count,
        coalesce(sum(case when orders.status = 'cancelled' then orders.revenue end), 0) as cancelled_revenue,
        coalesce(sum(case when orders.status = 'refunded' then orders.revenue end), 0) as refunded_revenue
    from orders
    group by cast(orders.order_ts as date)
),

final as (
    select
        by_day.order_date,
        by_day.order_count,
        by_day.paid_count,
        by_day.pending_count,
        by_day.cancelled_count,
        by_day.refunded_count,
        -- 100 * a / b rounded half up to 2 decimals, exactly (queries/README.md)
        cast(cast(floor(
            (20000 * by_day.cancelled_count + by_day.order_count)
            / cast(2 * by_day.order_count as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as cancellation_rate,
        cast(cast(floor(
            (20000 * by_day.refunded_count + by_day.order_count)
            / cast(2 * by_day.order_count as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as refund_rate,
        cast(by_day.cancelled_revenue as decimal(18, 2)) as cancelled_revenue,
        cast(by_day.refunded_revenue as decimal(18, 2)) as refunded_revenue
    from by_day
)

select * from final
order by final.order_date
