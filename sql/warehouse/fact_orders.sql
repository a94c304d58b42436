-- fact_orders: the day's staged orders as facts, revenue exact in DECIMAL(18,2).
-- Grain: one row per order (order_id) per load_date; partition: load_date. An order is one line (one
-- product), as in the seed's contract: staging quarantines a second line of an order (same order_id,
-- another product_id) as multiple_order_lines, so order_id is the key. date_id is the order's business
-- day ([model] business_timezone, default UTC); a late order keeps load_date = D and gets the date_id of
-- its own day. The same order_id on several load dates is kept in each; the current view
-- (views/fact_orders.sql) keeps the latest load_date.
-- is_known_product: the product is a catalog member of dim_product on D (not an inferred one), tested
-- with a cast to catalog_product_id, an ENUM of those ids (sql/warehouse/types/catalog_product_id.sql):
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
        date_id(business_date(priced.order_ts, $business_timezone)) as date_id,
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
