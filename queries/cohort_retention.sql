-- Question: Of the customers whose first order fell in a given week, what share ordered again 1, 2, 3 ... weeks later?
-- Grain: one row per first-order week (ISO week of business days, starting Monday) per week since the
-- first order in which at least one member of the cohort ordered; week 0 is the cohort itself (100 %).
-- retention_rate = members who ordered in that week / cohort size, in %, rounded half up exactly.
-- Reads the mart marts.cohort_retention (one row per cohort week and week since; week 0 = cohort size).
with activity as (
    select * from marts.cohort_retention
),

cohort_sizes as (
    select
        activity.cohort_week,
        activity.active_customers as cohort_size
    from activity
    where activity.weeks_since_first_order = 0
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
