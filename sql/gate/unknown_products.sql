-- unknown_products (a quality gate query, not a lake table): how many of a fact table's rows of the load date name a
-- product the catalog does not list (is_known_product false), and which, for the unknown-product checks' messages.
-- Grain: one row; no partition. Reads `fact_rows`: the date's fact_orders or fact_events, whichever the check is
-- about (pipeline.quality.unknown_products). Rows without a product (an event's page_view) are not counted, as the
-- checks do not count them. Cost: the fact is aggregated by product_id once (a day's few thousand products).
with facts as (
    select * from fact_rows
),

named as (
    select
        facts.product_id,
        facts.is_known_product,
    from facts
    where facts.product_id is not null
),

unknown as (
    select
        named.product_id,
        count(*) as row_count,
    from named
    where not named.is_known_product
    group by named.product_id
),

final as (
    select
        (select count(*) from named)::bigint as row_count,
        coalesce(sum(unknown.row_count), 0)::bigint as unknown_row_count,
        count(unknown.product_id)::bigint as unknown_product_count,
        -- the unknown products with the most rows first, for the message
        coalesce(list(unknown.product_id order by unknown.row_count desc, unknown.product_id), [])[1:5]
            as unknown_product_examples,
    from unknown
)

select * from final
