-- complete_days: the business days whose own file is in: load date D completes business day D.
-- Grain: one row per load_date (the day it completes); partition: load_date.
-- The one definition of a "complete day" that every query showing a latest day uses (both engines
-- read marts.complete_days: Postgres holds the published load dates, the lake the built ones). A day
-- is complete once its own load date is published. Before that it may hold rows all the same: late
-- rows of an earlier file, or the few rows a file carries from the first minutes after its midnight
-- ([model] future_tolerance_hours); those days are incomplete. Late rows can still add to a complete
-- day later, as to any day.
-- On the lake a load date is in once both of its facts are built: the model reads them (so its task
-- waits for them), and a date whose files never landed completes no day.
with orders as (
    select count(*) as row_count from fact_orders
),

events as (
    select count(*) as row_count from fact_events
),

final as (
    select
        cast($load_date as date) as complete_date
    from orders
    cross join events
)

select * from final
