-- daily_metrics: the run's counts through the layers, revenue and data-quality figures.
-- Grain: one row per run date (= load_date); partition: load_date. dq_failed_count is 0 and
-- runtime_seconds NULL here: the quality gate and the operations layer fill them in later.
-- A LOAD-DATE metric: every figure describes what that load date's files brought, not the sales of a
-- calendar day. An order delivered again in a later file (a restated status, a re-sent file) is
-- counted in the revenue, orders_count and fact_orders_count of each load date that brought it, and an
-- order placed on one day can arrive on another (late rows). So summing revenue or counts over run
-- dates overstates them, and a run date's revenue is not that day's sales. Sales by order date come
-- from the current facts (warehouse.fact_orders, one row per order, grouped by date_id): see
-- queries/daily_kpis.sql and queries/daily_revenue_moving_average.sql.
-- unknown_product_share: of the day's fact rows that name a product (order lines, events other than
-- product-less page views), the share whose product is not in the catalog; NULL when there are none.
-- products_snapshot_date, users_snapshot_date: the latest catalog snapshot on or before the date that
-- the build read (NULL: none yet). A snapshot that covers the date but is later than this one arrived
-- after the date was built: the date keeps the older catalog until it is restated
-- (pipeline.tasks.late_catalogs).
-- products_snapshot_dates: every products snapshot the date's dim_product_history partition was built
-- from, as that build recorded them (pipeline.transform.warehouse.products_snapshot_dates), not those
-- staged when this row is built; a landed one on or before the date missing here (an earlier week's file
-- delivered after the date was built, or one a restatement had unstaged while the history was built)
-- leaves the date late too. Lake only: not published.
with raw_orders_counted as (
    select count(*) as raw_orders_count from raw_orders
),

raw_events_counted as (
    select count(*) as raw_events_count from raw_events
),

staged_orders_counted as (
    select count(*) as staging_orders_count from stg_orders
),

staged_events_counted as (
    select count(*) as staging_events_count from stg_events
),

reconciled as (
    select
        sum(reconciliation.quarantined_count) filter (
            where reconciliation.source_table = 'stg_orders'
        ) as quarantined_orders_count,
        sum(reconciliation.quarantined_count) filter (
            where reconciliation.source_table = 'stg_events'
        ) as quarantined_events_count,
        sum(reconciliation.duplicate_count) filter (
            where reconciliation.source_table = 'stg_orders'
        ) as duplicate_orders_count,
        sum(reconciliation.duplicate_count) filter (
            where reconciliation.source_table = 'stg_events'
        ) as duplicate_events_count,
    from reconciliation
),

order_facts as (
    select
        count(*) as fact_orders_count,
        count(distinct fact_orders.order_id) as orders_count,
        coalesce(sum(fact_orders.revenue), 0) as gross_revenue,
        coalesce(sum(fact_orders.net_revenue), 0) as net_revenue,
        count(*) filter (where not fact_orders.is_known_product) as unknown_product_orders_count,
    from fact_orders
),

event_facts as (
    select
        count(*) as fact_events_count,
        count(*) filter (where fact_events.product_id is not null) as product_events_count,
        count(*) filter (where not fact_events.is_known_product) as unknown_product_events_count,
    from fact_events
),

products_snapshot as (
    select max(stg_products_snapshot.load_date) as products_snapshot_date from stg_products_snapshot
),

users_snapshot as (
    select max(stg_users_snapshot.load_date) as users_snapshot_date from stg_users_snapshot
),

final as (
    select
        $load_date::date as run_date,
        raw_orders_counted.raw_orders_count,
        staged_orders_counted.staging_orders_count,
        order_facts.fact_orders_count,
        raw_events_counted.raw_events_count,
        staged_events_counted.staging_events_count,
        event_facts.fact_events_count,
        reconciled.quarantined_orders_count::bigint as quarantined_orders_count,
        reconciled.quarantined_events_count::bigint as quarantined_events_count,
        reconciled.duplicate_orders_count::bigint as duplicate_orders_count,
        reconciled.duplicate_events_count::bigint as duplicate_events_count,
        order_facts.gross_revenue::decimal(18, 2) as gross_revenue,
        order_facts.net_revenue::decimal(18, 2) as net_revenue,
        order_facts.orders_count,
        event_facts.fact_events_count as events_count,
        (order_facts.unknown_product_orders_count + event_facts.unknown_product_events_count)::double
            / nullif(order_facts.fact_orders_count + event_facts.product_events_count, 0)
            as unknown_product_share,
        0::integer as dq_failed_count,
        null::double as runtime_seconds,
        products_snapshot.products_snapshot_date,
        users_snapshot.users_snapshot_date,
        $products_snapshot_dates::date[] as products_snapshot_dates,
        $load_date::date as load_date,
    from raw_orders_counted
    cross join raw_events_counted
    cross join staged_orders_counted
    cross join staged_events_counted
    cross join reconciled
    cross join order_facts
    cross join event_facts
    cross join products_snapshot
    cross join users_snapshot
)

select * from final
