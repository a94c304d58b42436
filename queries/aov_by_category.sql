-- Question: What is the average order value in each product category, over all orders and over sold ones?
-- Grain: one row per category (products without a dimension row: 'Unknown'), by the category each
-- product has now (warehouse.dim_product). avg_order_value = gross revenue / orders (any status);
-- avg_sold_order_value = net revenue / sold orders (those with net revenue > 0: [model] sold_statuses, paid by
-- default, and not priced 0.00); avg_units_per_order = units / orders. Rounded half up, exactly on both engines.
-- Reads the mart marts.product_sales (one row per product, over the whole history).
with sales as (
    select * from marts.product_sales
),

products as (
    select * from warehouse.dim_product
),

by_category as (
    select
        coalesce(products.category, 'Unknown') as category,
        sum(sales.order_count) as order_count,
        sum(sales.sold_order_count) as sold_order_count,
        sum(sales.units_sold) as units_sold,
        sum(sales.gross_revenue) as gross_revenue,
        sum(sales.net_revenue) as net_revenue
    from sales
    left join products
        on sales.product_id = products.product_id
    group by coalesce(products.category, 'Unknown')
),

final as (
    select
        by_category.category,
        cast(by_category.order_count as bigint) as order_count,
        cast(by_category.sold_order_count as bigint) as sold_order_count,
        cast(by_category.gross_revenue as decimal(18, 2)) as gross_revenue,
        cast(by_category.net_revenue as decimal(18, 2)) as net_revenue,
        -- a / b rounded half up to 2 decimals, exactly; NULL when b = 0 (queries/README.md)
        cast(cast(floor(
            (200 * by_category.gross_revenue + by_category.order_count)
            / cast(2 * nullif(by_category.order_count, 0) as double precision)
        ) as bigint) * 0.01 as decimal(18, 2)) as avg_order_value,
        cast(cast(floor(
            (200 * by_category.net_revenue + by_category.sold_order_count)
            / cast(2 * nullif(by_category.sold_order_count, 0) as double precision)
        ) as bigint) * 0.01 as decimal(18, 2)) as avg_sold_order_value,
        cast(cast(floor(
            (200 * by_category.units_sold + by_category.order_count)
            / cast(2 * nullif(by_category.order_count, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as avg_units_per_order
    from by_category
)

select * from final
order by final.avg_order_value desc, final.category
