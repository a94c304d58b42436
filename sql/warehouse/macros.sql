-- Warehouse macros shared by the models and the current views (created as temp macros per connection).
-- Not a model: no grain, no partition. Timestamps are naive UTC (the session TimeZone is UTC, sqlrun.connect).

-- A day as the dim_date key: 2025-12-14 -> 20251214.
create or replace temp macro date_id(value) as (
    (year(value) * 10000 + month(value) * 100 + day(value))::integer
);

-- The business day of a stored (naive UTC) timestamp: its date in the business time zone `tz`
-- ([model] business_timezone, bound as $business_timezone). date_id(business_date(ts, tz)) is a
-- fact's date_id. UTC (the default) is the timestamp's own date, with no time zone lookup.
create or replace temp macro business_date(ts, tz) as (
    case when tz = 'UTC' then ts::date else timezone(tz, ts::timestamptz)::date end
);

-- A catalog row quarantined for this reason still lists its product: only an attribute was bad (a
-- price, a text), its id is valid (bad_records.record_id). The product stays in the catalog with its
-- last valid version (dim_product_history, catalog_product_id); reason codes: pipeline.transform.staging.
create or replace temp macro lists_the_product(reason_code) as (
    reason_code in ('invalid_price', 'negative_price', 'invalid_text')
);
