-- unknown_users (a quality gate view, not a lake table): how many of the load date's fact rows name a user
-- the users catalog does not list. Grain: one row per fact table (fact_orders, fact_events); no partition.
-- pipeline.quality.gate_views builds it for checks/warehouse/unknown_users.yml from the date's fact
-- partitions (`fact_orders`, `fact_events`, registered by the gate) and `stg_users_snapshot`: the latest
-- users snapshot staged on or before the load date, found as the warehouse models find it
-- (pipeline.transform.warehouse.LAKE_INPUTS; dim_user takes city and country from it), empty before the first.
-- "Is this user in the catalog" is stated once, in `listed` (is_listed_user); the rest is derived from it.
-- Cost: each fact is aggregated by user_id once (a day's few thousand users, not its million events),
-- and only those users are looked up in the catalog.
with orders as (
    select * from fact_orders
),

events as (
    select * from fact_events
),

catalog as (
    select * from stg_users_snapshot
),

fact_tables as (
    select fact_table from (values ('fact_orders'), ('fact_events')) as fact_tables (fact_table)
),

fact_users as (
    select
        'fact_orders' as fact_table,
        orders.user_id,
        count(*) as row_count,
    from orders
    where orders.user_id is not null
    group by orders.user_id
    union all
    select
        'fact_events' as fact_table,
        events.user_id,
        count(*) as row_count,
    from events
    where events.user_id is not null
    group by events.user_id
),

listed as (
    select
        fact_users.fact_table,
        fact_users.user_id,
        fact_users.row_count,
        fact_users.user_id in (select catalog.user_id from catalog) as is_listed_user,
    from fact_users
),

counted as (
    select
        fact_tables.fact_table,
        coalesce(sum(listed.row_count), 0)::bigint as row_count,
        coalesce(sum(listed.row_count) filter (where not listed.is_listed_user), 0)::bigint as unknown_row_count,
        count(listed.user_id)::bigint as user_count,
        count(listed.user_id) filter (where not listed.is_listed_user)::bigint as unknown_user_count,
        -- the unknown users with the most rows first, for the message
        coalesce(list(listed.user_id order by listed.row_count desc, listed.user_id)
            filter (where not listed.is_listed_user), [])[1:5] as unknown_user_examples,
    from fact_tables
    left join listed
        on fact_tables.fact_table = listed.fact_table
    group by fact_tables.fact_table
),

final as (
    select
        counted.fact_table,
        counted.row_count,
        counted.unknown_row_count,
        counted.user_count,
        counted.unknown_user_count,
        counted.unknown_user_examples,
        coalesce(100.0 * counted.unknown_row_count / nullif(counted.row_count, 0), 0)::double as unknown_user_pct,
        (select count(*) from catalog)::bigint as catalog_user_count,
        (select max(catalog.snapshot_date) from catalog) as catalog_snapshot_date,
    from counted
)

select * from final
