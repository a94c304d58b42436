-- int_kept: the rows of one source and load date that duplicate resolution keeps, streamed; a relation of
-- the staging partition's pass, never a table. Grain: one row per raw row that int_duplicates does not drop,
-- in source-file order. Reads `checked_records` (the source's int_<source>_checked rows, streamed from the
-- raw partition) and `$dropped_rows`: the row numbers int_duplicates drops as a bitstring (bit n set for
-- row n; NULL when none is dropped). A bit lookup, not a join: a single-table select keeps DuckDB's
-- insertion (= source-file) order, so the staging partition is written as it streams, without a sort.
-- The _drop_* columns int_validated reads are NULL: no row here is dropped.
with checked as not materialized (
    select * from checked_records
),

final as (
    select
        checked.*,
        null::boolean as _drop_is_duplicate,
        null::varchar as _drop_reason_code,
        null::bigint as _drop_kept_row_number,
    from checked
    where not coalesce(get_bit($dropped_rows::bit, checked._row_number::integer) = 1, false)
)

select * from final
