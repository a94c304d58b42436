-- dim_product_history: SCD type 2 of the product catalog, rebuilt from every stg_products snapshot <= D.
-- Grain: one row per product version per load_date; partition: load_date (the latest partition is the
-- whole current history). A new version starts when name, category, brand or price differs from the
-- previous snapshot, or when the product reappears after missing from a snapshot. A version ends at the
-- snapshot that changed it or that no longer lists the product: effective_to is that snapshot's date
-- (exclusive: valid on effective_from <= day < effective_to), 9999-12-31 while current. A snapshot that
-- lists a product but whose row for it was quarantined for a bad attribute (lists_the_product, macros.sql)
-- does not end it: the product keeps its last valid version there, as if the snapshot had repeated it.
with snapshots as (
    select * from stg_products_history
),

quarantine as (
    select * from products_quarantine
),

listed_but_quarantined as (
    select distinct
        quarantine.record_id as product_id,
        quarantine.load_date as snapshot_date,
    from quarantine
    where lists_the_product(quarantine.reason_code)
),

-- the product's latest staged row before that snapshot, unless the snapshot staged one too
carried_forward as (
    select
        previous.product_id,
        previous.product_name,
        previous.category,
        previous.brand,
        previous.current_price,
        listed_but_quarantined.snapshot_date,
    from listed_but_quarantined
    asof inner join snapshots as previous
        on listed_but_quarantined.product_id = previous.product_id
        and listed_but_quarantined.snapshot_date > previous.snapshot_date
    anti join snapshots as staged
        on listed_but_quarantined.product_id = staged.product_id
        and listed_but_quarantined.snapshot_date = staged.snapshot_date
),

listings as (
    select
        snapshots.product_id,
        snapshots.product_name,
        snapshots.category,
        snapshots.brand,
        snapshots.current_price,
        snapshots.snapshot_date,
    from snapshots
    union all
    select * from carried_forward
),

products as (
    select
        listings.product_id,
        listings.product_name,
        listings.category,
        coalesce(listings.brand, 'Unknown brand') as brand,
        listings.current_price,
        listings.snapshot_date,
    from listings
    where listings.snapshot_date <= $load_date::date
),

snapshot_dates as (
    select
        products.snapshot_date,
        row_number() over (order by products.snapshot_date) as snapshot_seq,
        lead(products.snapshot_date) over (order by products.snapshot_date) as next_snapshot_date,
    from products
    group by products.snapshot_date
),

sequenced as (
    select
        products.*,
        snapshot_dates.snapshot_seq,
        lag(snapshot_dates.snapshot_seq) over by_product as previous_seq,
        lag(products.product_name) over by_product as previous_name,
        lag(products.category) over by_product as previous_category,
        lag(products.brand) over by_product as previous_brand,
        lag(products.current_price) over by_product as previous_price,
    from products
    inner join snapshot_dates
        on products.snapshot_date = snapshot_dates.snapshot_date
    window by_product as (partition by products.product_id order by products.snapshot_date)
),

flagged as (
    select
        sequenced.*,
        case
            when sequenced.previous_seq is null then 1
            when sequenced.previous_seq <> sequenced.snapshot_seq - 1 then 1
            when sequenced.product_name is distinct from sequenced.previous_name then 1
            when sequenced.category is distinct from sequenced.previous_category then 1
            when sequenced.brand is distinct from sequenced.previous_brand then 1
            when sequenced.current_price is distinct from sequenced.previous_price then 1
            else 0
        end as is_new_version,
    from sequenced
),

versioned as (
    select
        flagged.*,
        sum(flagged.is_new_version) over (
            partition by flagged.product_id order by flagged.snapshot_date rows unbounded preceding
        ) as version,
    from flagged
),

versions as (
    select
        versioned.product_id,
        versioned.version::integer as version,
        arg_min(versioned.product_name, versioned.snapshot_date) as product_name,
        arg_min(versioned.category, versioned.snapshot_date) as category,
        arg_min(versioned.brand, versioned.snapshot_date) as brand,
        arg_min(versioned.current_price, versioned.snapshot_date) as current_price,
        min(versioned.snapshot_date) as effective_from,
        max(versioned.snapshot_date) as last_snapshot_date,
    from versioned
    group by versioned.product_id, versioned.version
),

final as (
    select
        md5(versions.product_id || '|' || versions.effective_from) as product_key,
        versions.product_id,
        versions.version,
        versions.product_name,
        versions.category,
        versions.brand,
        versions.current_price,
        versions.effective_from,
        -- the snapshot after the version's last one changed or dropped the product
        coalesce(snapshot_dates.next_snapshot_date, date '9999-12-31') as effective_to,
        snapshot_dates.next_snapshot_date is null as is_current,
        $load_date::date as load_date,
    from versions
    inner join snapshot_dates
        on versions.last_snapshot_date = snapshot_dates.snapshot_date
    order by versions.product_id, versions.version
)

select * from final
