-- dim_product_history (current): the SCD2 history as of the latest load date (each partition holds the
-- whole history rebuilt from every snapshot up to its date). Reads `dim_product_history_all`.
-- Grain: one row per product version.
with all_versions as (
    select * from dim_product_history_all
),

final as (
    select *
    from all_versions
    where all_versions.load_date = (select max(latest.load_date) from dim_product_history_all as latest)
)

select * from final
