-- The reporting window starts no earlier than the first complete day: before the first load date a day
-- holds only the late orders and events a later file carried, which the day-by-day queries showed as
-- days of one order and no conversion in a warehouse's first weeks (the lake's view of the same name runs
-- sql/marts/reporting_window.sql, the text below; tests/test_marts_schema.py keeps the two equal).
create or replace view marts.reporting_window as
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

select * from final;

comment on view marts.reporting_window is
    'The days the day-by-day queries show (one row): the 30 business days ending at the latest complete day (marts.latest_complete_day), both included, and none before the first complete day (marts.complete_days). NULL before any date is published. Model: sql/marts/reporting_window.sql.';
comment on column marts.reporting_window.first_date is 'The first day of the window: the latest complete day minus 29 days, or the first complete day if later.';
