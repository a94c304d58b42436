-- int_users_checked: every raw user record of one snapshot, typed, with the first rule it breaks.
-- Grain: one row per raw catalog record; a temp table (not a lake table) that int_duplicates and
-- int_validated read (same user_id, different content: the later record in the snapshot wins).
-- Two source shapes: files {user_id, first_name, last_name, email, city, country, signup_date} and the
-- DummyJSON API {id, firstName, lastName, email, address: {city, country}, ...}; id 1 -> 'USER_0001', as is a file's
-- user_id 1 (catalog_key: the one rule for a numeric id in every source).
with source as (
    select * from raw_users
),

cleaned as (
    select
        nfc_id(clean_text(json_extract_string(source.record, '$.user_id'))) as file_user_id,
        nfc_id(clean_text(json_extract_string(source.record, '$.id'))) as api_id,
        clean_text(coalesce(
            json_extract_string(source.record, '$.first_name'),
            json_extract_string(source.record, '$.firstName')
        )) as first_name,
        clean_text(coalesce(
            json_extract_string(source.record, '$.last_name'),
            json_extract_string(source.record, '$.lastName')
        )) as last_name,
        clean_text(json_extract_string(source.record, '$.email')) as email,
        clean_text(coalesce(
            json_extract_string(source.record, '$.city'),
            json_extract_string(source.record, '$.address.city')
        )) as city,
        clean_text(coalesce(
            json_extract_string(source.record, '$.country'),
            json_extract_string(source.record, '$.address.country')
        )) as country,
        -- the API nests city and country in `address`: a key repeated there is as ambiguous
        coalesce(
            first_repeated_key(json_keys(source.record)),
            'address.' || first_repeated_key(json_keys(source.record, '$.address'))
        ) as repeated_key,
        source.record,
        -- Only identity and location fields leave the raw layer: the users API also sends
        -- passwords, SSNs, bank cards and IPs, which must never reach audit.bad_records (BI-readable).
        json_object(
            'id', json_extract(source.record, '$.id'),
            'user_id', json_extract(source.record, '$.user_id'),
            'first_name', coalesce(json_extract(source.record, '$.first_name'), json_extract(source.record, '$.firstName')),
            'last_name', coalesce(json_extract(source.record, '$.last_name'), json_extract(source.record, '$.lastName')),
            'email', json_extract(source.record, '$.email'),
            'city', coalesce(json_extract(source.record, '$.city'), json_extract(source.record, '$.address.city')),
            'country', coalesce(json_extract(source.record, '$.country'), json_extract(source.record, '$.address.country'))
        ) as raw_record,
        source._source_file,
        source._row_number,
    from source
),

identified as (
    select
        cleaned.* exclude (record),
        coalesce(catalog_key('USER_', cleaned.file_user_id), catalog_id('USER_', cleaned.api_id)) as user_id,
        coalesce(cleaned.file_user_id, cleaned.api_id) as user_id_text,
        case
            when cleaned.file_user_id is not null
                then json_id_problem(cleaned.record, '$.user_id', cleaned.file_user_id)
            when cleaned.api_id is not null and catalog_id('USER_', cleaned.api_id) is null
                then 'an API id that is not a whole number'
        end as id_type_problem,
        -- an object, an array, a boolean or a number where text is expected (NULL: none)
        coalesce(
            'first_name is ' || json_text_problem(cleaned.record, '$.first_name', '$.firstName', cleaned.first_name),
            'last_name is ' || json_text_problem(cleaned.record, '$.last_name', '$.lastName', cleaned.last_name),
            'email is ' || json_text_problem(cleaned.record, '$.email', '$.email', cleaned.email),
            'city is ' || json_text_problem(cleaned.record, '$.city', '$.address.city', cleaned.city),
            'country is ' || json_text_problem(cleaned.record, '$.country', '$.address.country', cleaned.country)
        ) as json_text_problem,
    from cleaned
),

typed as (
    select
        identified.*,
        coalesce(identified.id_type_problem, id_problem(identified.user_id, $max_id_length, true)) as user_id_problem,
        -- a text field is JSON text, not an object published as its JSON; Postgres text cannot hold NUL; any
        -- other control character (an escape sequence, a bell, a line break) would act on the terminal or break
        -- the line of whoever reads the value in psql, a CSV or a log
        case
            when identified.json_text_problem is not null then identified.json_text_problem
            when contains(identified.first_name, chr(0)) then 'first_name contains a NUL character'
            when contains(identified.last_name, chr(0)) then 'last_name contains a NUL character'
            when contains(identified.email, chr(0)) then 'email contains a NUL character'
            when contains(identified.city, chr(0)) then 'city contains a NUL character'
            when contains(identified.country, chr(0)) then 'country contains a NUL character'
            when has_control_character(identified.first_name) then 'first_name contains a control character'
            when has_control_character(identified.last_name) then 'last_name contains a control character'
            when has_control_character(identified.email) then 'email contains a control character'
            when has_control_character(identified.city) then 'city contains a control character'
            when has_control_character(identified.country) then 'country contains a control character'
        end as text_problem,
    from identified
),

checked as (
    select
        typed.*,
        case
            when typed.repeated_key is not null then 'duplicate_json_key'
            when typed.user_id_text is null then 'missing_user_id'
            when typed.user_id_problem is not null then 'invalid_user_id'
            when typed.text_problem is not null then 'invalid_text'
        end as row_reason_code,
    from typed
),

final as (
    select
        checked.user_id,
        checked.first_name,
        checked.last_name,
        checked.email,
        checked.city,
        checked.country,
        $load_date::date as snapshot_date,
        $load_date::date as load_date,
        checked._source_file,
        checked._row_number,
        coalesce(checked.user_id, checked.user_id_text) as _record_id,
        null::varchar as _line_key,
        checked.raw_record as _raw_record,
        null::timestamp as _version_ts,
        checked.row_reason_code as _row_reason_code,
        case checked.row_reason_code
            when 'duplicate_json_key' then checked.repeated_key
            when 'invalid_user_id' then checked.user_id_text
            when 'invalid_text' then case split_part(checked.text_problem, ' ', 1)
                when 'first_name' then checked.first_name
                when 'last_name' then checked.last_name
                when 'email' then checked.email
                when 'city' then checked.city
                else checked.country
            end
        end as _failing_value,
        case checked.row_reason_code
            when 'invalid_user_id' then checked.user_id_problem
            when 'invalid_text' then checked.text_problem
        end as _row_detail,
    from checked
)

select * from final
