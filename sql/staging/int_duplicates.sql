-- int_duplicates: the rows of one source and load date that duplicate resolution drops; a temp table.
-- Grain: one row per dropped raw row (a few per day). Reads `checked_records`: the source's
-- int_<source>_checked rows with the standard columns _record_id, _line_key, _raw_record, _version_ts,
-- _row_number and _row_reason_code; staging gives it int_flagged's (every row that shares its id with
-- another or lacks one, among others), so the windows below partition a few rows, not the day.
-- - Exact duplicates (same _raw_record fields: every source field, lineage aside, in any key order,
--   record_fields in macros.sql): every row after the first in the file is dropped and counted as a
--   duplicate (is_duplicate), valid or not.
-- - Same id, different content, among rows that pass the row rules: one is kept, the latest
--   _version_ts (order/event timestamp) then the highest _row_number (the later line of the file);
--   the others are dropped with the kept row's number: as duplicate_id_conflict when they are another
--   version of the kept row's line (same _line_key), as multiple_order_lines when they are another
--   line of the same order (a different _line_key: orders carry their product_id; one row per order).
with checked as (
    select * from checked_records
),

deduplicated as (
    select
        checked.*,
        row_number() over (
            partition by record_fields(checked._raw_record) order by checked._row_number
        ) > 1 as is_duplicate,
    from checked
),

ranked as (
    select
        deduplicated.*,
        row_number() over same_id as id_rank,
        first_value(deduplicated._row_number) over same_id as kept_row_number,
        first_value(deduplicated._line_key) over same_id as kept_line_key,
    from deduplicated
    window same_id as (
        partition by
            deduplicated._record_id,
            (deduplicated._row_reason_code is null and not deduplicated.is_duplicate)
        order by deduplicated._version_ts desc nulls last, deduplicated._row_number desc
    )
),

final as (
    select
        ranked._row_number,
        ranked.is_duplicate,
        case when not ranked.is_duplicate then ranked.kept_row_number end as kept_row_number,
        case
            when ranked.is_duplicate then null
            when ranked._line_key is distinct from ranked.kept_line_key then 'multiple_order_lines'
            else 'duplicate_id_conflict'
        end as reason_code,
    from ranked
    where ranked.is_duplicate
        or (ranked._row_reason_code is null and ranked.id_rank > 1)
)

select * from final
