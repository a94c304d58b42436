-- dim_date: every calendar day a fact of the load date may refer to: the load date and the
-- [model] late_window_days before it (older rows are quarantined as ancient), plus any other day the
-- facts refer to (the next day, within the future tolerance). Dense while dates are loaded daily: a BI
-- date spine has no gaps from late_window_days before the first load date on (a pause in loading longer
-- than the window leaves the days it skipped out). A fact refers to its business day ([model]
-- business_timezone), the day its date_id names.
-- Grain: one row per date per load_date; partition: load_date. The current view keeps one row per date.
-- day_of_week and week_of_year are ISO (Monday = 1; week 1 holds the year's first Thursday); iso_year is the
-- year that week belongs to (2021-01-01: week 53 of 2020), so weeks group by (iso_year, week_of_year).
-- Columns in Postgres's order (iso_year last: its migration added it after is_weekend), so that a `select *` of
-- the lake and of Postgres line up (tests/test_serving_columns.py).
with orders as (
    select * from fact_orders
),

events as (
    select * from fact_events
),

referenced_dates as (
    select distinct business_date(orders.order_ts, $business_timezone) as full_date
    from orders
    union
    select distinct business_date(events.event_ts, $business_timezone) as full_date
    from events
    union
    select cast(window_days.range as date) as full_date
    from range($load_date::date - $late_window_days::integer, $load_date::date + 1, interval 1 day) as window_days
),

final as (
    select
        date_id(referenced_dates.full_date) as date_id,
        referenced_dates.full_date,
        year(referenced_dates.full_date)::integer as year,
        quarter(referenced_dates.full_date)::integer as quarter,
        month(referenced_dates.full_date)::integer as month,
        monthname(referenced_dates.full_date) as month_name,
        day(referenced_dates.full_date)::integer as day_of_month,
        isodow(referenced_dates.full_date)::integer as day_of_week,
        dayname(referenced_dates.full_date) as day_name,
        weekofyear(referenced_dates.full_date)::integer as week_of_year,
        isodow(referenced_dates.full_date) >= 6 as is_weekend,
        isoyear(referenced_dates.full_date)::integer as iso_year,
        $load_date::date as load_date,
    from referenced_dates
    order by referenced_dates.full_date
)

select * from final
