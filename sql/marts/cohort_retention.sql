-- cohort_retention: of the customers whose first order fell in a week, how many ordered in each later week.
-- Grain: one row per cohort week (the Monday of the first order's week) per week since the first order in
-- which at least one member of the cohort ordered; week 0 is the cohort itself (its size). Not
-- partitioned: computed from the current marts.customer_orders_daily (Postgres keeps it up to date in
-- each publish, pipeline.serving.mart_deltas). Weeks are ISO weeks of business days.
with customer_days as (
    select * from marts.customer_orders_daily
),

order_weeks as (
    select distinct
        customer_days.user_id,
        cast(date_trunc('week', customer_days.order_date) as date) as order_week
    from customer_days
),

cohorts as (
    select
        order_weeks.user_id,
        min(order_weeks.order_week) as cohort_week
    from order_weeks
    group by order_weeks.user_id
),

final as (
    select
        cohorts.cohort_week,
        -- both are Mondays: the day difference is a multiple of 7, exact on both engines
        cast((order_weeks.order_week - cohorts.cohort_week) / 7 as integer) as weeks_since_first_order,
        count(*) as active_customers
    from order_weeks
    inner join cohorts
        on order_weeks.user_id = cohorts.user_id
    group by cohorts.cohort_week, cast((order_weeks.order_week - cohorts.cohort_week) / 7 as integer)
)

select * from final
