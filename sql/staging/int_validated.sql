-- int_validated: every raw row of one source and load date with its staging outcome; a temp view.
-- Grain: one row per raw row (nothing dropped). Reads `checked_records` (the source's
-- int_<source>_checked: typed rows and the first row rule each breaks) and int_duplicates.
-- _reason_code NULL and not _is_duplicate: staged; _reason_code set: quarantined; _is_duplicate:
-- an exact duplicate, counted. A row's reason is its row rule, else duplicate_id_conflict.
with checked as not materialized (
    -- read in place: copying a 2M-row day into a CTE would double the cost
    select * from checked_records
),

duplicates as not materialized (
    select * from int_duplicates
),

kept_rows as (
    -- almost every row; the outcome is a plain column here so that filters on it reach the scan
    select
        checked.* exclude (_raw_record, _version_ts, _row_reason_code, _failing_value),
        false as _is_duplicate,
        checked._row_reason_code as _reason_code,
        checked._failing_value,
        null::varchar as _detail,
        case when checked._row_reason_code is not null then to_json(checked._raw_record)::varchar end
            as _raw_record,
    from checked
    anti join duplicates
        on checked._row_number = duplicates._row_number
),

dropped_rows as (
    select
        checked.* exclude (_raw_record, _version_ts, _row_reason_code, _failing_value),
        duplicates.is_duplicate as _is_duplicate,
        case
            when duplicates.is_duplicate then null
            else 'duplicate_id_conflict'
        end as _reason_code,
        case when not duplicates.is_duplicate then checked._record_id end as _failing_value,
        case
            when not duplicates.is_duplicate then 'kept row ' || duplicates.kept_row_number
        end as _detail,
        case when not duplicates.is_duplicate then to_json(checked._raw_record)::varchar end as _raw_record,
    from checked
    inner join duplicates
        on checked._row_number = duplicates._row_number
),

final as (
    select * from kept_rows
    union all
    select * from dropped_rows
)

select * from final
