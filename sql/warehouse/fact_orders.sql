-- fact_orders: the day's staged orders as facts, revenue exact in DECIMAL(18,2).
-- Grain: one row per order line per load_date (the seed's orders have one line each); partition: load_date.
-- A late order keeps load_date = D and gets the date_id of its own UTC day. The same order_id on several
-- load dates is kept in each; the current view (views/fact_orders.sql) keeps the latest load_date.
-- is_known_product: the product is in the latest catalog snapshot on or before D, tested with a cast
-- to catalog_product_id, an ENUM of that snapshot's product ids (pipeline.warehouse.register_inputs):
-- not a join, so the facts keep staging's (source-file) row order without a sort.
with orders as (
    select * from stg_orders
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
        try_cast(priced.product_id as catalog_product_id) is not null as is_known_product,
        $load_date::date as load_date,
    from priced
)

select * from final
