-- audit.reconciliation: one source's staging counts for one load date; raw = staged + quarantined + duplicates.
-- Grain: one row per source table per load_date; partition: load_date / source_table.
-- The counts are measured by stage() and bound as parameters.
with counts as (
    select
        $source_table as source_table,
        $load_date::date as load_date,
        $raw_count::bigint as raw_count,
        $staged_count::bigint as staged_count,
        $quarantined_count::bigint as quarantined_count,
        $duplicate_count::bigint as duplicate_count,
),

final as (
    select
        counts.*,
        counts.raw_count = counts.staged_count + counts.quarantined_count + counts.duplicate_count
            as is_balanced,
    from counts
)

select * from final
