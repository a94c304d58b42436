-- dim_user's dates count every version of an order received, a replaced one too: an order re-sent on a
-- later load date for another user or business day still counts for the user and day it was first sent
-- with (the merge is a minimum/maximum over load dates). marts.customers counts current orders only, so
-- the two answer "when was this customer's first order?" differently after such a re-send; the comments
-- say which is which.
comment on table warehouse.dim_user is
    'User dimension. Grain: one row per user_id. Merged from every load date: earliest first_seen/first_order, latest last_seen, city/country from the latest load date that reported either (order-independent). The dates count every version received, replaced ones too; marts.customers counts current orders only.';
comment on column warehouse.dim_user.first_seen_date is
    'Earliest business day the user appeared in any event or order (minimum over load dates, nulls ignored), every version received: an order later re-sent for another user or day still counts.';
comment on column warehouse.dim_user.first_order_date is
    'Earliest business day of an order by the user (minimum over load dates, nulls ignored), every version received: an order later re-sent for another user or day still counts (marts.customers.first_order_date: current orders only); null if none yet.';
comment on column warehouse.dim_user.last_seen_date is
    'Latest business day the user appeared in any event or order (maximum over load dates), every version received: an order later re-sent for another user or day still counts.';
