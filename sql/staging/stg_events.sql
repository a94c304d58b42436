-- stg_events: the day's valid events, typed and deduplicated (exact duplicates collapsed, one row per id).
-- Grain: one row per event_id per load_date; partition: load_date.
-- Rules: int_events_checked.sql (row rules), int_validated.sql (duplicates).
-- event_type and _source_file are cast to the ENUMs staging_passes.create_staged_types builds: the same
-- text in the Parquet file, written from the enum's codes instead of hashed into a dictionary per value.
with validated as (
    select * from int_validated
),

final as (
    select
        validated.event_id,
        validated.user_id,
        validated.product_id,
        validated.event_type::staged_event_type as event_type,
        validated.event_ts,
        validated.load_date,
        validated._source_file::staged_source_file as _source_file,
        validated._row_number,
    from validated
    -- no ORDER BY: int_validated is a single-table select, so the rows keep the source file's
    -- order (DuckDB preserves insertion order for it) and a rerun writes the same file
    where validated._reason_code is null
        and not validated._is_duplicate
)

select * from final
