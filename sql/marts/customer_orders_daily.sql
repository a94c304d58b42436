-- customer_orders_daily: what each customer ordered on each order date, from one load date's orders (a contribution).
-- Grain: one row per customer (user_id) per order date (business day) per load_date; partition: load_date.
-- Counts and sums only, so contributions add up over load dates: marts.customer_orders_daily is this
-- model over the current orders (kept by each publish as the sum of every load date's partition minus
-- the superseded versions, pipeline.serving.marts). A customer ordered on a day while order_count > 0:
-- marts.customers (first and last order date) and marts.cohort_retention (order weeks) are built on that.
-- paid_order_count: orders with status 'paid'. Portable SQL (queries/README.md): Postgres runs this file too.
with orders as (
    select * from fact_orders
),

final as (
    select
        orders.user_id,
        make_date(
            cast(floor(orders.date_id / 10000) as integer),
            cast(floor(orders.date_id / 100) as integer) % 100,
            orders.date_id % 100
        ) as order_date,
        count(*) as order_count,
        count(case when orders.status = 'paid' then 1 end) as paid_order_count,
        cast(sum(orders.quantity) as bigint) as units_sold,
        cast(sum(orders.revenue) as decimal(18, 2)) as gross_revenue,
        cast(sum(orders.net_revenue) as decimal(18, 2)) as net_revenue
    from orders
    group by orders.user_id, orders.date_id
)

select * from final
