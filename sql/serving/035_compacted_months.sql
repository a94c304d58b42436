-- Closed months compacted into one partition per fact (pipeline/serving/compaction.py,
-- `python -m pipeline compact-serving`), stated where BI and operators read them (comments only, no data change).
-- A compacted month's dates keep their row in warehouse.fact_partitions (rows and key range per date);
-- which table holds a date is the catalog's answer: `<fact>_all_YYYYMMDD`, or `<fact>_all_mYYYYMM` once compacted.
comment on table warehouse.fact_orders_all is
    'Every published version of every order. Grain: one row per order_id per load_date: an order is one line (one product); staging quarantines an order''s other lines as multiple_order_lines (audit.bad_records), and a re-delivered order has one row per load date. Partitioned by load_date: one partition per day (fact_orders_all_YYYYMMDD), one per month once a closed month is compacted (fact_orders_all_mYYYYMM). BI should read the view warehouse.fact_orders.';
comment on table warehouse.fact_events_all is
    'Every published version of every clickstream event. Grain: one row per event_id per load_date. Partitioned by load_date: one partition per day (fact_events_all_YYYYMMDD), one per month once a closed month is compacted (fact_events_all_mYYYYMM). BI should read the view warehouse.fact_events.';
comment on table warehouse.fact_partitions is
    'Directory of published fact load dates with their key range. Grain: one row per fact table per load_date (also for a date of a compacted month, whose rows are in the month''s partition). Publish uses min_id/max_id to look for re-delivered ids only in load dates whose range overlaps.';
comment on column warehouse.fact_partitions.row_count is 'Rows of the load date.';
comment on column warehouse.fact_partitions.min_id is 'Smallest business key (order_id / event_id) of the load date.';
comment on column warehouse.fact_partitions.max_id is 'Largest business key of the load date.';
comment on column warehouse.fact_partitions.published_at is 'When the load date was (re)published.';
