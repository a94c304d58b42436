-- int_products_checked: every raw product record of one snapshot, typed, with the first rule it breaks.
-- Grain: one row per raw catalog record; a temp table (not a lake table) that int_duplicates and
-- int_validated read (same product_id, different content: the later record in the snapshot wins).
-- Two source shapes: files {product_id, product_name, category, brand, current_price} and the DummyJSON
-- API {id, title, category, brand (often absent), price, ...}; API id 1 -> 'PROD_0001', as is a file's product_id 1
-- (catalog_key: the one rule for a numeric id in every source).
with source as (
    select * from raw_products
),

cleaned as (
    select
        nfc_id(clean_text(json_extract_string(source.record, '$.product_id'))) as file_product_id,
        nfc_id(clean_text(json_extract_string(source.record, '$.id'))) as api_id,
        clean_text(coalesce(
            json_extract_string(source.record, '$.product_name'),
            json_extract_string(source.record, '$.title')
        )) as product_name,
        clean_text(json_extract_string(source.record, '$.category')) as category,
        clean_text(json_extract_string(source.record, '$.brand')) as brand,
        clean_text(coalesce(
            json_number_text(source.record, 'current_price', json_extract_string(source.record, '$.current_price')),
            json_number_text(source.record, 'price', json_extract_string(source.record, '$.price'))
        )) as price_text,
        json_keys(source.record) as record_keys,
        source.record,
        json(source.record) as raw_record,
        source._source_file,
        source._row_number,
    from source
),

identified as (
    select
        cleaned.* exclude (record_keys, record),
        coalesce(catalog_key('PROD_', cleaned.file_product_id), catalog_id('PROD_', cleaned.api_id)) as product_id,
        coalesce(cleaned.file_product_id, cleaned.api_id) as product_id_text,
        case
            when cleaned.file_product_id is not null
                then json_id_problem(cleaned.record, '$.product_id', cleaned.file_product_id)
            when cleaned.api_id is not null and catalog_id('PROD_', cleaned.api_id) is null
                then 'an API id that is not a whole number'
        end as id_type_problem,
        first_repeated_key(cleaned.record_keys) as repeated_key,
        -- an object, an array, a boolean or a number where text is expected (NULL: none)
        coalesce(
            'product_name is ' || json_text_problem(cleaned.record, '$.product_name', '$.title', cleaned.product_name),
            'category is ' || json_text_problem(cleaned.record, '$.category', '$.category', cleaned.category),
            'brand is ' || json_text_problem(cleaned.record, '$.brand', '$.brand', cleaned.brand)
        ) as json_text_problem,
    from cleaned
),

typed as (
    select
        identified.*,
        coalesce(identified.id_type_problem, id_problem(identified.product_id, $max_id_length, true))
            as product_id_problem,
        -- a text field is JSON text, not an object published as its JSON; a product is named (dim_product's
        -- contract); Postgres text cannot hold NUL; any other control
        -- character (an escape sequence, a bell, a line break) would act on the terminal or break the line of
        -- whoever reads the name in psql, a CSV export or a log; the category is indexed (dim_product), so it
        -- is bounded like an id
        case
            when identified.json_text_problem is not null then identified.json_text_problem
            when identified.product_name is null then 'product_name is missing or empty'
            when contains(identified.product_name, chr(0)) then 'product_name contains a NUL character'
            when contains(identified.category, chr(0)) then 'category contains a NUL character'
            when length(identified.category) > $max_id_length
                then 'category longer than ' || $max_id_length || ' characters'
            when contains(identified.brand, chr(0)) then 'brand contains a NUL character'
            when has_control_character(identified.product_name) then 'product_name contains a control character'
            when has_control_character(identified.category) then 'category contains a control character'
            when has_control_character(identified.brand) then 'brand contains a control character'
        end as text_problem,
        number_value(identified.price_text) as price_number,
    from identified
),

checked as (
    select
        typed.*,
        case
            when typed.repeated_key is not null then 'duplicate_json_key'
            when typed.product_id_text is null then 'missing_product_id'
            when typed.product_id_problem is not null then 'invalid_product_id'
            when typed.text_problem is not null then 'invalid_text'
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
        coalesce(checked.product_id, checked.product_id_text) as _record_id,
        null::varchar as _line_key,
        checked.raw_record as _raw_record,
        null::timestamp as _version_ts,
        checked.row_reason_code as _row_reason_code,
        case checked.row_reason_code
            when 'duplicate_json_key' then checked.repeated_key
            when 'invalid_product_id' then checked.product_id_text
            when 'invalid_text' then case
                when starts_with(checked.text_problem, 'product_name') then checked.product_name
                when starts_with(checked.text_problem, 'category') then checked.category
                else checked.brand
            end
            when 'invalid_price' then checked.price_text
            when 'negative_price' then checked.price_text
        end as _failing_value,
        case checked.row_reason_code
            when 'invalid_product_id' then checked.product_id_problem
            when 'invalid_text' then checked.text_problem
        end as _row_detail,
    from checked
)

select * from final
