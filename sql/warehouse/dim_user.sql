-- dim_user: the load date's contribution to the user dimension.
-- Grain: one row per user per load_date (users active in D's facts, plus users of a users snapshot
-- landed on D); partition: load_date. Dates are the user's activity within D's facts only (business
-- days, [model] business_timezone, like the facts' date_id); city and
-- country come from the latest users snapshot on or before D (NULL when there is none or the user is
-- not in it). pipeline/transform/merges.py (DIM_USER) merges the contributions into the current dimension,
-- so an order version a later load date replaced still counts (marts.customers: current orders only).
with orders as (
    select * from fact_orders
),

events as (
    select * from fact_events
),

users as (
    -- the latest stg_users snapshot on or before the load date (empty before the first one)
    select * from stg_users_snapshot
),

order_activity as (
    select
        orders.user_id,
        min(orders.order_ts) as first_order_ts,
        max(orders.order_ts) as last_order_ts,
    from orders
    group by orders.user_id
),

event_activity as (
    select
        events.user_id,
        min(events.event_ts) as first_event_ts,
        max(events.event_ts) as last_event_ts,
    from events
    group by events.user_id
),

seen_users as (
    select order_activity.user_id from order_activity
    union
    select event_activity.user_id from event_activity
    union
    select users.user_id from users where users.snapshot_date = $load_date::date
),

final as (
    select
        seen_users.user_id,
        business_date(least(order_activity.first_order_ts, event_activity.first_event_ts), $business_timezone)
            as first_seen_date,
        business_date(order_activity.first_order_ts, $business_timezone) as first_order_date,
        business_date(greatest(order_activity.last_order_ts, event_activity.last_event_ts), $business_timezone)
            as last_seen_date,
        users.city,
        users.country,
        $load_date::date as load_date,
    from seen_users
    left join order_activity
        on seen_users.user_id = order_activity.user_id
    left join event_activity
        on seen_users.user_id = event_activity.user_id
    left join users
        on seen_users.user_id = users.user_id
    order by seen_users.user_id
)

select * from final
