-- stg_users: one users snapshot's valid users, typed, in one shape (file or API source).
-- Grain: one row per user_id per snapshot; partition: load_date (= snapshot_date).
-- Rules: int_users_checked.sql (row rules), int_validated.sql (duplicates).
with validated as (
    select * from int_validated
),

final as (
    select
        validated.user_id,
        validated.first_name,
        validated.last_name,
        validated.email,
        validated.city,
        validated.country,
        validated.snapshot_date,
        validated.load_date,
        validated._source_file,
        validated._row_number,
    from validated
    -- no ORDER BY: int_validated is a single-table select, so the rows keep the source file's
    -- order (DuckDB preserves insertion order for it) and a rerun writes the same file
    where validated._reason_code is null
        and not validated._is_duplicate
)

select * from final
