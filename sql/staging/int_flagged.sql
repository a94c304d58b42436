-- int_flagged: the rows of one source and load date whose outcome is more than their row rules; a temp table.
-- Grain: one row per raw row that a row rule quarantines or that may be a duplicate (a few per day), with
-- every int_<source>_checked column. Reads `checked_records`: the source's int_<source>_checked rows,
-- streamed from the raw partition (not a table: a big day's checked rows would outgrow [duckdb]
-- memory_limit and spill). int_duplicates, the quarantine and the counts read these rows only; the
-- staging partition is the other rows less the ones int_duplicates drops (int_kept).
-- Duplicates and conflicts can only hide among rows sharing an id (or lacking one). Repeated ids are
-- found by the id's 64-bit hash, not the id: a day's table of distinct ids outgrew the CPU caches and
-- the memory limit (a 4x day's grouping took 8x the time). A hash collision only makes a unique id a
-- candidate, which int_duplicates keeps (alone in its partitions, it is neither a duplicate nor a conflict).
with checked as not materialized (
    -- streamed twice: the grouping reads only the id, the filter every column
    select * from checked_records
),

repeated_id_hashes as (
    select hash(checked._record_id) as id_hash
    from checked
    where checked._record_id is not null
    group by id_hash
    having count(*) > 1
),

final as (
    select checked.*
    from checked
    where checked._row_reason_code is not null
        or checked._record_id is null
        or hash(checked._record_id) in (select repeated_id_hashes.id_hash from repeated_id_hashes)
)

select * from final
