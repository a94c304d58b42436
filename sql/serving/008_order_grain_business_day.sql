-- The fact_orders grain and the business day, stated where BI reads them (comments only, no data change).
-- Grain: one row per order: an order is one line (one product), the seed system's contract; staging
-- quarantines a second line of an order (same order_id, another product_id) as multiple_order_lines.
-- date_id (and dim_date, dim_user's dates) is the business day: the date in [model] business_timezone
-- (an IANA name, default UTC) of the stored UTC timestamp.
comment on table warehouse.fact_orders_all is
    'Every published version of every order. Grain: one row per order_id per load_date: an order is one line (one product); staging quarantines an order''s other lines as multiple_order_lines (audit.bad_records), and a re-delivered order has one row per load date. Partitioned by load_date (one partition per day). BI should read the view warehouse.fact_orders.';
comment on column warehouse.fact_orders_all.order_id is 'Natural key of the order as sent by the source (one line per order).';
comment on column warehouse.fact_orders_all.date_id is 'Business day of order_ts as YYYYMMDD (warehouse.dim_date.date_id): its date in the pipeline''s business time zone ([model] business_timezone, default UTC).';

comment on view warehouse.fact_orders is
    'Current orders. Grain: one row per order_id (an order is one line, one product): the version from the latest load_date wins.';
comment on column warehouse.fact_orders.order_id is 'Natural key of the order (unique in this view).';
comment on column warehouse.fact_orders.date_id is 'Business day of order_ts as YYYYMMDD (warehouse.dim_date.date_id), in [model] business_timezone (default UTC).';

comment on column warehouse.fact_events_all.date_id is 'Business day of event_ts as YYYYMMDD (warehouse.dim_date.date_id): its date in the pipeline''s business time zone ([model] business_timezone, default UTC).';
comment on column warehouse.fact_events.date_id is 'Business day of event_ts as YYYYMMDD (warehouse.dim_date.date_id), in [model] business_timezone (default UTC).';

comment on table warehouse.dim_date is
    'Calendar dimension. Grain: one row per calendar day (date_id = YYYYMMDD); facts refer to their business day ([model] business_timezone, default UTC).';
comment on column warehouse.dim_user.first_seen_date is 'Earliest business day the user appeared in any event or order (minimum over load dates, nulls ignored).';
comment on column warehouse.dim_user.first_order_date is 'Earliest business day of an order by the user (minimum over load dates, nulls ignored); null if none yet.';
comment on column warehouse.dim_user.last_seen_date is 'Latest business day the user appeared in any event or order (maximum over load dates).';
