-- fact_events: the day's staged clickstream events as facts.
-- Grain: one row per event per load_date; partition: load_date. A late event keeps load_date = D and
-- gets the date_id of its own UTC day. The same event_id on several load dates is kept in each; the
-- current view (views/fact_events.sql) keeps the first (earliest) load_date.
-- is_known_product: the product is in the latest catalog snapshot on or before D; an event without a
-- product (page_view) refers to no product, so it is known (nothing is missing from the catalog).
with events as (
    select * from stg_events
),

product_snapshot as (
    -- the latest stg_products snapshot on or before the load date (empty before the first one)
    select * from stg_products_snapshot
),

catalog as (
    select distinct product_snapshot.product_id
    from product_snapshot
),

final as (
    select
        events.event_id,
        events.user_id,
        events.product_id,
        events.event_type,
        events.event_ts,
        date_id(events.event_ts) as date_id,
        events.product_id is null or catalog.product_id is not null as is_known_product,
        $load_date::date as load_date,
    from events
    left join catalog
        on events.product_id = catalog.product_id
    -- staging's (source-file) order: the join may reorder rows, and a rebuild must write the same file
    order by events._row_number
)

select * from final
