-- Warehouse macros shared by the models and the current views (created as temp macros per connection).
-- Not a model: no grain, no partition.

-- A timestamp's or date's own day as the dim_date key: 2025-12-14 -> 20251214.
create or replace temp macro date_id(value) as (
    (year(value) * 10000 + month(value) * 100 + day(value))::integer
);
