-- reporting_window: the days every day-by-day query in queries/ shows: the 30 business days ending at
-- the latest complete day (marts.latest_complete_day), like the seed's "last 30 days" but without a clock,
-- and none before the first complete day (marts.complete_days): a date's file carries late orders and
-- events of the days before it, and before the first load date those were all such a day held (a
-- warehouse's first weeks showed them as days of one order and no conversion).
-- Grain: one row (first_date, last_date, both included; NULL before any date is in). The one definition
-- of the window (a view of the same text on the lake and on Postgres): a query reads its mart with
-- `day >= (select first_date from ...) and day <= (select last_date from ...)`, scalar subqueries that
-- Postgres turns into an index range on the day (a join would scan the mart), so a query's cost
-- follows the window, not the history. An analyst who wants other days replaces the query's
-- `marts.reporting_window` by `(select date '2026-01-01' as first_date, date '2026-03-31' as last_date)`.
with latest as (
    select * from marts.latest_complete_day
),

first_day as (
    select min(complete_days.complete_date) as first_complete_date
    from marts.complete_days
),

final as (
    select
        greatest(latest.latest_complete_date - 29, first_day.first_complete_date) as first_date,
        latest.latest_complete_date as last_date
    from latest
    cross join first_day
)

select * from final
