-- The id columns' comments said "as sent": ids are staged in Unicode NFC, and a numeric user or product id as the
-- catalog numbers it (docs/pipeline.md, Ids), so an id may differ from the sender's bytes.
comment on column warehouse.dim_user.user_id is
    'Natural key of the user (e.g. USER_0042): the sources'' id in Unicode NFC, a numeric one as the catalog'
    ' numbers it (89 is USER_0089).';
comment on column warehouse.fact_orders_all.order_id is
    'Natural key of the order (one line per order): the source''s id in Unicode NFC.';
comment on column warehouse.fact_events_all.event_id is 'Natural key of the event: the source''s id in Unicode NFC.';
