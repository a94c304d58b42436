-- Question: Who are our top 20 repeat customers (two or more orders), and for how long have they been buying?
-- The seed's "Repeat Customers", fixed: `(MAX(ts) - MIN(ts))::INT` is not valid on Postgres (an
-- interval cannot be cast to an integer); days_as_customer is now the difference of the two order
-- dates, an integer number of days on both engines. Ties are broken by user_id, so LIMIT 20 returns
-- the same customers everywhere.
-- Grain: one row per customer with at least two orders. total_spent is gross (any status),
-- net_spent counts sold statuses only; order dates are business days.
-- Reads the mart marts.customers (one row per customer, indexed by orders and revenue on Postgres).
with customers as (
    select * from marts.customers
),

final as (
    select
        customers.user_id,
        customers.order_count,
        customers.gross_revenue as total_spent,
        customers.net_revenue as net_spent,
        customers.first_order_date,
        customers.last_order_date,
        customers.last_order_date - customers.first_order_date as days_as_customer
    from customers
    where customers.order_count >= 2
)

select * from final
order by final.order_count desc, final.total_spent desc, final.user_id
limit 20
