-- The latest complete business day, in one place: the queries that show days up to "the latest day" read
-- it on both engines (the lake's view of the same name runs sql/marts/latest_complete_day.sql, the text
-- below; tests/test_marts_schema.py keeps the two equal). Grain: one row.
create or replace view marts.latest_complete_day as
with days as (
    select * from marts.complete_days
),

final as (
    select
        max(days.complete_date) as latest_complete_date
    from days
)

select * from final;

comment on view marts.latest_complete_day is
    'The latest complete business day (one row): a day is complete once its own load date is published (marts.complete_days); a later day only holds the first minutes after midnight the latest file carried ([model] future_tolerance_hours). The day-by-day queries in queries/ stop at it. NULL before any date is published. Model: sql/marts/latest_complete_day.sql.';
comment on column marts.latest_complete_day.latest_complete_date is 'The latest published load date, as a business day.';

grant select on marts.latest_complete_day to ecomm_reader;
