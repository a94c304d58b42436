-- Question: Of the customers whose first order fell in a given week, what share ordered again 1, 2, 3 ... weeks later?
-- Grain: one row per first-order week (ISO week, starting Monday) per week since the first order in
-- which at least one member of the cohort ordered; week 0 is the cohort itself (100 %).
-- retention_rate = members who ordered in that week / cohort size, in %, rounded half up exactly.
with orders as (
    select * from warehouse.fact_orders
),

order_weeks as (
    select distinct
        orders.user_id,
        cast(date_trunc('week', orders.order_ts) as date) as order_week
    from orders
),

cohorts as (
    select
        order_weeks.user_id,
        min(order_weeks.order_week) as cohort_week
    from order_weeks
    group by order_weeks.user_id
),

cohort_sizes as (
    select
        cohorts.cohort_week,
        count(*) as cohort_size
    from cohorts
    group by cohorts.cohort_week
),

activity as (
    select
        cohorts.cohort_week,
        -- both are Mondays: the day difference is a multiple of 7, so the division is exact on both
        -- engines (DuckDB divides integers to a double, Postgres to an integer; the cast agrees)
        cast((order_weeks.order_week - cohorts.cohort_week) / 7 as integer) as weeks_since_first_order,
        count(*) as active_customers
    from order_weeks
    inner join cohorts
        on order_weeks.user_id = cohorts.user_id
    group by cohorts.cohort_week, cast((order_weeks.order_week - cohorts.cohort_week) / 7 as integer)
),

final as (
    select
        activity.cohort_week,
        cohort_sizes.cohort_size,
        activity.weeks_since_first_order,
        activity.active_customers,
        -- 100 * a / b rounded half up to 2 decimals, exactly (queries/README.md)
        cast(cast(floor(
            (20000 * activity.active_customers + cohort_sizes.cohort_size)
            / cast(2 * cohort_sizes.cohort_size as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as retention_rate
    from activity
    inner join cohort_sizes
        on activity.cohort_week = cohort_sizes.cohort_week
)

select * from final
order by final.cohort_week, final.weeks_since_first_order
