-- Question: Of each day's customers, how many ordered for the first time and how many had ordered before, and what did each group spend?
-- Grain: one row per order date (business day) with orders in the reporting window: the 30 days ending
-- at the latest complete day (marts.reporting_window; to see other days, replace it by
-- `(select date '2026-01-01' as first_date, date '2026-03-31' as last_date)`), over the current
-- version of every order. Reads the window's days of the mart marts.customer_orders_daily (one row per
-- customer and day, read by its order_date index) and those customers' rows of marts.customers (first
-- order date), not the row-level facts: its cost does not grow with history.
-- A customer is new on the date of their first order in the warehouse (the earliest order of any
-- status; what a customer bought before the warehouse's first load date is unknown to it) and
-- returning on every later date they order; several orders on one day count once. Revenue: gross =
-- any status, net = sold statuses. new_customer_share = new customers / the day's customers, in %.
with first_orders as (
    select
        customers.user_id,
        customers.first_order_date
    from marts.customers as customers
),

reporting_days as (
    select * from marts.reporting_window
),

customer_days as (
    select
        days.order_date,
        days.user_id,
        days.gross_revenue,
        days.net_revenue
    from marts.customer_orders_daily as days
    inner join reporting_days
        on days.order_date >= reporting_days.first_date
        and days.order_date <= reporting_days.last_date
    where days.order_count > 0
),

by_day as (
    select
        customer_days.order_date,
        count(*) as customer_count,
        count(case when customer_days.order_date = first_orders.first_order_date then 1 end) as new_customer_count,
        count(case when customer_days.order_date > first_orders.first_order_date then 1 end)
            as returning_customer_count,
        sum(case when customer_days.order_date = first_orders.first_order_date
            then customer_days.gross_revenue else 0 end) as new_customer_revenue,
        sum(case when customer_days.order_date > first_orders.first_order_date
            then customer_days.gross_revenue else 0 end) as returning_customer_revenue,
        sum(case when customer_days.order_date = first_orders.first_order_date
            then customer_days.net_revenue else 0 end) as new_customer_net_revenue,
        sum(case when customer_days.order_date > first_orders.first_order_date
            then customer_days.net_revenue else 0 end) as returning_customer_net_revenue
    from customer_days
    inner join first_orders
        on customer_days.user_id = first_orders.user_id
    group by customer_days.order_date
),

final as (
    select
        by_day.order_date,
        by_day.customer_count,
        by_day.new_customer_count,
        by_day.returning_customer_count,
        -- 100 * a / b rounded half up to 2 decimals, exactly (queries/README.md)
        cast(cast(floor(
            (20000 * by_day.new_customer_count + by_day.customer_count)
            / cast(2 * by_day.customer_count as double precision)
        ) as bigint) * 0.01 as decimal(9, 2)) as new_customer_share,
        cast(by_day.new_customer_revenue as decimal(18, 2)) as new_customer_revenue,
        cast(by_day.returning_customer_revenue as decimal(18, 2)) as returning_customer_revenue,
        cast(by_day.new_customer_net_revenue as decimal(18, 2)) as new_customer_net_revenue,
        cast(by_day.returning_customer_net_revenue as decimal(18, 2)) as returning_customer_net_revenue
    from by_day
)

select * from final
order by final.order_date
