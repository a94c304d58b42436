-- catalog_product_id: an ENUM of the product ids the catalog holds on D: those with a current version in
-- dim_product_history, i.e. dim_product's catalog members (the latest snapshot's staged products, and
-- those whose row it quarantined for a bad attribute only while an earlier snapshot gave them a valid
-- version). A product listed only by a quarantined row, with no valid version yet, is an inferred member
-- of dim_product, and not known. The fact models test membership with
-- `try_cast(product_id as catalog_product_id)` (is_known_product), a hash lookup inside a single-table
-- select, instead of a join: the facts then keep staging's row order (DuckDB preserves it for
-- single-table selects) and are written without sorting the whole day.
select dim_product_history.product_id
from dim_product_history
where dim_product_history.is_current
