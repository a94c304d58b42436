-- int_users_checked: every raw user record of one snapshot, typed, with the first rule it breaks.
-- Grain: one row per raw catalog record; a temp table (not a lake table) that int_duplicates and
-- int_validated read (same user_id, different content: the later record in the snapshot wins).
-- Two source shapes: files {user_id, first_name, last_name, email, city, country, signup_date} and the
-- DummyJSON API {id, firstName, lastName, email, address: {city, country}, ...}; id 1 -> 'USER_0001'.
with source as (
    select * from raw_users
),

cleaned as (
    select
        coalesce(
            clean_text(json_extract_string(source.record, '$.user_id')),
            catalog_id('USER_', clean_text(json_extract_string(source.record, '$.id')))
        ) as user_id,
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

final as (
    select
        cleaned.user_id,
        cleaned.first_name,
        cleaned.last_name,
        cleaned.email,
        cleaned.city,
        cleaned.country,
        $load_date::date as snapshot_date,
        $load_date::date as load_date,
        cleaned._source_file,
        cleaned._row_number,
        cleaned.user_id as _record_id,
        cleaned.raw_record as _raw_record,
        null::timestamp as _version_ts,
        case when cleaned.user_id is null then 'missing_user_id' end as _row_reason_code,
        null::varchar as _failing_value,
    from cleaned
)

select * from final
