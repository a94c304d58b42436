-- int_validated: rows of one source and load date with their staging outcome; a temp view, or a CTE.
-- Grain: one row per row it reads (nothing dropped), in their order. Reads `checked_records`: the
-- source's int_<source>_checked rows (typed, with the first row rule each breaks) with the rows
-- int_duplicates drops marked: _drop_is_duplicate (NULL = kept, true = an exact duplicate, false = a
-- same-id row dropped), _drop_reason_code (duplicate_id_conflict or multiple_order_lines) and
-- _drop_kept_row_number (the row kept instead). Staging reads it twice: over int_flagged (marked in
-- place) for the quarantine and the counts, and over int_kept, streamed, for the staging partition.
-- _reason_code NULL and not _is_duplicate: staged; _reason_code set: quarantined; _is_duplicate:
-- an exact duplicate, counted. A row's reason is its row rule, else its drop reason.
-- A single-table select on purpose: DuckDB keeps such a result in insertion (= source-file) order,
-- so the staging partition needs no sort (a join here would need an ORDER BY of the whole day).
with checked as not materialized (
    -- read in place: copying a 2M-row day into a CTE would double the cost
    select * from checked_records
),

outcomes as (
    select
        checked.*,
        coalesce(checked._drop_is_duplicate, false) as is_duplicate,
        case
            when checked._drop_is_duplicate is null then checked._row_reason_code
            when not checked._drop_is_duplicate then checked._drop_reason_code
        end as reason_code,
    from checked
),

final as (
    select
        outcomes.* exclude (
            _line_key, _raw_record, _version_ts, _row_reason_code, _failing_value, _row_detail,
            _drop_is_duplicate, _drop_reason_code, _drop_kept_row_number, is_duplicate, reason_code
        ),
        outcomes.is_duplicate as _is_duplicate,
        outcomes.reason_code as _reason_code,
        case
            when outcomes._drop_is_duplicate is null then outcomes._failing_value
            when not outcomes._drop_is_duplicate then outcomes._record_id
        end as _failing_value,
        case
            when outcomes._drop_is_duplicate is null then outcomes._row_detail
            when not outcomes._drop_is_duplicate then 'kept row ' || outcomes._drop_kept_row_number
        end as _detail,
        case when outcomes.reason_code is not null then to_json(outcomes._raw_record)::varchar end
            as _raw_record,
    from outcomes
)

select * from final
