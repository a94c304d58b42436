-- fact_events: the day's staged clickstream events as facts.
-- Grain: one row per event per load_date; partition: load_date. date_id is the event's business day
-- ([model] business_timezone, default UTC); a late event keeps load_date = D and gets the date_id of its
-- own day. The same event_id on several load dates is kept in each; the current view
-- (views/fact_events.sql) keeps the first (earliest) load_date.
-- is_known_product: the product is a catalog member of dim_product on D (not an inferred one); an event
-- without a product (page_view) refers to no product, so it is known (nothing is missing from the catalog).
-- catalog_product_id is an ENUM of those ids (sql/warehouse/types/catalog_product_id.sql):
-- membership is a cast, not a join, so the facts keep staging's (source-file) row order without a
-- sort and a rebuild writes the same file.
with events as (
    select * from stg_events
),

final as (
    select
        events.event_id,
        events.user_id,
        events.product_id,
        events.event_type,
        events.event_ts,
        date_id(business_date(events.event_ts, $business_timezone)) as date_id,
        events.product_id is null
            or try_cast(events.product_id as catalog_product_id) is not null as is_known_product,
        $load_date::date as load_date,
    from events
)

select * from final
