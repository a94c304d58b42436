-- Question: How much revenue does each product category make per day, over the last 30 days of data?
-- The seed's "Revenue by Category (Daily)", fixed: the 30 days end at the latest order date in the
-- data, not CURRENT_DATE (the answer no longer depends on the day it runs); orders whose product has
-- no dimension row count as 'Unknown' instead of vanishing in the join; the average is exact.
-- Grain: one row per category per order date (UTC). Revenue: gross = any status, net = sold statuses.
-- Runs unchanged on the lake (DuckDB, pipeline.lake.views) and on Postgres; see queries/README.md.
with orders as (
    select * from warehouse.fact_orders
),

products as (
    select * from warehouse.dim_product
),

last_day as (
    select max(cast(orders.order_ts as date)) as max_order_date
    from orders
),

recent_orders as (
    select
        coalesce(products.category, 'Unknown') as category,
        cast(orders.order_ts as date) as order_date,
        orders.revenue,
        orders.net_revenue
    from orders
    cross join last_day
    left join products
        on orders.product_id = products.product_id
    where cast(orders.order_ts as date) > last_day.max_order_date - 30
),

by_category_day as (
    select
        recent_orders.category,
        recent_orders.order_date,
        count(*) as order_count,
        sum(recent_orders.revenue) as total_revenue,
        sum(recent_orders.net_revenue) as net_revenue
    from recent_orders
    group by recent_orders.category, recent_orders.order_date
),

final as (
    select
        by_category_day.category,
        by_category_day.order_date,
        by_category_day.order_count,
        cast(by_category_day.total_revenue as decimal(18, 2)) as total_revenue,
        cast(by_category_day.net_revenue as decimal(18, 2)) as net_revenue,
        -- total / orders, rounded half up to the cent exactly on both engines (queries/README.md)
        cast(cast(floor(
            (200 * by_category_day.total_revenue + by_category_day.order_count)
            / cast(2 * by_category_day.order_count as double precision)
        ) as bigint) * 0.01 as decimal(18, 2)) as avg_order_value
    from by_category_day
)

select * from final
order by final.order_date desc, final.total_revenue desc, final.category
