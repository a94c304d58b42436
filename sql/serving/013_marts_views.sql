-- BI views over marts.product_sales_daily: sales per day and product category, by the category a product has
-- now (category_sales_daily: warehouse.dim_product) and by the category it had on the order date
-- (category_sales_daily_as_ordered: warehouse.dim_product_history). Views, not tables: a catalog change
-- moves a past day's figures between current categories, and a late catalog snapshot can change a past
-- day's history, so both are read fresh. Each view's SELECT is the text of its model,
-- sql/marts/<view>.sql (the lake's view of the same name runs that file; tests/test_marts_schema.py keeps
-- the two equal). Grain: one row per business day (order_date) per category.

create or replace view marts.category_sales_daily as
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

select * from final;

comment on view marts.category_sales_daily is
    'Sales per day and product category, by the category each product has now (warehouse.dim_product): a catalog change moves a past day''s figures to the new category. Grain: one row per business day (order_date) per current category; products without a dimension row count as Unknown. Model: sql/marts/category_sales_daily.sql.';
comment on column marts.category_sales_daily.order_date is 'Business day of the orders.';
comment on column marts.category_sales_daily.category is 'Current category of the products (warehouse.dim_product.category), Unknown without a dimension row.';
comment on column marts.category_sales_daily.order_count is 'Orders, any status.';
comment on column marts.category_sales_daily.paid_order_count is 'Of them, orders with status paid.';
comment on column marts.category_sales_daily.sold_order_count is 'Of them, orders that count as sold (net_revenue > 0).';
comment on column marts.category_sales_daily.units_sold is 'Units ordered, any status.';
comment on column marts.category_sales_daily.gross_revenue is 'Revenue, any status.';
comment on column marts.category_sales_daily.net_revenue is 'Revenue that counts as sold (sold statuses only).';

create or replace view marts.category_sales_daily_as_ordered as
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

select * from final;

comment on view marts.category_sales_daily_as_ordered is
    'Sales per day and product category, by the category each product had on the order date (warehouse.dim_product_history, valid on effective_from <= day < effective_to): later catalog changes leave a past day as it was. Grain: one row per business day (order_date) per category as of that day; a day no catalog version covers counts as Unknown. Model: sql/marts/category_sales_daily_as_ordered.sql.';
comment on column marts.category_sales_daily_as_ordered.order_date is 'Business day of the orders.';
comment on column marts.category_sales_daily_as_ordered.category is 'Category the products had on the order date (warehouse.dim_product_history), Unknown where no catalog version covers the day.';
comment on column marts.category_sales_daily_as_ordered.order_count is 'Orders, any status.';
comment on column marts.category_sales_daily_as_ordered.paid_order_count is 'Of them, orders with status paid.';
comment on column marts.category_sales_daily_as_ordered.sold_order_count is 'Of them, orders that count as sold (net_revenue > 0).';
comment on column marts.category_sales_daily_as_ordered.units_sold is 'Units ordered, any status.';
comment on column marts.category_sales_daily_as_ordered.gross_revenue is 'Revenue, any status.';
comment on column marts.category_sales_daily_as_ordered.net_revenue is 'Revenue that counts as sold (sold statuses only).';

grant select on marts.category_sales_daily, marts.category_sales_daily_as_ordered to ecomm_reader;
