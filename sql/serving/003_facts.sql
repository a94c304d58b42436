-- Facts: every published version of every order line and event, partitioned by load_date, plus
-- views of the current versions. Grain: one row per (order_id, load_date) / (event_id, load_date).
-- Partitions are daily, created by pipeline.serving.publish as `<table>_YYYYMMDD`: a date is loaded into a
-- new table, indexed, and attached (or swapped for the old one) in the publish transaction, so a
-- date's replace never deletes rows from, or maintains indexes of, a large table.
-- The primary keys lead with the business key so that they double as its lookup index.
create table if not exists warehouse.fact_orders_all (
    order_id text not null,
    user_id text,
    product_id text,
    date_id integer,
    order_ts timestamp,
    quantity integer,
    unit_price numeric(18, 2),
    revenue numeric(18, 2),
    status text,
    net_revenue numeric(18, 2),
    is_known_product boolean,
    load_date date not null,
    constraint fact_orders_all_pkey primary key (order_id, load_date)
) partition by range (load_date);
-- date_id follows the load order within a day's partition: a BRIN summary finds a date range at a
-- fraction of a btree's build cost; product and user lookups get btrees.
create index if not exists fact_orders_all_date_id_idx on warehouse.fact_orders_all using brin (date_id);
create index if not exists fact_orders_all_product_id_idx on warehouse.fact_orders_all (product_id);
create index if not exists fact_orders_all_user_id_idx on warehouse.fact_orders_all (user_id);

comment on table warehouse.fact_orders_all is
    'Every published version of every order line. Grain: one row per order_id per load_date (a re-delivered order has one row per load date). Partitioned by load_date (one partition per day). BI should read the view warehouse.fact_orders.';
comment on column warehouse.fact_orders_all.order_id is 'Natural key of the order line as sent by the source.';
comment on column warehouse.fact_orders_all.user_id is 'User who placed the order (warehouse.dim_user.user_id).';
comment on column warehouse.fact_orders_all.product_id is 'Product ordered (warehouse.dim_product.product_id); may be an inferred member.';
comment on column warehouse.fact_orders_all.date_id is 'Order date as YYYYMMDD (warehouse.dim_date.date_id), from order_ts.';
comment on column warehouse.fact_orders_all.order_ts is 'When the order was placed (UTC, no time zone).';
comment on column warehouse.fact_orders_all.quantity is 'Units ordered.';
comment on column warehouse.fact_orders_all.unit_price is 'Price per unit charged on the order.';
comment on column warehouse.fact_orders_all.revenue is 'quantity * unit_price, whatever the status.';
comment on column warehouse.fact_orders_all.status is 'Order status, lower case (paid, pending, cancelled, refunded ...).';
comment on column warehouse.fact_orders_all.net_revenue is 'Revenue that counts as sold: revenue for sold statuses ([model] sold_statuses), else 0.';
comment on column warehouse.fact_orders_all.is_known_product is 'False when the product was not in the catalog when the order was built (points at an inferred member).';
comment on column warehouse.fact_orders_all.load_date is 'Load date (file date) this version of the order came from; the partition key.';

create table if not exists warehouse.fact_events_all (
    event_id text not null,
    user_id text,
    product_id text,
    event_type text,
    event_ts timestamp,
    date_id integer,
    is_known_product boolean,
    load_date date not null,
    constraint fact_events_all_pkey primary key (event_id, load_date)
) partition by range (load_date);
create index if not exists fact_events_all_date_id_idx on warehouse.fact_events_all using brin (date_id);

comment on table warehouse.fact_events_all is
    'Every published version of every clickstream event. Grain: one row per event_id per load_date. Partitioned by load_date (one partition per day). BI should read the view warehouse.fact_events.';
comment on column warehouse.fact_events_all.event_id is 'Natural key of the event as sent by the source.';
comment on column warehouse.fact_events_all.user_id is 'User who triggered the event (warehouse.dim_user.user_id).';
comment on column warehouse.fact_events_all.product_id is 'Product the event is about (warehouse.dim_product.product_id); null for events without one.';
comment on column warehouse.fact_events_all.event_type is 'Funnel step, lower case (page_view, view_product, add_to_cart, checkout, purchase ...).';
comment on column warehouse.fact_events_all.event_ts is 'When the event happened (UTC, no time zone).';
comment on column warehouse.fact_events_all.date_id is 'Event date as YYYYMMDD (warehouse.dim_date.date_id), from event_ts.';
comment on column warehouse.fact_events_all.is_known_product is 'False when the product was not in the catalog when the event was built.';
comment on column warehouse.fact_events_all.load_date is 'Load date (file date) this copy of the event came from; the partition key.';

-- Bookkeeping that keeps the current-version views cheap: the (few) versions that are not current,
-- maintained by each publish for the ids of the date it publishes.
create table if not exists warehouse.fact_orders_superseded (
    order_id text not null,
    load_date date not null,
    current_load_date date not null,
    primary key (order_id, load_date)
);
create index if not exists fact_orders_superseded_load_date_idx on warehouse.fact_orders_superseded (load_date);
create index if not exists fact_orders_superseded_current_idx on warehouse.fact_orders_superseded (current_load_date);

comment on table warehouse.fact_orders_superseded is
    'Order versions that are not current (a later load_date has the same order_id). Grain: one row per superseded (order_id, load_date). Maintained by publish; the view fact_orders excludes these rows.';
comment on column warehouse.fact_orders_superseded.order_id is 'Order whose version is superseded.';
comment on column warehouse.fact_orders_superseded.load_date is 'Load date of the superseded version.';
comment on column warehouse.fact_orders_superseded.current_load_date is 'Load date of the version that is current (the latest one).';

create table if not exists warehouse.fact_events_superseded (
    event_id text not null,
    load_date date not null,
    current_load_date date not null,
    primary key (event_id, load_date)
);
create index if not exists fact_events_superseded_load_date_idx on warehouse.fact_events_superseded (load_date);
create index if not exists fact_events_superseded_current_idx on warehouse.fact_events_superseded (current_load_date);

comment on table warehouse.fact_events_superseded is
    'Event copies that are not current (an earlier load_date has the same event_id: the first delivery wins). Grain: one row per superseded (event_id, load_date). Maintained by publish.';
comment on column warehouse.fact_events_superseded.event_id is 'Event whose later copy is superseded.';
comment on column warehouse.fact_events_superseded.load_date is 'Load date of the superseded copy.';
comment on column warehouse.fact_events_superseded.current_load_date is 'Load date of the copy that is current (the earliest one).';

create table if not exists warehouse.fact_partitions (
    fact_table text not null,
    load_date date not null,
    row_count bigint not null,
    min_id text,
    max_id text,
    published_at timestamptz not null default now(),
    primary key (fact_table, load_date)
);

comment on table warehouse.fact_partitions is
    'Directory of published fact partitions with their key range. Grain: one row per fact table per load_date. Publish uses min_id/max_id to look for re-delivered ids only in partitions whose range overlaps.';
comment on column warehouse.fact_partitions.fact_table is 'Partitioned table name: fact_orders_all or fact_events_all.';
comment on column warehouse.fact_partitions.load_date is 'Load date of the partition.';
comment on column warehouse.fact_partitions.row_count is 'Rows in the partition.';
comment on column warehouse.fact_partitions.min_id is 'Smallest business key (order_id / event_id) in the partition.';
comment on column warehouse.fact_partitions.max_id is 'Largest business key in the partition.';
comment on column warehouse.fact_partitions.published_at is 'When the partition was (re)published.';

create or replace view warehouse.fact_orders as
select
    fo.order_id,
    fo.user_id,
    fo.product_id,
    fo.date_id,
    fo.order_ts,
    fo.quantity,
    fo.unit_price,
    fo.revenue,
    fo.status,
    fo.net_revenue,
    fo.is_known_product,
    fo.load_date
from warehouse.fact_orders_all as fo
where not exists (
    select 1
    from warehouse.fact_orders_superseded as s
    where s.order_id = fo.order_id
        and s.load_date = fo.load_date
);

comment on view warehouse.fact_orders is
    'Current order lines. Grain: one row per order_id: the version from the latest load_date wins.';
comment on column warehouse.fact_orders.order_id is 'Natural key of the order line (unique in this view).';
comment on column warehouse.fact_orders.user_id is 'User who placed the order (warehouse.dim_user.user_id).';
comment on column warehouse.fact_orders.product_id is 'Product ordered (warehouse.dim_product.product_id).';
comment on column warehouse.fact_orders.date_id is 'Order date as YYYYMMDD (warehouse.dim_date.date_id).';
comment on column warehouse.fact_orders.order_ts is 'When the order was placed (UTC, no time zone).';
comment on column warehouse.fact_orders.quantity is 'Units ordered.';
comment on column warehouse.fact_orders.unit_price is 'Price per unit charged on the order.';
comment on column warehouse.fact_orders.revenue is 'quantity * unit_price, whatever the status.';
comment on column warehouse.fact_orders.status is 'Order status, lower case.';
comment on column warehouse.fact_orders.net_revenue is 'Revenue that counts as sold (sold statuses only, else 0).';
comment on column warehouse.fact_orders.is_known_product is 'False when the product was not in the catalog when the order was built.';
comment on column warehouse.fact_orders.load_date is 'Load date of the current version.';

create or replace view warehouse.fact_events as
select
    fe.event_id,
    fe.user_id,
    fe.product_id,
    fe.event_type,
    fe.event_ts,
    fe.date_id,
    fe.is_known_product,
    fe.load_date
from warehouse.fact_events_all as fe
where not exists (
    select 1
    from warehouse.fact_events_superseded as s
    where s.event_id = fe.event_id
        and s.load_date = fe.load_date
);

comment on view warehouse.fact_events is
    'Current events. Grain: one row per event_id: the copy from the earliest load_date wins (late duplicates are ignored).';
comment on column warehouse.fact_events.event_id is 'Natural key of the event (unique in this view).';
comment on column warehouse.fact_events.user_id is 'User who triggered the event.';
comment on column warehouse.fact_events.product_id is 'Product the event is about; null for events without one.';
comment on column warehouse.fact_events.event_type is 'Funnel step, lower case.';
comment on column warehouse.fact_events.event_ts is 'When the event happened (UTC, no time zone).';
comment on column warehouse.fact_events.date_id is 'Event date as YYYYMMDD (warehouse.dim_date.date_id).';
comment on column warehouse.fact_events.is_known_product is 'False when the product was not in the catalog when the event was built.';
comment on column warehouse.fact_events.load_date is 'Load date of the current copy.';
