-- Question: How much revenue does each product category make per day, over the last 30 days of data?
-- The seed's "Revenue by Category (Daily)", fixed: the 30 days end at the latest complete day
-- (marts.reporting_window: the 30 days up to marts.latest_complete_day), not CURRENT_DATE (the answer no longer depends on the day it runs);
-- orders whose product has no dimension row count as 'Unknown' instead of vanishing in the join; the
-- average is exact.
-- Grain: one row per category per order date (business day) in the reporting window (to see other
-- days, replace marts.reporting_window by `(select date '2026-01-01' as first_date, date '2026-03-31'
-- as last_date)`). Category: the one each product has NOW
-- (warehouse.dim_product), so a past day's figures follow a product into its new category when the
-- catalog changes it (revenue_by_category_as_ordered.sql keeps the category of the order date).
-- Revenue: gross = any status, net = sold statuses.
-- Reads the window's 30 days of the mart marts.product_sales_daily (one row per day and product).
with sales as (
    select * from marts.product_sales_daily
),

products as (
    select * from warehouse.dim_product
),

reporting_days as (
    select * from marts.reporting_window
),

by_category_day as (
    select
        coalesce(products.category, 'Unknown') as category,
        sales.order_date,
        sum(sales.order_count) as order_count,
        sum(sales.gross_revenue) as total_revenue,
        sum(sales.net_revenue) as net_revenue
    from sales
    inner join reporting_days
        on sales.order_date >= reporting_days.first_date
        and sales.order_date <= reporting_days.last_date
    left join products
        on sales.product_id = products.product_id
    group by coalesce(products.category, 'Unknown'), sales.order_date
),

final as (
    select
        by_category_day.category,
        by_category_day.order_date,
        cast(by_category_day.order_count as bigint) as order_count,
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
