-- int_orders_checked: every raw order of one load date, typed, with the first row rule it breaks.
-- Grain: one row per raw order record; a temp table (not a lake table) that int_duplicates and
-- int_validated read. Rules, checked in this order: pipeline/transform/staging.py REASON_CODES. An order is one
-- line (one product): its _line_key is the product_id, so that int_duplicates tells another line of
-- the same order (multiple_order_lines) from another version of the same line (duplicate_id_conflict).
with source as (
    select * from raw_orders
),

cleaned as (
    select
        nfc_id(clean_text(source.order_id)) as order_id,
        nfc_id(clean_text(source.user_id)) as user_id,
        nfc_id(clean_text(source.product_id)) as product_id,
        clean_text(source.quantity) as quantity_text,
        clean_text(source.price) as price_text,
        clean_text(source."timestamp") as order_ts_text,
        clean_text(source.status) as status_text,
        json_keys(source.record) as record_keys,
        source.record,
        -- the JSON object as received, whitespace normalised: objects of equal fields are exact duplicates
        json(source.record) as raw_record,
        source._source_file,
        source._row_number,
    from source
),

joined_ids as (
    select
        cleaned.*,
        concat(cleaned.order_id, cleaned.user_id, cleaned.product_id) as ids_text,
    from cleaned
),

scanned as (
    select
        -- a user or product id of digits is the catalog's numeric id; the ids as sent (cleaned) tell whether
        -- a JSON id was a string or an integer, and are the ones the id rules judge and bad_records quote
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
        scanned.* exclude (record_keys, record, ids_have_control),
        first_repeated_key(scanned.record_keys) as repeated_key,
        coalesce(
            json_id_problem(scanned.record, '$.order_id', scanned.order_id),
            id_problem(scanned.order_id, $max_id_length, scanned.ids_have_control)
        ) as order_id_problem,
        coalesce(
            json_id_problem(scanned.record, '$.user_id', scanned.user_id_text),
            id_problem(scanned.user_id_text, $max_id_length, scanned.ids_have_control)
        ) as user_id_problem,
        coalesce(
            json_id_problem(scanned.record, '$.product_id', scanned.product_id_text),
            id_problem(scanned.product_id_text, $max_id_length, scanned.ids_have_control)
        ) as product_id_problem,
        number_value(scanned.quantity_text) as quantity_number,
        number_value(scanned.price_text) as price_number,
        utc_timestamp(scanned.order_ts_text, $business_timezone) as order_ts,
        lower_ascii(scanned.status_text) as status,
    from scanned
),

checked as (
    select
        typed.*,
        case
            when typed.repeated_key is not null then 'duplicate_json_key'
            when typed.order_id is null then 'missing_order_id'
            when typed.order_id_problem is not null then 'invalid_order_id'
            when typed.user_id is null then 'missing_user_id'
            when typed.user_id_problem is not null then 'invalid_user_id'
            when typed.product_id is null then 'missing_product_id'
            when typed.product_id_problem is not null then 'invalid_product_id'
            when typed.quantity_number is null or not is_integer_value(typed.quantity_number)
                then 'invalid_quantity'
            when typed.quantity_number <= 0 then 'non_positive_quantity'
            when typed.price_number is null or not is_money_value(typed.price_number) then 'invalid_price'
            when typed.price_number < 0 then 'negative_price'
            -- the rules above make the quantity a whole number in INTEGER > 0 and the price money >= 0, so the
            -- revenue has at most 2 decimals. $max_line_revenue (staging.MAX_LINE_REVENUE) keeps the sums of a
            -- day's, a product's or a customer's lines within DECIMAL(18, 2) (< 10^16), which the marts and
            -- daily_metrics are. An INTEGER times DECIMAL(38, 10) stays DECIMAL(38, 10) (28 integer digits);
            -- DECIMAL(38, 10) * DECIMAL(38, 10) is DECIMAL(38, 20), which overflowed from 10^18 and failed the
            -- whole run instead of one order
            when typed.quantity_number::integer * typed.price_number > $max_line_revenue then 'revenue_out_of_range'
            when typed.order_ts is null then 'invalid_timestamp'
            -- after the business day's end plus the tolerance, unless written with the load date or earlier
            when typed.order_ts > $future_limit_ts::timestamp
                and not local_date_on_or_before(typed.order_ts_text, $load_date::date)
                then 'future_timestamp'
            -- a cancellation or refund re-delivers an earlier order, often weeks later: a wider window
            when typed.order_ts < timestamp '1970-01-01' or typed.order_ts < $status_change_limit_ts::timestamp
                or (typed.order_ts < $ancient_limit_ts::timestamp
                    and not list_contains($status_change_statuses, typed.status))
                then 'ancient_timestamp'
            when typed.status is null or not list_contains($order_statuses, typed.status) then 'invalid_status'
        end as row_reason_code,
    from typed
),

final as (
    select
        checked.order_id,
        checked.user_id,
        checked.product_id,
        try_cast(checked.quantity_number as integer) as quantity,
        try_cast(checked.price_number as decimal(18, 2)) as unit_price,
        checked.order_ts,
        checked.status,
        $load_date::date as load_date,
        checked._source_file,
        checked._row_number,
        checked.order_id as _record_id,
        checked.product_id as _line_key,
        checked.raw_record as _raw_record,
        checked.order_ts as _version_ts,
        checked.row_reason_code as _row_reason_code,
        case checked.row_reason_code
            when 'duplicate_json_key' then checked.repeated_key
            when 'invalid_order_id' then checked.order_id
            when 'missing_user_id' then checked.user_id
            when 'invalid_user_id' then checked.user_id_text
            when 'missing_product_id' then checked.product_id
            when 'invalid_product_id' then checked.product_id_text
            when 'invalid_quantity' then checked.quantity_text
            when 'non_positive_quantity' then checked.quantity_text
            when 'invalid_price' then checked.price_text
            when 'negative_price' then checked.price_text
            when 'revenue_out_of_range' then checked.quantity_text || ' x ' || checked.price_text
            when 'invalid_timestamp' then checked.order_ts_text
            when 'future_timestamp' then checked.order_ts_text
            when 'ancient_timestamp' then checked.order_ts_text
            when 'invalid_status' then checked.status_text
        end as _failing_value,
        case checked.row_reason_code
            when 'invalid_order_id' then checked.order_id_problem
            when 'invalid_user_id' then checked.user_id_problem
            when 'invalid_product_id' then checked.product_id_problem
            when 'invalid_timestamp' then timestamp_detail(checked.order_ts_text)
            when 'ancient_timestamp' then case when list_contains($status_change_statuses, checked.status)
                and checked.order_ts >= timestamp '1970-01-01' then
                'a ' || checked.status || ' order older than [model] status_change_window_days: its status change is'
                || ' not applied; widen the window and restate the load date --source orders'
            end
        end as _row_detail,
    from checked
)

select * from final
