-- unseen_status_changes (a quality gate view, not a lake table): the load date's cancelled or refunded orders
-- older than [model] late_window_days (staging keeps them for status_change_window_days, as status changes of
-- an order another load date delivered) whose order_id no other load date's fact_orders holds: each creates an
-- order on a closed day. Grain: one row per such order. pipeline.quality.unseen_orders builds it on the
-- fact_orders scan's connection for checks/warehouse/fact_orders.yml (count) and the message (a few ids), from
-- `fact_orders` (the date's partition) and `fact_orders_other_dates` (the order_ids of the other load dates a
-- kept status change's order can be on).
with orders as (
    select * from fact_orders
),

other_dates as (
    select * from fact_orders_other_dates
),

final as (
    select
        orders.order_id,
        orders.status,
        orders.order_ts,
    from orders
    where orders.order_ts < $ancient_limit_ts::timestamp
        and list_contains($status_change_statuses, orders.status)
        and not exists (select 1 from other_dates where other_dates.order_id = orders.order_id)
)

select * from final
