-- dim_date.iso_year: the year week_of_year (ISO 8601) belongs to. week_of_year is ISO but year is the
-- calendar year, so grouping weeks by (year, week_of_year) split a week that spans New Year: 2021-01-01
-- is in week 53 of 2020, 2024-12-30 in week 1 of 2025. Group weeks by (iso_year, week_of_year). The
-- rows published before this column are given it here; the lake's partitions built before it lack it
-- (NULL in `rebuild-serving` for dates only they refer to, until such a date is republished).
alter table warehouse.dim_date add column if not exists iso_year integer;

update warehouse.dim_date
set iso_year = extract(isoyear from full_date)::integer
where iso_year is null;

comment on column warehouse.dim_date.iso_year is
    'ISO 8601 week-numbering year: the year week_of_year belongs to (2021-01-01 is week 53 of 2020). Group weeks by (iso_year, week_of_year), not (year, week_of_year).';
comment on column warehouse.dim_date.week_of_year is 'ISO week number, 1-53, of iso_year.';
