-- int_products_checked: every raw product record of one snapshot, typed, with the first rule it breaks.
-- Grain: one row per raw catalog record; a temp table (not a lake table) that int_duplicates and
-- int_validated read (same product_id, different content: the later record in the snapshot wins).
-- Two source shapes: files {product_id, product_name, category, brand, current_price} and the DummyJSON
-- API {id, title, category, brand (often absent), price, ...}; API id 1 -> 'PROD_0001'.
with source as (
    select * from raw_products
),

cleaned as (
    select
        coalesce(
            clean_text(json_extract_string(source.record, '$.product_id')),
            catalog_id('PROD_', clean_text(json_extract_string(source.record, '$.id')))
        ) as product_id,
        clean_text(coalesce(
            json_extract_string(source.record, '$.product_name'),
            json_extract_string(source.record, '$.title')
        )) as product_name,
        clean_text(json_extract_string(source.record, '$.category')) as category,
        clean_text(json_extract_string(source.record, '$.brand')) as brand,
        clean_text(coalesce(
            json_extract_string(source.record, '$.current_price'),
            json_extract_string(source.record, '$.price')
        )) as price_text,
        json(source.record) as raw_record,
        source._source_file,
        source._row_number,
    from source
),

typed as (
    select
        cleaned.*,
        number_value(cleaned.price_text) as price_number,
    from cleaned
),

checked as (
    select
        typed.*,
        case
            when typed.product_id is null then 'missing_product_id'
            when typed.price_number is null or not is_money_value(typed.price_number) then 'invalid_price'
            when typed.price_number < 0 then 'negative_price'
        end as row_reason_code,
    from typed
),

final as (
    select
        checked.product_id,
        checked.product_name,
        checked.category,
        checked.brand,
        try_cast(checked.price_number as decimal(18, 2)) as current_price,
        $load_date::date as snapshot_date,
        $load_date::date as load_date,
        checked._source_file,
        checked._row_number,
        checked.product_id as _record_id,
        checked.raw_record as _raw_record,
        null::timestamp as _version_ts,
        checked.row_reason_code as _row_reason_code,
        case checked.row_reason_code
            when 'invalid_price' then checked.price_text
            when 'negative_price' then checked.price_text
        end as _failing_value,
    from checked
)

select * from final
