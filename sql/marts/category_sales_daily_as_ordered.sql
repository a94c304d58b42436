-- category_sales_daily_as_ordered: revenue, orders and units per order date and the category the product had on that date.
-- Grain: one row per business day (order_date) per category as of that day. A view over
-- marts.product_sales_daily and warehouse.dim_product_history (SCD2: a version is valid on
-- effective_from <= day < effective_to), so a past day keeps the category its products had then when
-- the catalog changes later (marts.category_sales_daily uses today's categories). A day no catalog
-- version covers (before the product's first snapshot, or an inferred product) counts as 'Unknown'.
with sales as (
    select * from marts.product_sales_daily
),

history as (
    select * from warehouse.dim_product_history
),

final as (
    select
        sales.order_date,
        coalesce(history.category, 'Unknown') as category,
        cast(sum(sales.order_count) as bigint) as order_count,
        cast(sum(sales.paid_order_count) as bigint) as paid_order_count,
        cast(sum(sales.sold_order_count) as bigint) as sold_order_count,
        cast(sum(sales.units_sold) as bigint) as units_sold,
        cast(sum(sales.gross_revenue) as decimal(18, 2)) as gross_revenue,
        cast(sum(sales.net_revenue) as decimal(18, 2)) as net_revenue
    from sales
    left join history
        on sales.product_id = history.product_id
        and sales.order_date >= history.effective_from
        and sales.order_date < history.effective_to
    group by sales.order_date, coalesce(history.category, 'Unknown')
)

select * from final
