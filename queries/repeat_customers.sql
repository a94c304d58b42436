-- Question: Who are our top 20 repeat customers (two or more orders), and for how long have they been buying?
-- The seed's "Repeat Customers", fixed: `(MAX(ts) - MIN(ts))::INT` is not valid on Postgres (an
-- interval cannot be cast to an integer); days_as_customer is now the difference of the two order
-- dates, an integer number of days on both engines. Ties are broken by user_id, so LIMIT 20 returns
-- the same customers everywhere.
-- Grain: one row per customer with at least two distinct orders. total_spent is gross (any status),
-- net_spent counts sold statuses only.
with orders as (
    select * from warehouse.fact_orders
),

customers as (
    select
        orders.user_id,
        count(distinct orders.order_id) as order_count,
        sum(orders.revenue) as total_spent,
        sum(orders.net_revenue) as net_spent,
        cast(min(orders.order_ts) as date) as first_order_date,
        cast(max(orders.order_ts) as date) as last_order_date
    from orders
    group by orders.user_id
    having count(distinct orders.order_id) >= 2
),

final as (
    select
        customers.user_id,
        customers.order_count,
        cast(customers.total_spent as decimal(18, 2)) as total_spent,
        cast(customers.net_spent as decimal(18, 2)) as net_spent,
        customers.first_order_date,
        customers.last_order_date,
        customers.last_order_date - customers.first_order_date as days_as_customer
    from customers
)

select * from final
order by final.order_count desc, final.total_spent desc, final.user_id
limit 20
