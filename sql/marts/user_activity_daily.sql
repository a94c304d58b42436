-- user_activity_daily: what each user did on each event date, step by step, from one load date's events (a contribution).
-- Grain: one row per event date (business day) per user_id per load_date; partition: load_date.
-- Distinct users are not additive over load dates (a late event may come for a user the day already
-- counted), but these per-user counts are: marts.user_activity_daily is this model over the current
-- events (kept by each publish as the sum of every load date's partition minus the superseded copies,
-- pipeline.serving.marts), and a user is active on a day, or took a step, while its count is > 0.
-- marts.funnel_daily and marts.daily_kpis count those users. Portable SQL (queries/README.md).
with events as (
    select * from fact_events
),

final as (
    select
        make_date(
            cast(floor(events.date_id / 10000) as integer),
            cast(floor(events.date_id / 100) as integer) % 100,
            events.date_id % 100
        ) as event_date,
        events.user_id,
        count(*) as event_count,
        count(case when events.event_type = 'page_view' then 1 end) as page_view_count,
        count(case when events.event_type = 'view_product' then 1 end) as product_view_count,
        count(case when events.event_type = 'add_to_cart' then 1 end) as add_to_cart_count,
        count(case when events.event_type = 'checkout' then 1 end) as checkout_count,
        count(case when events.event_type = 'purchase' then 1 end) as purchase_count
    from events
    group by events.date_id, events.user_id
)

select * from final
