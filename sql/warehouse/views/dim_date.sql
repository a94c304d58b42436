-- dim_date (current): one row per calendar date any load date referred to. Reads `dim_date_all`.
-- Grain: one row per date_id (the attributes are the same in every partition; the latest is kept).
with all_versions as (
    select * from dim_date_all
),

final as (
    select *
    from all_versions
    qualify row_number() over (
        partition by all_versions.date_id order by all_versions.load_date desc
    ) = 1
)

select * from final
