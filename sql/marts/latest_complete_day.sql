-- latest_complete_day: the latest complete business day, the last day every day-by-day query shows.
-- Grain: one row. The one definition both engines use (a view of the same text on the lake and on
-- Postgres): a business day is complete once its own load date's file is in (marts.complete_days:
-- published on Postgres, built on the lake); the latest complete day is the latest such day. A later
-- day only holds the first minutes after midnight that the latest file carried ([model]
-- future_tolerance_hours) and is left out; an earlier day counts even if its own file never came.
-- NULL before any date is in.
with days as (
    select * from marts.complete_days
),

final as (
    select
        max(days.complete_date) as latest_complete_date
    from days
)

select * from final
