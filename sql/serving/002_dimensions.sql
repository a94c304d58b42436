-- Dimensions: calendar, users and products (current and SCD2 history), merged order-independently.
-- Grain: one row per date_id / user_id / product_id / (product_id, version). Not partitioned.
create table if not exists warehouse.dim_date (
    date_id integer primary key,
    full_date date not null unique,
    year integer not null,
    quarter integer not null,
    month integer not null,
    month_name text not null,
    day_of_month integer not null,
    day_of_week integer not null,
    day_name text not null,
    week_of_year integer not null,
    is_weekend boolean not null
);

comment on table warehouse.dim_date is 'Calendar dimension. Grain: one row per calendar day (date_id = YYYYMMDD).';
comment on column warehouse.dim_date.date_id is 'Surrogate key of the day as the integer YYYYMMDD; facts refer to it.';
comment on column warehouse.dim_date.full_date is 'The calendar date.';
comment on column warehouse.dim_date.year is 'Calendar year.';
comment on column warehouse.dim_date.quarter is 'Calendar quarter, 1-4.';
comment on column warehouse.dim_date.month is 'Month number, 1-12.';
comment on column warehouse.dim_date.month_name is 'English month name (January ...).';
comment on column warehouse.dim_date.day_of_month is 'Day of the month, 1-31.';
comment on column warehouse.dim_date.day_of_week is 'ISO day of the week: 1 = Monday ... 7 = Sunday.';
comment on column warehouse.dim_date.day_name is 'English day name (Monday ...).';
comment on column warehouse.dim_date.week_of_year is 'ISO week number, 1-53.';
comment on column warehouse.dim_date.is_weekend is 'True on Saturday and Sunday.';

create table if not exists warehouse.dim_user (
    user_id text primary key,
    first_seen_date date,
    first_order_date date,
    last_seen_date date,
    city text,
    country text,
    city_as_of date,
    updated_at timestamptz not null default now()
);

comment on table warehouse.dim_user is
    'User dimension. Grain: one row per user_id. Merged from every load date: earliest first_seen/first_order, latest last_seen, city/country from the latest load date that reported either (order-independent).';
comment on column warehouse.dim_user.user_id is 'Natural key of the user as sent by the sources (e.g. USER_0042).';
comment on column warehouse.dim_user.first_seen_date is 'Earliest date the user appeared in any event or order (minimum over load dates, nulls ignored).';
comment on column warehouse.dim_user.first_order_date is 'Earliest date of an order by the user (minimum over load dates, nulls ignored); null if none yet.';
comment on column warehouse.dim_user.last_seen_date is 'Latest date the user appeared in any event or order (maximum over load dates).';
comment on column warehouse.dim_user.city is 'City from the most recent load date that reported a city or country.';
comment on column warehouse.dim_user.country is 'Country reported together with city (same load date).';
comment on column warehouse.dim_user.city_as_of is 'Load date whose contribution supplied city and country; a later load date with a city replaces them.';
comment on column warehouse.dim_user.updated_at is 'When a publish last merged a contribution into this row.';

create table if not exists warehouse.dim_product (
    product_id text primary key,
    product_name text,
    category text,
    brand text,
    current_price numeric(18, 2),
    effective_from date,
    is_inferred boolean not null default false,
    valid_as_of date not null
);
create index if not exists dim_product_category_idx on warehouse.dim_product (category);

comment on table warehouse.dim_product is
    'Product dimension, current version. Grain: one row per product_id. Keeps the row built as of the greatest load date, except a real catalog row is never replaced by an inferred one (order-independent).';
comment on column warehouse.dim_product.product_id is 'Natural key of the product (e.g. PROD_0042); facts join on it.';
comment on column warehouse.dim_product.product_name is 'Product name from the catalog; ''Unknown product'' for inferred members.';
comment on column warehouse.dim_product.category is 'Product category from the catalog; ''Unknown'' for inferred members.';
comment on column warehouse.dim_product.brand is 'Brand from the catalog; ''Unknown brand'' when the catalog has none and for inferred members.';
comment on column warehouse.dim_product.current_price is 'Catalog price of the current version, in the shop currency.';
comment on column warehouse.dim_product.effective_from is 'Date the current version (price/attributes) took effect.';
comment on column warehouse.dim_product.is_inferred is 'True for a placeholder created because facts referenced a product no catalog snapshot contained yet.';
comment on column warehouse.dim_product.valid_as_of is 'Load date of the lake partition this row was built from; the greatest one wins.';

create table if not exists warehouse.dim_product_history (
    product_id text not null,
    version integer not null,
    product_name text,
    category text,
    brand text,
    current_price numeric(18, 2),
    effective_from date,
    effective_to date,
    is_current boolean not null,
    valid_as_of date not null,
    primary key (product_id, version)
);

comment on table warehouse.dim_product_history is
    'Product dimension history (SCD type 2). Grain: one row per product_id per version. Replaced as a whole by the build with the greatest valid_as_of.';
comment on column warehouse.dim_product_history.product_id is 'Natural key of the product.';
comment on column warehouse.dim_product_history.version is 'Version number of the product, 1 = first seen, increasing with each change.';
comment on column warehouse.dim_product_history.product_name is 'Product name in this version.';
comment on column warehouse.dim_product_history.category is 'Category in this version.';
comment on column warehouse.dim_product_history.brand is 'Brand in this version.';
comment on column warehouse.dim_product_history.current_price is 'Catalog price in this version.';
comment on column warehouse.dim_product_history.effective_from is 'Snapshot date from which this version applied (inclusive).';
comment on column warehouse.dim_product_history.effective_to is 'First day this version no longer applied (exclusive: valid on effective_from <= day < effective_to); 9999-12-31 while current.';
comment on column warehouse.dim_product_history.is_current is 'True for the version in effect now.';
comment on column warehouse.dim_product_history.valid_as_of is 'Load date of the lake build these rows come from.';
