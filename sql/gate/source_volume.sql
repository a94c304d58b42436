-- source_volume (a quality gate view, not a lake table): the records a daily source received on the
-- load date against the median of the previous $volume_window load dates that have a reconciliation
-- record for that source. Grain: one row per daily source ($volume_sources) reconciled for the date.
-- pipeline.quality.gate_views builds it for checks/audit/source_volume.yml after source_loss, from earlier
-- dates' lake audit partitions only (`reconciliation_history`, `rejected_line_counts`): never Postgres
-- and never a later date, so rerunning a date judges it against the same history.
-- received = raw rows + rejected lines, as in source_loss. volume_ratio = received / median; NULL
-- (is_evaluated false) while fewer than $volume_min_history earlier load dates are known.
with today as (
    select * from source_loss
    where list_contains($volume_sources, source_loss.source_table)
),

rejected as (
    select
        rejected_line_counts.load_date,
        'stg_' || rejected_line_counts.source_table as source_table,
        sum(rejected_line_counts.rejected_count) as rejected_count,
    from rejected_line_counts
    group by all
),

earlier as (
    select
        history.source_table,
        history.load_date,
        history.raw_count + coalesce(rejected.rejected_count, 0) as received_count,
        row_number() over (
            partition by history.source_table order by history.load_date desc
        ) as recency,
    from reconciliation_history as history
    left join rejected
        on history.load_date = rejected.load_date
        and history.source_table = rejected.source_table
    where history.load_date < $load_date
),

trailing_median as (
    select
        earlier.source_table,
        count(*) as history_count,
        median(earlier.received_count)::double as median_received_count,
        min(earlier.load_date) as history_first_date,
        max(earlier.load_date) as history_last_date,
    from earlier
    where earlier.recency <= $volume_window
    group by earlier.source_table
),

final as (
    select
        today.source_table,
        today.received_count,
        coalesce(trailing_median.history_count, 0) as history_count,
        trailing_median.median_received_count,
        trailing_median.history_first_date,
        trailing_median.history_last_date,
        coalesce(trailing_median.history_count, 0) >= $volume_min_history as is_evaluated,
        case when coalesce(trailing_median.history_count, 0) >= $volume_min_history then
            today.received_count / nullif(trailing_median.median_received_count, 0)
        end as volume_ratio,
    from today
    left join trailing_median
        on today.source_table = trailing_median.source_table
)

select * from final
order by final.source_table
