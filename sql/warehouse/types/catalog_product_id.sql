-- catalog_product_id: an ENUM of the product ids the latest catalog snapshot on or before D lists: its
-- staged products, and those whose row it quarantined for a bad attribute only (the id is valid, so the
-- product is still listed; dim_product_history keeps its last valid version). The fact models test
-- catalog membership with `try_cast(product_id as catalog_product_id)` (is_known_product), a hash
-- lookup inside a single-table select, instead of a join: the facts then keep staging's row order
-- (DuckDB preserves it for single-table selects) and are written without sorting the whole day.
select stg_products_snapshot.product_id
from stg_products_snapshot
where stg_products_snapshot.product_id is not null
union
select products_quarantine_snapshot.record_id
from products_quarantine_snapshot
where lists_the_product(products_quarantine_snapshot.reason_code)
