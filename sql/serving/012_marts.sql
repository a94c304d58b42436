-- Marts: aggregates that answer the BI questions at a cost that does not grow with history.
-- Built per load date in DuckDB (sql/marts/, lake/marts/<table>/load_date=D) and kept current here by
-- the publish transaction of each date (pipeline.serving.marts), together with the facts:
-- - contributions (product_sales_daily, customer_orders_daily, user_activity_daily): counts and sums at a
--   grain fine enough for exact distinct counts; each row is the model of sql/marts/<table>.sql over the
--   current facts (warehouse.fact_orders / fact_events), kept as the sum of every published load date's
--   contribution minus the contributions of the versions that are not current;
-- - derived marts (daily_kpis, funnel_daily, product_sales, customers, cohort_retention): computed from the
--   contributions, changed by each publish only for the days, products and customers the date touches;
-- - complete_days: the business days whose own load date is published.
-- Grain: see each table's comment. Counts and amounts are never negative: the publish checks every row it
-- changed and rolls back instead of serving one that is (its bookkeeping would be wrong). Not a CHECK
-- constraint: an upsert adding a negative change to a row is checked as a new row before it is merged.
create schema if not exists marts;

comment on schema marts is
    'Aggregates for BI, kept exact by every publish: daily KPIs, the funnel, sales per day and product, customers, cohorts. Read these instead of the row-level facts.';

-- ------------------------------------------------------------------------------------ contributions
create table if not exists marts.product_sales_daily (
    order_date date not null,
    product_id text not null,
    order_count bigint not null default 0,
    paid_order_count bigint not null default 0,
    pending_order_count bigint not null default 0,
    cancelled_order_count bigint not null default 0,
    refunded_order_count bigint not null default 0,
    sold_order_count bigint not null default 0,
    units_sold bigint not null default 0,
    gross_revenue numeric(18, 2) not null default 0,
    net_revenue numeric(18, 2) not null default 0,
    cancelled_revenue numeric(18, 2) not null default 0,
    refunded_revenue numeric(18, 2) not null default 0,
    constraint product_sales_daily_pkey primary key (order_date, product_id)
);

comment on table marts.product_sales_daily is
    'Sales per day and product, over the current orders (warehouse.fact_orders). Grain: one row per order date (business day) per product_id with at least one order. Model: sql/marts/product_sales_daily.sql.';
comment on column marts.product_sales_daily.order_date is 'Business day of the orders (warehouse.fact_orders.date_id as a date; [model] business_timezone, default UTC).';
comment on column marts.product_sales_daily.product_id is 'Product ordered (warehouse.dim_product.product_id).';
comment on column marts.product_sales_daily.order_count is 'Orders (one line each) of the product on the day, any status.';
comment on column marts.product_sales_daily.paid_order_count is 'Of them, orders with status paid.';
comment on column marts.product_sales_daily.pending_order_count is 'Of them, orders with status pending.';
comment on column marts.product_sales_daily.cancelled_order_count is 'Of them, orders with status cancelled.';
comment on column marts.product_sales_daily.refunded_order_count is 'Of them, orders with status refunded.';
comment on column marts.product_sales_daily.sold_order_count is 'Of them, orders that count as sold: net_revenue > 0 (a status of [model] sold_statuses and a positive amount).';
comment on column marts.product_sales_daily.units_sold is 'Units ordered (sum of quantity), any status.';
comment on column marts.product_sales_daily.gross_revenue is 'Revenue (quantity * unit_price), any status.';
comment on column marts.product_sales_daily.net_revenue is 'Revenue that counts as sold (sold statuses only).';
comment on column marts.product_sales_daily.cancelled_revenue is 'Revenue of the cancelled orders.';
comment on column marts.product_sales_daily.refunded_revenue is 'Revenue of the refunded orders.';

create table if not exists marts.customer_orders_daily (
    user_id text not null,
    order_date date not null,
    order_count bigint not null default 0,
    paid_order_count bigint not null default 0,
    units_sold bigint not null default 0,
    gross_revenue numeric(18, 2) not null default 0,
    net_revenue numeric(18, 2) not null default 0,
    constraint customer_orders_daily_pkey primary key (user_id, order_date)
);

comment on table marts.customer_orders_daily is
    'Orders per customer and day, over the current orders. Grain: one row per user_id per order date (business day) with at least one order. Model: sql/marts/customer_orders_daily.sql. marts.customers and marts.cohort_retention are computed from it.';
comment on column marts.customer_orders_daily.user_id is 'Customer (warehouse.dim_user.user_id).';
comment on column marts.customer_orders_daily.order_date is 'Business day of the orders.';
comment on column marts.customer_orders_daily.order_count is 'Orders the customer placed that day, any status.';
comment on column marts.customer_orders_daily.paid_order_count is 'Of them, orders with status paid.';
comment on column marts.customer_orders_daily.units_sold is 'Units ordered (sum of quantity), any status.';
comment on column marts.customer_orders_daily.gross_revenue is 'Revenue, any status.';
comment on column marts.customer_orders_daily.net_revenue is 'Revenue that counts as sold (sold statuses only).';

create table if not exists marts.user_activity_daily (
    event_date date not null,
    user_id text not null,
    event_count bigint not null default 0,
    page_view_count bigint not null default 0,
    product_view_count bigint not null default 0,
    add_to_cart_count bigint not null default 0,
    checkout_count bigint not null default 0,
    purchase_count bigint not null default 0,
    constraint user_activity_daily_pkey primary key (event_date, user_id)
);

comment on table marts.user_activity_daily is
    'What each user did each day, step by step, over the current events (warehouse.fact_events). Grain: one row per event date (business day) per user_id with at least one event. Model: sql/marts/user_activity_daily.sql. A user is active on a day, or took a step, while the count is > 0: marts.funnel_daily and marts.daily_kpis count those users.';
comment on column marts.user_activity_daily.event_date is 'Business day of the events (warehouse.fact_events.date_id as a date).';
comment on column marts.user_activity_daily.user_id is 'User (warehouse.dim_user.user_id).';
comment on column marts.user_activity_daily.event_count is 'Events of the user that day, any type.';
comment on column marts.user_activity_daily.page_view_count is 'Of them, page_view events.';
comment on column marts.user_activity_daily.product_view_count is 'Of them, view_product events.';
comment on column marts.user_activity_daily.add_to_cart_count is 'Of them, add_to_cart events.';
comment on column marts.user_activity_daily.checkout_count is 'Of them, checkout events.';
comment on column marts.user_activity_daily.purchase_count is 'Of them, purchase events.';

-- ------------------------------------------------------------------------------------ complete days
create table if not exists marts.complete_days (
    complete_date date primary key
);

comment on table marts.complete_days is
    'Business days whose own load date is published: a day is complete once the file of that date is in. The latest complete day is max(complete_date); a later day holds only the first minutes after midnight that the latest file carried ([model] future_tolerance_hours) and is left out of the queries'' latest day. Grain: one row per published load date. Model: sql/marts/complete_days.sql.';
comment on column marts.complete_days.complete_date is 'The day (= the published load date).';

-- ------------------------------------------------------------------------------------ derived marts
create table if not exists marts.daily_kpis (
    kpi_date date primary key,
    order_count bigint not null default 0,
    paid_order_count bigint not null default 0,
    pending_order_count bigint not null default 0,
    cancelled_order_count bigint not null default 0,
    refunded_order_count bigint not null default 0,
    sold_order_count bigint not null default 0,
    units_sold bigint not null default 0,
    gross_revenue numeric(18, 2) not null default 0,
    net_revenue numeric(18, 2) not null default 0,
    cancelled_revenue numeric(18, 2) not null default 0,
    refunded_revenue numeric(18, 2) not null default 0,
    event_count bigint not null default 0,
    active_users bigint not null default 0,
    purchasing_users bigint not null default 0
);

comment on table marts.daily_kpis is
    'Each day''s headline numbers: orders and revenue by order date, events and users by event date. Grain: one row per business day with orders or events. Model: sql/marts/daily_kpis.sql (queries/daily_kpis.sql computes the average order value and the conversion from it).';
comment on column marts.daily_kpis.kpi_date is 'The business day.';
comment on column marts.daily_kpis.order_count is 'Orders placed that day, any status.';
comment on column marts.daily_kpis.paid_order_count is 'Of them, orders with status paid.';
comment on column marts.daily_kpis.pending_order_count is 'Of them, orders with status pending.';
comment on column marts.daily_kpis.cancelled_order_count is 'Of them, orders with status cancelled.';
comment on column marts.daily_kpis.refunded_order_count is 'Of them, orders with status refunded.';
comment on column marts.daily_kpis.sold_order_count is 'Of them, orders that count as sold (net_revenue > 0).';
comment on column marts.daily_kpis.units_sold is 'Units ordered that day, any status.';
comment on column marts.daily_kpis.gross_revenue is 'Revenue of the day''s orders, any status.';
comment on column marts.daily_kpis.net_revenue is 'Revenue that counts as sold (sold statuses only).';
comment on column marts.daily_kpis.cancelled_revenue is 'Revenue of the day''s cancelled orders.';
comment on column marts.daily_kpis.refunded_revenue is 'Revenue of the day''s refunded orders.';
comment on column marts.daily_kpis.event_count is 'Clickstream events that day.';
comment on column marts.daily_kpis.active_users is 'Distinct users with at least one event that day.';
comment on column marts.daily_kpis.purchasing_users is 'Distinct users with a purchase event that day (the buyers).';

create table if not exists marts.funnel_daily (
    event_date date primary key,
    active_users bigint not null default 0,
    users_with_page_views bigint not null default 0,
    users_viewed_product bigint not null default 0,
    users_added_to_cart bigint not null default 0,
    users_checked_out bigint not null default 0,
    users_purchased bigint not null default 0
);

comment on table marts.funnel_daily is
    'The funnel per day: distinct users per step. Grain: one row per business day with events. A user counts once per step per day, whatever the order of the steps. Model: sql/marts/funnel_daily.sql.';
comment on column marts.funnel_daily.event_date is 'The business day.';
comment on column marts.funnel_daily.active_users is 'Distinct users with at least one event that day.';
comment on column marts.funnel_daily.users_with_page_views is 'Distinct users with a page_view that day.';
comment on column marts.funnel_daily.users_viewed_product is 'Distinct users with a view_product that day.';
comment on column marts.funnel_daily.users_added_to_cart is 'Distinct users with an add_to_cart that day.';
comment on column marts.funnel_daily.users_checked_out is 'Distinct users with a checkout that day.';
comment on column marts.funnel_daily.users_purchased is 'Distinct users with a purchase event that day.';

create table if not exists marts.product_sales (
    product_id text primary key,
    order_count bigint not null default 0,
    paid_order_count bigint not null default 0,
    pending_order_count bigint not null default 0,
    cancelled_order_count bigint not null default 0,
    refunded_order_count bigint not null default 0,
    sold_order_count bigint not null default 0,
    units_sold bigint not null default 0,
    gross_revenue numeric(18, 2) not null default 0,
    net_revenue numeric(18, 2) not null default 0,
    cancelled_revenue numeric(18, 2) not null default 0,
    refunded_revenue numeric(18, 2) not null default 0
);

comment on table marts.product_sales is
    'What each product has sold over the whole history. Grain: one row per product_id with at least one current order. Model: sql/marts/product_sales.sql; join warehouse.dim_product for its name and current category.';
comment on column marts.product_sales.product_id is 'Product (warehouse.dim_product.product_id).';
comment on column marts.product_sales.order_count is 'Orders of the product, any status.';
comment on column marts.product_sales.paid_order_count is 'Of them, orders with status paid.';
comment on column marts.product_sales.pending_order_count is 'Of them, orders with status pending.';
comment on column marts.product_sales.cancelled_order_count is 'Of them, orders with status cancelled.';
comment on column marts.product_sales.refunded_order_count is 'Of them, orders with status refunded.';
comment on column marts.product_sales.sold_order_count is 'Of them, orders that count as sold (net_revenue > 0).';
comment on column marts.product_sales.units_sold is 'Units ordered, any status.';
comment on column marts.product_sales.gross_revenue is 'Revenue, any status.';
comment on column marts.product_sales.net_revenue is 'Revenue that counts as sold (sold statuses only).';
comment on column marts.product_sales.cancelled_revenue is 'Revenue of the cancelled orders.';
comment on column marts.product_sales.refunded_revenue is 'Revenue of the refunded orders.';

create table if not exists marts.customers (
    user_id text primary key,
    first_order_date date not null,
    last_order_date date not null,
    cohort_week date not null,
    order_count bigint not null default 0,
    paid_order_count bigint not null default 0,
    units_sold bigint not null default 0,
    gross_revenue numeric(18, 2) not null default 0,
    net_revenue numeric(18, 2) not null default 0
);
-- the repeat-customer question: the best customers first, found without reading the others
create index if not exists customers_ranking_idx on marts.customers (order_count desc, gross_revenue desc, user_id);

comment on table marts.customers is
    'One row per customer: first and last order, orders, paid orders, revenue. Grain: one row per user_id with at least one current order. Model: sql/marts/customers.sql.';
comment on column marts.customers.user_id is 'Customer (warehouse.dim_user.user_id).';
comment on column marts.customers.first_order_date is 'Business day of the customer''s first current order.';
comment on column marts.customers.last_order_date is 'Business day of the customer''s latest current order.';
comment on column marts.customers.cohort_week is 'Monday of the week of first_order_date: the customer''s cohort (marts.cohort_retention).';
comment on column marts.customers.order_count is 'Orders, any status.';
comment on column marts.customers.paid_order_count is 'Of them, orders with status paid.';
comment on column marts.customers.units_sold is 'Units ordered, any status.';
comment on column marts.customers.gross_revenue is 'Revenue, any status (what the customer spent before cancellations and refunds).';
comment on column marts.customers.net_revenue is 'Revenue that counts as sold (sold statuses only).';

create table if not exists marts.cohort_retention (
    cohort_week date not null,
    weeks_since_first_order integer not null,
    active_customers bigint not null default 0,
    constraint cohort_retention_pkey primary key (cohort_week, weeks_since_first_order)
);

comment on table marts.cohort_retention is
    'Customers by the week of their first order (cohort), and how many of them ordered in each later week. Grain: one row per cohort week per week since the first order in which a member ordered; week 0 is the cohort itself (its size). Model: sql/marts/cohort_retention.sql.';
comment on column marts.cohort_retention.cohort_week is 'Monday of the week of the members'' first order (ISO weeks of business days).';
comment on column marts.cohort_retention.weeks_since_first_order is 'Weeks after the cohort week (0 = the cohort week).';
comment on column marts.cohort_retention.active_customers is 'Members of the cohort with at least one order that week.';

-- ------------------------------------------------------------------------------------ privileges
-- BI reads every mart; the publish (ecomm_writer) writes them. Views created later by migrations keep
-- the default privileges.
grant usage on schema marts to ecomm_reader, ecomm_writer;
grant select on all tables in schema marts to ecomm_reader;
alter default privileges in schema marts grant select on tables to ecomm_reader;
grant select, insert, update, delete on all tables in schema marts to ecomm_writer;
alter default privileges in schema marts grant select, insert, update, delete on tables to ecomm_writer;
