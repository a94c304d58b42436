-- source_loss (a quality gate view, not a lake table): how much of what each source delivered for the
-- load date was thrown away. Grain: one row per source reconciled for the load date (stg_orders and
-- stg_events every day, stg_products / stg_users on snapshot days). pipeline.quality.gate_views builds it for
-- checks/audit/source_loss.yml from the date's audit/reconciliation rows (`reconciliation`) and the
-- row counts of its audit/rejected_lines partitions (`rejected_line_counts`, keyed by raw source name).
-- received = raw rows + lines the reader rejected: a file whose lines were mostly rejected has few raw
-- rows, so raw alone would hide the loss. lost = quarantined + rejected (duplicates are not lost: one
-- copy of each is staged). Shares are percentages of received, 0 when nothing was received.
-- Two figures are judged on their own, as shares of the raw rows (0 without any): duplicate_pct, the rows
-- collapsed as exact copies of another row of the file (a few resent rows are normal; a large share is a changed
-- export, e.g. an order of quantity 3 sent as three lines of quantity 1), and multiple_order_lines_pct, the
-- rows quarantined as another line of an order already kept (the file's grain changed), counted from the date's
-- audit/bad_records reason counts (`quarantined_reasons`: source_table, reason_code, row_count).
with reconciled as (
    select * from reconciliation
),

rejected as (
    select
        'stg_' || rejected_line_counts.source_table as source_table,
        sum(rejected_line_counts.rejected_count) as rejected_count,
    from rejected_line_counts
    where rejected_line_counts.load_date = $load_date
    group by 1
),

grain_changes as (
    select
        quarantined_reasons.source_table,
        sum(quarantined_reasons.row_count) as multiple_order_lines_count,
    from quarantined_reasons
    where quarantined_reasons.reason_code = 'multiple_order_lines'
    group by 1
),

counted as (
    select
        coalesce(reconciled.source_table, rejected.source_table) as source_table,
        coalesce(reconciled.raw_count, 0) as raw_count,
        coalesce(rejected.rejected_count, 0)::bigint as rejected_count,
        coalesce(reconciled.staged_count, 0) as staged_count,
        coalesce(reconciled.quarantined_count, 0) as quarantined_count,
        coalesce(reconciled.duplicate_count, 0) as duplicate_count,
        coalesce(grain_changes.multiple_order_lines_count, 0)::bigint as multiple_order_lines_count,
    from reconciled
    full outer join rejected
        on reconciled.source_table = rejected.source_table
    left join grain_changes
        on coalesce(reconciled.source_table, rejected.source_table) = grain_changes.source_table
),

final as (
    select
        counted.source_table,
        counted.raw_count + counted.rejected_count as received_count,
        counted.raw_count,
        counted.rejected_count,
        counted.staged_count,
        counted.quarantined_count,
        counted.duplicate_count,
        counted.quarantined_count + counted.rejected_count as lost_count,
        coalesce(100.0 * (counted.quarantined_count + counted.rejected_count)
            / nullif(counted.raw_count + counted.rejected_count, 0), 0)::double as lost_pct,
        coalesce(100.0 * counted.rejected_count
            / nullif(counted.raw_count + counted.rejected_count, 0), 0)::double as rejected_pct,
        coalesce(100.0 * counted.duplicate_count / nullif(counted.raw_count, 0), 0)::double as duplicate_pct,
        counted.multiple_order_lines_count,
        coalesce(100.0 * counted.multiple_order_lines_count / nullif(counted.raw_count, 0), 0)::double
            as multiple_order_lines_pct,
    from counted
)

select * from final
order by final.source_table
