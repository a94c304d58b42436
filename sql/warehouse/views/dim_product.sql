-- dim_product (current): one row per product ever seen. Reads `dim_product_all`: every partition.
-- Grain: one row per product_id: the catalog version of the latest load date that had the product in
-- its catalog; an inferred member only when no load date ever found the product in a catalog.
with all_versions as (
    select * from dim_product_all
),

final as (
    select *
    from all_versions
    qualify row_number() over (
        partition by all_versions.product_id
        order by all_versions.is_inferred asc, all_versions.load_date desc
    ) = 1
)

select * from final
