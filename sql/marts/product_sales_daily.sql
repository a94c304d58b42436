-- product_sales_daily: what each product sold on each order date, from one load date's orders (a contribution).
-- Grain: one row per order date (business day) per product_id per load_date; partition: load_date.
-- Every column is a count or a sum, so contributions add up over load dates: marts.product_sales_daily
-- (Postgres, and the lake's view of the same name) is this model over the current orders, kept by each
-- publish as the sum of every load date's partition minus the versions a later (or earlier) delivery
-- superseded (pipeline.serving.marts). order_date is the order's business day (date_id, [model]
-- business_timezone); a late order counts on its own day. sold_order_count: orders with net revenue
-- (a sold status of [model] sold_statuses and a positive amount). Portable SQL: Postgres runs this
-- same file over the superseded versions (queries/README.md has the rules).
with orders as (
    select * from fact_orders
),

final as (
    select
        make_date(
            cast(floor(orders.date_id / 10000) as integer),
            cast(floor(orders.date_id / 100) as integer) % 100,
            orders.date_id % 100
        ) as order_date,
        orders.product_id,
        count(*) as order_count,
        count(case when orders.status = 'paid' then 1 end) as paid_order_count,
        count(case when orders.status = 'pending' then 1 end) as pending_order_count,
        count(case when orders.status = 'cancelled' then 1 end) as cancelled_order_count,
        count(case when orders.status = 'refunded' then 1 end) as refunded_order_count,
        count(case when orders.net_revenue > 0 then 1 end) as sold_order_count,
        cast(sum(orders.quantity) as bigint) as units_sold,
        cast(sum(orders.revenue) as decimal(18, 2)) as gross_revenue,
        cast(sum(orders.net_revenue) as decimal(18, 2)) as net_revenue,
        cast(coalesce(sum(case when orders.status = 'cancelled' then orders.revenue end), 0) as decimal(18, 2))
            as cancelled_revenue,
        cast(coalesce(sum(case when orders.status = 'refunded' then orders.revenue end), 0) as decimal(18, 2))
            as refunded_revenue
    from orders
    group by orders.date_id, orders.product_id
)

select * from final
