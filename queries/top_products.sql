-- Question: Which 10 products bring in the most net revenue, and how many units and orders is that?
-- Grain: one row per product, the 10 with the highest net revenue (sold statuses), ties broken by
-- product_id. Products unknown to the catalog appear as their inferred member ('Unknown product').
-- net_revenue_share is the product's percentage of all net revenue. Category: the product's current one.
-- Reads the mart marts.product_sales (one row per product, over the whole history).
with by_product as (
    select * from marts.product_sales
),

products as (
    select * from warehouse.dim_product
),

totals as (
    select sum(by_product.net_revenue) as all_net_revenue
    from by_product
),

final as (
    select
        by_product.product_id,
        coalesce(products.product_name, 'Unknown product') as product_name,
        coalesce(products.category, 'Unknown') as category,
        by_product.order_count,
        by_product.units_sold,
        by_product.gross_revenue,
        by_product.net_revenue,
        -- 100 * a / b rounded half up to 2 decimals, exactly; NULL when b = 0 (queries/README.md)
        cast(cast(floor(
            (20000 * by_product.net_revenue + totals.all_net_revenue)
            / cast(2 * nullif(totals.all_net_revenue, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as net_revenue_share
    from by_product
    cross join totals
    left join products
        on by_product.product_id = products.product_id
)

select * from final
order by final.net_revenue desc, final.product_id
limit 10
