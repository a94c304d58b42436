-- warehouse.daily_metrics is a LOAD-DATE metric: what each load date's files brought, not the sales of
-- a calendar day. An order delivered again on a later load date (a restated status, a re-sent file)
-- is counted on every load date that brought it, so its revenue and counts are not additive over
-- run_date; sales by order date come from the current facts (warehouse.fact_orders by date_id).
-- The comments of 004 did not say so; they are replaced here (004 itself is never edited).
comment on table warehouse.daily_metrics is
    'What each load date''s files brought through the pipeline: rows per layer, revenue and data-quality figures. A load-date metric, not sales by day: an order re-delivered on a later load date counts again on that date, and late orders count on the date they arrived, so summing revenue or counts over run_date overstates them. Sales by order date: warehouse.fact_orders (current, one row per order) grouped by date_id, as in queries/daily_kpis.sql. Grain: one row per run_date (= load date).';
comment on column warehouse.daily_metrics.fact_orders_count is
    'Order lines the load date published to warehouse.fact_orders_all, re-delivered orders included (they have a row on each load date that brought them). Not additive over run_date.';
comment on column warehouse.daily_metrics.fact_events_count is
    'Events the load date published to warehouse.fact_events_all, re-delivered events included. Not additive over run_date.';
comment on column warehouse.daily_metrics.gross_revenue is
    'Sum of revenue over the order lines in the load date''s files, any status, whatever their order date; an order re-delivered later counts again on that load date. Not additive over run_date: revenue by order date is warehouse.fact_orders by date_id.';
comment on column warehouse.daily_metrics.net_revenue is
    'Sum of net_revenue (sold statuses only) over the load date''s order lines, as gross_revenue: a load-date figure, not additive over run_date.';
comment on column warehouse.daily_metrics.orders_count is
    'Distinct orders in the load date''s files (re-delivered and late orders included). Not additive over run_date: orders by order date are warehouse.fact_orders by date_id.';
comment on column warehouse.daily_metrics.events_count is
    'Events in the load date''s files (re-delivered and late events included). Not additive over run_date: events by event date are warehouse.fact_events by date_id.';
