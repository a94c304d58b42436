-- audit.reconciliation: one source's record counts for one load date, from the file to staging.
-- Grain: one row per source table per load_date; partition: load_date / source_table.
-- Two balances: source_records = raw_count + rejected_count (every record of the file was landed or
-- rejected at landing) and raw_count = staged_count + quarantined_count + duplicate_count. The counts
-- are measured by stage() (source_records from the raw manifest, rejected_count from
-- audit/rejected_lines, the others from the partitions) and bound as parameters.
with counts as (
    select
        $source_table as source_table,
        $load_date::date as load_date,
        $raw_count::bigint as raw_count,
        $staged_count::bigint as staged_count,
        $quarantined_count::bigint as quarantined_count,
        $duplicate_count::bigint as duplicate_count,
        $source_records::bigint as source_records,
        $rejected_count::bigint as rejected_count,
),

final as (
    select
        counts.source_table,
        counts.load_date,
        counts.raw_count,
        counts.staged_count,
        counts.quarantined_count,
        counts.duplicate_count,
        counts.raw_count = counts.staged_count + counts.quarantined_count + counts.duplicate_count
            and counts.source_records = counts.raw_count + counts.rejected_count
            as is_balanced,
        counts.source_records,
        counts.rejected_count,
    from counts
)

select * from final
