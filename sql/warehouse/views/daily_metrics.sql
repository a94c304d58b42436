-- daily_metrics (current): one row per run date. Reads `daily_metrics_all`: every partition.
-- Grain: one row per run_date (each partition holds exactly its own date).
with all_versions as (
    select * from daily_metrics_all
),

final as (
    select *
    from all_versions
    qualify row_number() over (
        partition by all_versions.run_date order by all_versions.load_date desc
    ) = 1
)

select * from final
