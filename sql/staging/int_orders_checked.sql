-- int_orders_checked: every raw order of one load date, typed, with the first row rule it breaks.
-- Grain: one row per raw order record; a temp table (not a lake table) that int_duplicates and
-- int_validated read. Rules, checked in this order: pipeline/staging.py REASON_CODES.
with source as (
    select * from raw_orders
),

cleaned as (
    select
        clean_text(source.order_id) as order_id,
        clean_text(source.user_id) as user_id,
        clean_text(source.product_id) as product_id,
        clean_text(source.quantity) as quantity_text,
        clean_text(source.price) as price_text,
        clean_text(source."timestamp") as order_ts_text,
        clean_text(source.status) as status_text,
        -- the JSON object as received, whitespace normalised: equal objects are exact duplicates
        json(source.record) as raw_record,
        source._source_file,
        source._row_number,
    from source
),

typed as (
    select
        cleaned.*,
        number_value(cleaned.quantity_text) as quantity_number,
        number_value(cleaned.price_text) as price_number,
        utc_timestamp(cleaned.order_ts_text) as order_ts,
        lower(cleaned.status_text) as status,
    from cleaned
),

checked as (
    select
        typed.*,
        case
            when typed.order_id is null then 'missing_order_id'
            when typed.user_id is null then 'missing_user_id'
            when typed.product_id is null then 'missing_product_id'
            when typed.quantity_number is null or not is_integer_value(typed.quantity_number)
                then 'invalid_quantity'
            when typed.quantity_number <= 0 then 'non_positive_quantity'
            when typed.price_number is null or not is_money_value(typed.price_number) then 'invalid_price'
            when typed.price_number < 0 then 'negative_price'
            when not is_money_value(typed.quantity_number * typed.price_number) then 'revenue_out_of_range'
            when typed.order_ts is null then 'invalid_timestamp'
            when typed.order_ts > ($load_date::date + 1)::timestamp + to_hours($future_tolerance_hours)
                then 'future_timestamp'
            when typed.order_ts < timestamp '1970-01-01'
                or typed.order_ts < ($load_date::date - $late_window_days::integer)::timestamp
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
        checked.raw_record as _raw_record,
        checked.order_ts as _version_ts,
        checked.row_reason_code as _row_reason_code,
        case checked.row_reason_code
            when 'missing_user_id' then checked.user_id
            when 'missing_product_id' then checked.product_id
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
    from checked
)

select * from final
