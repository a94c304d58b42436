-- funnel_daily: of the users active each business day, how many took each step of the funnel.
-- Grain: one row per business day (event_date) with events. Not partitioned: computed from the current
-- marts.user_activity_daily (Postgres keeps it up to date in each publish, pipeline.serving.mart_deltas).
-- A user counts once per step per day, whatever the order of the steps and however many load dates
-- brought the day's events (a late event for a user the day already counted changes nothing).
with activity as (
    select * from marts.user_activity_daily
),

final as (
    select
        activity.event_date,
        count(*) as active_users,
        count(case when activity.page_view_count > 0 then 1 end) as users_with_page_views,
        count(case when activity.product_view_count > 0 then 1 end) as users_viewed_product,
        count(case when activity.add_to_cart_count > 0 then 1 end) as users_added_to_cart,
        count(case when activity.checkout_count > 0 then 1 end) as users_checked_out,
        count(case when activity.purchase_count > 0 then 1 end) as users_purchased
    from activity
    group by activity.event_date
)

select * from final
