-- dim_product: each product's version current on the load date, plus inferred members.
-- Grain: one row per product_id per load_date; partition: load_date.
-- Catalog members are the current versions of dim_product_history (the products of the latest snapshot
-- on or before D; product_key and effective_from are the version's). A product that D's facts reference
-- but that snapshot lacks (or that arrives before any snapshot) becomes an inferred member: 'Unknown
-- product' / 'Unknown' / 'Unknown brand', current_price and effective_from NULL, is_inferred true.
-- brand is never NULL ('Unknown brand').
with history as (
    select * from dim_product_history
),

orders as (
    select * from fact_orders
),

events as (
    select * from fact_events
),

catalog_members as (
    select
        history.product_key,
        history.product_id,
        history.product_name,
        history.category,
        history.brand,
        history.current_price,
        history.effective_from,
        false as is_inferred,
    from history
    where history.is_current
),

referenced_products as (
    select distinct orders.product_id
    from orders
    union
    select distinct events.product_id
    from events
    where events.product_id is not null
),

inferred_members as (
    select
        md5(referenced_products.product_id || '|inferred') as product_key,
        referenced_products.product_id,
        'Unknown product' as product_name,
        'Unknown' as category,
        'Unknown brand' as brand,
        null::decimal(18, 2) as current_price,
        null::date as effective_from,
        true as is_inferred,
    from referenced_products
    anti join catalog_members
        on referenced_products.product_id = catalog_members.product_id
),

members as (
    select * from catalog_members
    union all
    select * from inferred_members
),

final as (
    select
        members.*,
        $load_date::date as load_date,
    from members
    order by members.product_id
)

select * from final
