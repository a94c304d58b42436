-- fact_events (current): every event once, as of its first (earliest) load_date: an event is a fact
-- that happened once; a later file repeating its id is a resend. Reads `fact_events_all`: every partition.
-- Grain: one row per event_id; the result depends on the partitions present, not the order they were built in.
with all_versions as (
    select * from fact_events_all
),

final as (
    select *
    from all_versions
    qualify row_number() over (
        partition by all_versions.event_id order by all_versions.load_date asc
    ) = 1
)

select * from final
