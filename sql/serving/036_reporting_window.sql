-- The reporting window: the 30 business days ending at the latest complete day, the days every
-- day-by-day query in queries/ shows (the lake's view of the same name runs
-- sql/marts/reporting_window.sql, the text below; tests/test_marts_schema.py keeps the two equal).
-- Grain: one row. And the index that lets a windowed query read a customer-day mart by date range
-- instead of scanning every customer's history.
create or replace view marts.reporting_window as
with latest as (
    select * from marts.latest_complete_day
),

final as (
    select
        latest.latest_complete_date - 29 as first_date,
        latest.latest_complete_date as last_date
    from latest
)

select * from final;

comment on view marts.reporting_window is
    'The days the day-by-day queries show (one row): the 30 business days ending at the latest complete day (marts.latest_complete_day), both included. NULL before any date is published. Model: sql/marts/reporting_window.sql.';
comment on column marts.reporting_window.first_date is 'The first day of the window: the latest complete day minus 29 days.';
comment on column marts.reporting_window.last_date is 'The last day of the window: the latest complete day.';

grant select on marts.reporting_window to ecomm_reader;

-- new_vs_returning_customers reads the window's days of marts.customer_orders_daily (its primary key
-- starts with user_id, so without this index the date range would scan every customer's history)
create index if not exists customer_orders_daily_order_date_idx on marts.customer_orders_daily (order_date);
