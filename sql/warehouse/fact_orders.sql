-- fact_orders: the day's staged orders as facts, revenue exact in DECIMAL(18,2).
-- Grain: one row per order line per load_date (the seed's orders have one line each); partition: load_date.
-- A late order keeps load_date = D and gets the date_id of its own UTC day. The same order_id on several
-- load dates is kept in each; the current view (views/fact_orders.sql) keeps the latest load_date.
with orders as (
    select * from stg_orders
),

product_snapshot as (
    -- the latest stg_products snapshot on or before the load date (empty before the first one)
    select * from stg_products_snapshot
),

catalog as (
    select distinct product_snapshot.product_id
    from product_snapshot
),

priced as (
    select
        orders.*,
        (orders.quantity * orders.unit_price)::decimal(18, 2) as revenue,
    from orders
),

final as (
    select
        priced.order_id,
        priced.user_id,
        priced.product_id,
        date_id(priced.order_ts) as date_id,
        priced.order_ts,
        priced.quantity,
        priced.unit_price,
        priced.revenue,
        priced.status,
        case
            when list_contains($sold_statuses, priced.status) then priced.revenue
            else 0
        end::decimal(18, 2) as net_revenue,
        catalog.product_id is not null as is_known_product,
        $load_date::date as load_date,
    from priced
    left join catalog
        on priced.product_id = catalog.product_id
    -- staging's (source-file) order: the join may reorder rows, and a rebuild must write the same file
    order by priced._row_number
)

select * from final
