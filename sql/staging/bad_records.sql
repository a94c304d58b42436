-- audit.bad_records: the raw rows of one source and load date that staging quarantined, and why.
-- Grain: one row per quarantined raw row; partition: load_date / source_table. Reads the source's
-- validated rows (int_validated) and the reason-code list (registered from staging.REASON_CODES).
-- Every text a row carries goes through storable_text (macros.sql): Postgres's audit.bad_records must
-- be able to hold any row staging quarantines, a NUL character included, and no control character reaches
-- the terminal of whoever reads it. A value is kept whole once, in raw_record: message and failing_value
-- hold at most its first characters (excerpt, macros.sql), record_id those of an over-long id, so that a
-- 1 MB bad value is not stored three times over, nor again in Postgres at publish.
with validated as (
    select * from int_validated
),

codes as (
    select * from reason_codes
),

quarantined as (
    select * from validated
    where validated._reason_code is not null
),

final as (
    select
        $source_table as source_table,
        -- an id a key can hold is never cut (at most $max_id_length characters as sent, mapped by catalog_key);
        -- a longer one is its first characters, no more: failing_value and raw_record say the rest
        storable_text(left(quarantined._record_id, $max_id_length + catalog_id_growth())) as record_id,
        quarantined._reason_code as reason_code,
        storable_text(
            coalesce(codes.description, quarantined._reason_code)
            || ': ' || coalesce(excerpt(quarantined._failing_value, excerpt_length(), ''''), 'no value')
            || coalesce(' (' || quarantined._detail || ')', '')
        ) as message,
        storable_text(excerpt(quarantined._failing_value, excerpt_length(), '')) as failing_value,
        storable_text(quarantined._raw_record) as raw_record,
        quarantined._source_file as source_file,
        quarantined._row_number as row_number,
        $load_date::date as load_date,
    from quarantined
    left join codes
        on quarantined._reason_code = codes.reason_code
    order by quarantined._row_number
)

select * from final
