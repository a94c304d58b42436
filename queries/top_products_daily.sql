-- Question: Which products brought in the most net revenue each day, and how many units and orders was that?
-- Grain: one row per product per order date (business day) in the reporting window: the 30 days ending
-- at the latest complete day (marts.reporting_window; to see other days, replace it by
-- `(select date '2026-01-01' as first_date, date '2026-03-31' as last_date)`), over the current
-- version of every order. Reads the window's days of the mart marts.product_sales_daily (one row per
-- day and product), not the row-level facts: its cost does not grow with history.
-- net_revenue counts sold statuses only, gross_revenue any status. product_rank orders a day's
-- products by net revenue, then gross revenue, then product_id: 1 is the day's best seller, so
-- `where product_rank <= 5` is a day's top five. Products unknown to the catalog appear as their
-- inferred member ('Unknown product').
with sales as (
    select * from marts.product_sales_daily
),

products as (
    select * from warehouse.dim_product
),

reporting_days as (
    select * from marts.reporting_window
),

by_product_day as (
    select
        sales.order_date,
        sales.product_id,
        sales.order_count,
        sales.units_sold,
        sales.gross_revenue,
        sales.net_revenue
    from sales
    inner join reporting_days
        on sales.order_date >= reporting_days.first_date
        and sales.order_date <= reporting_days.last_date
    where sales.order_count > 0
),

final as (
    select
        by_product_day.order_date,
        row_number() over (
            partition by by_product_day.order_date
            order by by_product_day.net_revenue desc nulls last, by_product_day.gross_revenue desc nulls last,
                by_product_day.product_id nulls last
        ) as product_rank,
        by_product_day.product_id,
        coalesce(products.product_name, 'Unknown product') as product_name,
        coalesce(products.category, 'Unknown') as category,
        by_product_day.order_count,
        cast(by_product_day.units_sold as bigint) as units_sold,
        cast(by_product_day.gross_revenue as decimal(18, 2)) as gross_revenue,
        cast(by_product_day.net_revenue as decimal(18, 2)) as net_revenue
    from by_product_day
    left join products
        on by_product_day.product_id = products.product_id
)

select * from final
order by final.order_date, final.product_rank
