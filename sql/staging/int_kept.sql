-- int_kept: the rows of one source and load date that staging stages, streamed; a relation of the staging
-- partition's pass, never a table. Grain: one row per raw row that is neither quarantined nor dropped as a
-- duplicate, in source-file order. Reads `checked_records` (the source's int_<source>_checked rows, streamed
-- from the raw partition) and `$unstaged_rows`: the row numbers of the rows that are not staged, as a
-- bitstring (bit n set for row n; NULL when every row is staged). Every such row is in int_flagged (a row a
-- rule quarantines, or one whose id is missing or repeated), where its outcome was decided; the bitstring
-- is those outcomes, so this pass need not check the row rules again: _row_reason_code is NULL here, and
-- DuckDB then leaves out what only the rules read (the ids' control-character scan, the id checks, and for
-- JSON sources the key and type checks): a third of the pass's work.
-- A bit lookup, not a join: a single-table select keeps DuckDB's insertion (= source-file) order, so the
-- staging partition is written as it streams, without a sort.
-- The _drop_* columns int_validated reads are NULL: no row here is dropped.
with checked as not materialized (
    select * from checked_records
),

final as (
    select
        checked.* replace (null::varchar as _row_reason_code),
        null::boolean as _drop_is_duplicate,
        null::varchar as _drop_reason_code,
        null::bigint as _drop_kept_row_number,
    from checked
    where not coalesce(get_bit($unstaged_rows::bit, checked._row_number::integer) = 1, false)
)

select * from final
