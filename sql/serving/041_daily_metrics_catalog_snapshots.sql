-- Which catalog snapshots each load date was built with, so that a snapshot that arrived after a
-- date was built (a weekly file delivered late) can be told from one the date used: the date is then
-- restated (`python -m pipeline restate --catalog <kind> --date <snapshot>`). NULL for dates built
-- before this column existed (their lake partitions lack it) and for dates no snapshot covered.
alter table warehouse.daily_metrics
    add column if not exists products_snapshot_date date,
    add column if not exists users_snapshot_date date;

comment on column warehouse.daily_metrics.products_snapshot_date is
    'Date of the products catalog snapshot the load date was built with (the latest on or before it at build time); null: none yet. A later snapshot on or before run_date arrived after the build: the date keeps the older catalog until it is restated.';
comment on column warehouse.daily_metrics.users_snapshot_date is
    'Date of the users catalog snapshot the load date was built with (the latest on or before it at build time); null: none yet. A later snapshot on or before run_date arrived after the build: the date keeps the older catalog until it is restated.';
