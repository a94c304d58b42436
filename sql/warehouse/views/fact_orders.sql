-- fact_orders (current): every order once, as of its latest load_date (a later file restates an order,
-- e.g. its status changed). Reads `fact_orders_all`: every fact_orders partition.
-- Grain: one row per order_id; the result depends on the partitions present, not the order they were built in.
with all_versions as (
    select * from fact_orders_all
),

final as (
    select *
    from all_versions
    qualify row_number() over (
        partition by all_versions.order_id order by all_versions.load_date desc
    ) = 1
)

select * from final
