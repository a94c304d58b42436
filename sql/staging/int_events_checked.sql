-- int_events_checked: every raw event of one load date, typed, with the first row rule it breaks.
-- Grain: one row per raw event record; a temp table (not a lake table) that int_duplicates and
-- int_validated read. Rules, checked in this order: pipeline/staging.py REASON_CODES. A page_view
-- needs no product; every other event type does.
with source as (
    select
        raw_events.*,
        -- every column of the CSV (extra ones included), lineage aside: equal records are exact duplicates
        struct_pack(*columns(* exclude (_source_file, _row_number, _ingested_at))) as raw_record,
    from raw_events
),

cleaned as (
    select
        clean_text(source.event_id) as event_id,
        clean_text(source.user_id) as user_id,
        clean_text(source.product_id) as product_id,
        clean_text(source.event_type) as event_type_text,
        clean_text(source.event_ts) as event_ts_text,
        source.raw_record,
        source._source_file,
        source._row_number,
    from source
),

typed as (
    select
        cleaned.*,
        lower(cleaned.event_type_text) as event_type,
        utc_timestamp(cleaned.event_ts_text) as event_ts,
    from cleaned
),

checked as (
    select
        typed.*,
        case
            when typed.event_id is null then 'missing_event_id'
            when typed.user_id is null then 'missing_user_id'
            when typed.event_type is null or not list_contains($event_types, typed.event_type)
                then 'unknown_event_type'
            when typed.product_id is null and typed.event_type <> 'page_view' then 'missing_product_id'
            when typed.event_ts is null then 'invalid_timestamp'
            when typed.event_ts > ($load_date::date + 1)::timestamp + to_hours($future_tolerance_hours)
                then 'future_timestamp'
            when typed.event_ts < timestamp '1970-01-01'
                or typed.event_ts < ($load_date::date - $late_window_days::integer)::timestamp
                then 'ancient_timestamp'
        end as row_reason_code,
    from typed
),

final as (
    select
        checked.event_id,
        checked.user_id,
        checked.product_id,
        checked.event_type,
        checked.event_ts,
        $load_date::date as load_date,
        checked._source_file,
        checked._row_number,
        checked.event_id as _record_id,
        checked.raw_record as _raw_record,
        checked.event_ts as _version_ts,
        checked.row_reason_code as _row_reason_code,
        case checked.row_reason_code
            when 'missing_user_id' then checked.user_id
            when 'missing_product_id' then checked.product_id
            when 'unknown_event_type' then checked.event_type_text
            when 'invalid_timestamp' then checked.event_ts_text
            when 'future_timestamp' then checked.event_ts_text
            when 'ancient_timestamp' then checked.event_ts_text
        end as _failing_value,
    from checked
)

select * from final
