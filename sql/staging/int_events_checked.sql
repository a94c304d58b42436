-- int_events_checked: every raw event of one load date, typed, with the first row rule it breaks.
-- Grain: one row per raw event record; a temp table (not a lake table) that int_duplicates and
-- int_validated read. Rules, checked in this order: pipeline/transform/staging.py REASON_CODES. A page_view
-- needs no product; every other event type does. CSV values are text: an id is the text as written, in NFC,
-- and a user or product id of digits is the catalog's numeric id (catalog_key in macros.sql).
with source as (
    select
        raw_events.*,
        -- every column of the CSV (extra ones included), lineage aside: equal records are exact duplicates.
        -- Named with a leading "_", as every column added beside the file's own: the landing renames a CSV
        -- column so named (pipeline/ingest/readers.py RESERVED_COLUMNS), which would otherwise be the one read
        struct_pack(*columns(* exclude (_source_file, _row_number, _ingested_at))) as _raw_record,
    from raw_events
),

cleaned as (
    select
        nfc_id(clean_text(source.event_id)) as event_id,
        nfc_id(clean_text(source.user_id)) as user_id,
        nfc_id(clean_text(source.product_id)) as product_id,
        clean_text(source.event_type) as event_type_text,
        clean_text(source.event_ts) as event_ts_text,
        source._raw_record,
        source._source_file,
        source._row_number,
    from source
),

joined_ids as (
    select
        cleaned.*,
        concat(cleaned.event_id, cleaned.user_id, cleaned.product_id) as ids_text,
    from cleaned
),

scanned as (
    select
        -- a user or product id of digits is the catalog's numeric id; the ids as sent (cleaned) are the ones the
        -- id rules judge and bad_records quote
        joined_ids.* exclude (ids_text) replace (
            catalog_key('USER_', joined_ids.user_id) as user_id,
            catalog_key('PROD_', joined_ids.product_id) as product_id
        ),
        joined_ids.user_id as user_id_text,
        joined_ids.product_id as product_id_text,
        -- a CASE, not an AND: only the few values the screen flags reach the regular expression
        case
            when control_character_screen(joined_ids.ids_text) then has_id_unfit_character(joined_ids.ids_text)
            else false
        end as ids_have_control,
    from joined_ids
),

typed as (
    select
        scanned.* exclude (ids_have_control),
        id_problem(scanned.event_id, $max_id_length, scanned.ids_have_control) as event_id_problem,
        id_problem(scanned.user_id_text, $max_id_length, scanned.ids_have_control) as user_id_problem,
        id_problem(scanned.product_id_text, $max_id_length, scanned.ids_have_control) as product_id_problem,
        lower_ascii(scanned.event_type_text) as event_type,
        utc_timestamp(scanned.event_ts_text, $business_timezone) as event_ts,
    from scanned
),

checked as (
    select
        typed.*,
        case
            when typed.event_id is null then 'missing_event_id'
            when typed.event_id_problem is not null then 'invalid_event_id'
            when typed.user_id is null then 'missing_user_id'
            when typed.user_id_problem is not null then 'invalid_user_id'
            when typed.event_type is null or not list_contains($event_types, typed.event_type)
                then 'unknown_event_type'
            when typed.product_id is null and typed.event_type <> 'page_view' then 'missing_product_id'
            when typed.product_id_problem is not null then 'invalid_product_id'
            when typed.event_ts is null then 'invalid_timestamp'
            -- after the business day's end plus the tolerance, unless written with the load date or earlier
            when typed.event_ts > $future_limit_ts::timestamp
                and not local_date_on_or_before(typed.event_ts_text, $load_date::date)
                then 'future_timestamp'
            when typed.event_ts < timestamp '1970-01-01' or typed.event_ts < $ancient_limit_ts::timestamp
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
        null::varchar as _line_key,
        checked._raw_record,
        checked.event_ts as _version_ts,
        checked.row_reason_code as _row_reason_code,
        case checked.row_reason_code
            when 'invalid_event_id' then checked.event_id
            when 'missing_user_id' then checked.user_id
            when 'invalid_user_id' then checked.user_id_text
            when 'missing_product_id' then checked.product_id
            when 'invalid_product_id' then checked.product_id_text
            when 'unknown_event_type' then checked.event_type_text
            when 'invalid_timestamp' then checked.event_ts_text
            when 'future_timestamp' then checked.event_ts_text
            when 'ancient_timestamp' then checked.event_ts_text
        end as _failing_value,
        case checked.row_reason_code
            when 'invalid_event_id' then checked.event_id_problem
            when 'invalid_user_id' then checked.user_id_problem
            when 'invalid_product_id' then checked.product_id_problem
            when 'invalid_timestamp' then timestamp_detail(checked.event_ts_text)
        end as _row_detail,
    from checked
)

select * from final
