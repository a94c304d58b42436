-- Question: How much revenue did each product category make per day, by the category each product had on that day, over the last 30 days of data?
-- Grain: one row per category per order date (business day) in the reporting window: the 30 days up to
-- the latest complete day (marts.reporting_window; to see other days, replace it by
-- `(select date '2026-01-01' as first_date, date '2026-03-31' as last_date)`). Category: the one the product had ON THE ORDER DATE
-- (warehouse.dim_product_history, valid on effective_from <= day < effective_to), so a later catalog
-- change leaves a past day as it was (revenue_by_category_daily.sql uses today's categories). A day no
-- catalog version covers (before the product's first snapshot, or an unknown product) counts as 'Unknown'.
-- Revenue: gross = any status, net = sold statuses.
-- Reads the window's 30 days of the mart marts.product_sales_daily (one row per day and product).
with sales as (
    select * from marts.product_sales_daily
),

history as (
    select * from warehouse.dim_product_history
),

reporting_days as (
    select * from marts.reporting_window
),

by_category_day as (
    select
        coalesce(history.category, 'Unknown') as category,
        sales.order_date,
        sum(sales.order_count) as order_count,
        sum(sales.gross_revenue) as total_revenue,
        sum(sales.net_revenue) as net_revenue
    from sales
    inner join reporting_days
        on sales.order_date >= reporting_days.first_date
        and sales.order_date <= reporting_days.last_date
    left join history
        on sales.product_id = history.product_id
        and sales.order_date >= history.effective_from
        and sales.order_date < history.effective_to
    group by coalesce(history.category, 'Unknown'), sales.order_date
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
