-- stg_products: one catalog snapshot's valid products, typed, in one shape (file or API source).
-- Grain: one row per product_id per snapshot; partition: load_date (= snapshot_date).
-- Rules: int_products_checked.sql (row rules), int_validated.sql (duplicates). brand stays NULL when
-- the source has none (dim_product fills it).
with validated as (
    select * from int_validated
),

final as (
    select
        validated.product_id,
        validated.product_name,
        validated.category,
        validated.brand,
        validated.current_price,
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
