-- catalog_snapshots (a quality gate view, not a lake table): how complete the catalog snapshot covering the
-- load date is, and how its size compares with the snapshot before it. Grain: one row per catalog field
-- checked (products.category, users.city, users.country); no partition.
-- pipeline.quality.gate_catalogs builds it for checks/staging/catalog_snapshots.yml from `products_snapshots` and
-- `users_snapshots` (the staged rows of each catalog's latest snapshot on or before the load date and of the one
-- before it: the snapshots the warehouse models read, never a later one) and `catalog_snapshot_list` (those, from the
-- lake's partition folders, `recency` 1 = the covering one, 2 = the previous one; a snapshot whose every row was
-- quarantined is listed with 0 members). brand is not checked: the real catalog leaves it out for about half
-- of its products (dim_product shows 'Unknown brand').
-- conflict_id_count: the ids the covering snapshot lists more than once with different values (staging keeps the
-- later line and quarantines the others as duplicate_id_conflict), from `catalog_quarantine`, the audit/bad_records
-- rows of the covering snapshots; conflict_id_examples: the first few of them; the same on each row of a catalog.
-- Cost: two small catalog files per catalog and the covering snapshots' quarantined rows, read once.
with products as (
    select * from products_snapshots
),

users as (
    select * from users_snapshots
),

snapshot_list as (
    select * from catalog_snapshot_list
),

quarantined as (
    select * from catalog_quarantine
),

checked_fields as (
    select * from (values ('products', 'category'), ('users', 'city'), ('users', 'country'))
        as checked_fields (catalog, field)
),

snapshot_rows as (
    select 'products' as catalog, products.snapshot_date, 'category' as field, products.category as field_value,
    from products
    union all
    select 'users' as catalog, users.snapshot_date, 'city' as field, users.city as field_value,
    from users
    union all
    select 'users' as catalog, users.snapshot_date, 'country' as field, users.country as field_value,
    from users
),

-- a field "is missing" here once: NULL after staging (absent, null, empty or blank in the source)
field_counts as (
    select
        snapshot_rows.catalog,
        snapshot_rows.snapshot_date,
        snapshot_rows.field,
        count(*)::bigint as member_count,
        count(*) filter (where snapshot_rows.field_value is null)::bigint as missing_count,
    from snapshot_rows
    group by snapshot_rows.catalog, snapshot_rows.snapshot_date, snapshot_rows.field
),

snapshots as (
    select
        checked_fields.catalog,
        checked_fields.field,
        snapshot_list.snapshot_date,
        snapshot_list.recency,
        coalesce(field_counts.member_count, 0) as member_count,
        coalesce(field_counts.missing_count, 0) as missing_count,
    from checked_fields
    inner join snapshot_list
        on checked_fields.catalog = snapshot_list.catalog
    left join field_counts
        on checked_fields.catalog = field_counts.catalog
        and checked_fields.field = field_counts.field
        and snapshot_list.snapshot_date = field_counts.snapshot_date
),

conflicts as (
    select
        replace(quarantined.source_table, 'stg_', '') as catalog,
        count(distinct quarantined.record_id)::bigint as conflict_id_count,
        count(*)::bigint as conflict_row_count,
        list_sort(list_distinct(list(quarantined.record_id)))[1:5] as conflict_id_examples,
    from quarantined
    where quarantined.reason_code = 'duplicate_id_conflict'
    group by 1
),

final as (
    select
        checked_fields.catalog,
        checked_fields.field,
        latest.snapshot_date,
        coalesce(latest.member_count, 0)::bigint as member_count,
        coalesce(latest.missing_count, 0)::bigint as missing_count,
        coalesce(100.0 * latest.missing_count / nullif(latest.member_count, 0), 0)::double as missing_pct,
        previous.snapshot_date as previous_snapshot_date,
        previous.member_count::bigint as previous_member_count,
        -- compared only when both snapshots exist and the previous one had members
        latest.snapshot_date is not null and coalesce(previous.member_count, 0) > 0 as is_compared,
        (latest.member_count / nullif(previous.member_count, 0))::double as member_ratio,
        coalesce(conflicts.conflict_id_count, 0) as conflict_id_count,
        coalesce(conflicts.conflict_row_count, 0) as conflict_row_count,
        conflicts.conflict_id_examples,
    from checked_fields
    left join snapshots as latest
        on checked_fields.catalog = latest.catalog
        and checked_fields.field = latest.field
        and latest.recency = 1
    left join snapshots as previous
        on checked_fields.catalog = previous.catalog
        and checked_fields.field = previous.field
        and previous.recency = 2
    left join conflicts
        on checked_fields.catalog = conflicts.catalog
    order by checked_fields.catalog, checked_fields.field
)

select * from final
