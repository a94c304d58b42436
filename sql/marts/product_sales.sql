-- product_sales: what each product has sold over the whole history, by status.
-- Grain: one row per product_id with at least one current order. Not partitioned: computed from the
-- current marts.product_sales_daily (Postgres keeps it up to date in each publish by adding each
-- date's change, pipeline.serving.mart_deltas), so an all-time question reads one row per product.
with sales as (
    select * from marts.product_sales_daily
),

final as (
    select
        sales.product_id,
        cast(sum(sales.order_count) as bigint) as order_count,
        cast(sum(sales.paid_order_count) as bigint) as paid_order_count,
        cast(sum(sales.pending_order_count) as bigint) as pending_order_count,
        cast(sum(sales.cancelled_order_count) as bigint) as cancelled_order_count,
        cast(sum(sales.refunded_order_count) as bigint) as refunded_order_count,
        cast(sum(sales.sold_order_count) as bigint) as sold_order_count,
        cast(sum(sales.units_sold) as bigint) as units_sold,
        cast(sum(sales.gross_revenue) as decimal(18, 2)) as gross_revenue,
        cast(sum(sales.net_revenue) as decimal(18, 2)) as net_revenue,
        cast(sum(sales.cancelled_revenue) as decimal(18, 2)) as cancelled_revenue,
        cast(sum(sales.refunded_revenue) as decimal(18, 2)) as refunded_revenue
    from sales
    group by sales.product_id
)

select * from final
