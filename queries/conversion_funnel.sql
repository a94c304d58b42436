-- Question: Of the users active each day, how many viewed a product, added to cart, checked out and purchased, and at what rates?
-- The seed's "User Conversion Funnel", fixed: a day without add-to-carts gives a NULL conversion rate
-- instead of a division-by-zero error (Postgres) or a silent NULL (DuckDB); "users with page views"
-- now counts users who had a page view, not every active user; the rates are exact.
-- Grain: one row per event date (UTC). A user counts once per step per day, whatever the order of steps.
-- Rates are percentages: atc_rate = added to cart / active users, conversion_rate = purchased / added
-- to cart, visit_to_purchase_rate = purchased / active users.
with events as (
    select * from warehouse.fact_events
),

steps_by_user as (
    select
        cast(events.event_ts as date) as event_date,
        events.user_id,
        count(case when events.event_type = 'page_view' then 1 end) as page_views,
        count(case when events.event_type = 'view_product' then 1 end) as product_views,
        count(case when events.event_type = 'add_to_cart' then 1 end) as add_to_carts,
        count(case when events.event_type = 'checkout' then 1 end) as checkouts,
        count(case when events.event_type = 'purchase' then 1 end) as purchases
    from events
    group by cast(events.event_ts as date), events.user_id
),

by_day as (
    select
        steps_by_user.event_date,
        count(*) as active_users,
        count(case when steps_by_user.page_views > 0 then 1 end) as users_with_page_views,
        count(case when steps_by_user.product_views > 0 then 1 end) as users_viewed_product,
        count(case when steps_by_user.add_to_carts > 0 then 1 end) as users_added_to_cart,
        count(case when steps_by_user.checkouts > 0 then 1 end) as users_checked_out,
        count(case when steps_by_user.purchases > 0 then 1 end) as users_purchased
    from steps_by_user
    group by steps_by_user.event_date
),

final as (
    select
        by_day.event_date,
        by_day.active_users,
        by_day.users_with_page_views,
        by_day.users_viewed_product,
        by_day.users_added_to_cart,
        by_day.users_checked_out,
        by_day.users_purchased,
        -- 100 * a / b rounded half up to 2 decimals, exactly; NULL when b = 0 (queries/README.md)
        cast(cast(floor(
            (20000 * by_day.users_added_to_cart + by_day.active_users)
            / cast(2 * nullif(by_day.active_users, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as atc_rate,
        cast(cast(floor(
            (20000 * by_day.users_purchased + by_day.users_added_to_cart)
            / cast(2 * nullif(by_day.users_added_to_cart, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as conversion_rate,
        cast(cast(floor(
            (20000 * by_day.users_purchased + by_day.active_users)
            / cast(2 * nullif(by_day.active_users, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as visit_to_purchase_rate
    from by_day
)

select * from final
order by final.event_date desc
