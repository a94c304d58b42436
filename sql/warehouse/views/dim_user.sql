-- dim_user (current): the per-load-date contributions merged into one row per user. Reads `dim_user_all`.
-- Grain: one row per user_id. Dates: earliest first seen / first order, latest last seen, over all
-- contributions; city and country: together, from the contribution with the greatest load_date that
-- has either. Built from min/max/arg_max only, the result does not depend on the order the load
-- dates were processed in.
with contributions as (
    select * from dim_user_all
),

activity as (
    select
        contributions.user_id,
        min(contributions.first_seen_date) as first_seen_date,
        min(contributions.first_order_date) as first_order_date,
        max(contributions.last_seen_date) as last_seen_date,
        max(contributions.load_date) as load_date,
    from contributions
    group by contributions.user_id
),

locations as (
    select
        contributions.user_id,
        arg_max(
            struct_pack(city := contributions.city, country := contributions.country),
            contributions.load_date
        ) as location,
    from contributions
    where contributions.city is not null
        or contributions.country is not null
    group by contributions.user_id
),

final as (
    select
        activity.user_id,
        activity.first_seen_date,
        activity.first_order_date,
        activity.last_seen_date,
        locations.location.city as city,
        locations.location.country as country,
        activity.load_date,
    from activity
    left join locations
        on activity.user_id = locations.user_id
)

select * from final
