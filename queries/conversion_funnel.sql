-- Question: Of the users active each day, how many viewed a product, added to cart, checked out and purchased, and at what rates?
-- The seed's "User Conversion Funnel", fixed: a day without add-to-carts gives a NULL conversion rate
-- instead of a division-by-zero error (Postgres) or a silent NULL (DuckDB); "users with page views"
-- now counts users who had a page view, not every active user; the rates are exact.
-- Grain: one row per event date (business day), latest first, in the reporting window: the 30 days
-- ending at the latest COMPLETE day (marts.reporting_window; the latest complete day is the latest day
-- whose own load date is in: the sliver of events a file carries from the first minutes after its
-- midnight is not a day yet). To see other days, replace marts.reporting_window by
-- `(select date '2026-01-01' as first_date, date '2026-03-31' as last_date)`. A user counts once per step
-- per day, whatever the order of steps and however many files brought the day's events.
-- Rates are percentages: atc_rate = added to cart / active users, conversion_rate = purchased / added
-- to cart, visit_to_purchase_rate = purchased / active users.
-- Reads the window's days of the mart marts.funnel_daily (one row per day): its cost does not grow
-- with history.
with reporting_days as (
    select * from marts.reporting_window
),

-- the window's bounds as scalar subqueries: on Postgres an index range on the day (run-time values),
-- so the query reads the window's rows whatever the history (a join would scan the mart)
funnel as (
    select * from marts.funnel_daily
    where funnel_daily.event_date >= (select reporting_days.first_date from reporting_days)
        and funnel_daily.event_date <= (select reporting_days.last_date from reporting_days)
),

final as (
    select
        funnel.event_date,
        funnel.active_users,
        funnel.users_with_page_views,
        funnel.users_viewed_product,
        funnel.users_added_to_cart,
        funnel.users_checked_out,
        funnel.users_purchased,
        -- 100 * a / b rounded half up to 2 decimals, exactly; NULL when b = 0 (queries/README.md)
        cast(cast(floor(
            (20000 * funnel.users_added_to_cart + funnel.active_users)
            / cast(2 * nullif(funnel.active_users, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as atc_rate,
        cast(cast(floor(
            (20000 * funnel.users_purchased + funnel.users_added_to_cart)
            / cast(2 * nullif(funnel.users_added_to_cart, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as conversion_rate,
        cast(cast(floor(
            (20000 * funnel.users_purchased + funnel.active_users)
            / cast(2 * nullif(funnel.active_users, 0) as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as visit_to_purchase_rate
    from funnel
)

select * from final
order by final.event_date desc
