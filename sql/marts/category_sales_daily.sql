-- category_sales_daily: revenue, orders and units per order date and product category, by the category each product has now.
-- Grain: one row per business day (order_date) per current category. A view over marts.product_sales_daily
-- and warehouse.dim_product, so a past day's figures move to a product's new category when the weekly
-- catalog changes it (marts.category_sales_daily_as_ordered keeps the category of the order date). A
-- product without a dimension row counts as 'Unknown'.
with sales as (
    select * from marts.product_sales_daily
),

products as (
    select * from warehouse.dim_product
),

final as (
    select
        sales.order_date,
        coalesce(products.category, 'Unknown') as category,
        cast(sum(sales.order_count) as bigint) as order_count,
        cast(sum(sales.paid_order_count) as bigint) as paid_order_count,
        cast(sum(sales.sold_order_count) as bigint) as sold_order_count,
        cast(sum(sales.units_sold) as bigint) as units_sold,
        cast(sum(sales.gross_revenue) as decimal(18, 2)) as gross_revenue,
        cast(sum(sales.net_revenue) as decimal(18, 2)) as net_revenue
    from sales
    left join products
        on sales.product_id = products.product_id
    group by sales.order_date, coalesce(products.category, 'Unknown')
)

select * from final
