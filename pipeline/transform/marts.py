"""Marts: aggregates that answer the BI questions, built per load date in DuckDB and kept current in Postgres.

Two kinds of model live in `sql/marts/` (one SELECT per file, named after its table):

- **Per load date** (`LOAD_DATE_MARTS`): `build(table, D)` runs the model over D's warehouse
  partitions and writes `lake/marts/<table>/load_date=D` (checked by the quality gate, read by the
  publish). The contributions (`CONTRIBUTIONS`) hold only counts and sums at a grain fine enough for
  exact distinct counts (a user per day, a customer per day, a product per day): they add up over
  load dates, so the current table is the model over the current facts, and Postgres keeps it as the
  sum of every published load date's contribution minus the contributions of the versions that are
  not current (a re-delivered order, a resent event: `pipeline.serving.marts`). Their SQL is portable:
  Postgres runs the same files over superseded versions. `complete_days` says which business days
  are complete (their own load date is in).
- **Derived** (`DERIVED`, `VIEWS`): BI tables computed from the current contributions and the
  dimensions, with schema-qualified names (`marts.product_sales_daily`, `warehouse.dim_product`), so
  the same text runs on the lake (DuckDB views, `pipeline.lake.views`) and on Postgres (the rebuild
  and the tests; the publish keeps the derived tables by deltas, `pipeline.serving.mart_deltas`).

`current_sql(table)` is the SELECT of a table's current rows, the same text on both engines.
"""
from __future__ import annotations

import datetime as dt
import logging
import re

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.transform import warehouse

logger = logging.getLogger(__name__)

LAYER = "marts"
# per load date, in build order; the contributions read one fact each
CONTRIBUTIONS = ("product_sales_daily", "customer_orders_daily", "user_activity_daily")
LOAD_DATE_MARTS = (*CONTRIBUTIONS, "complete_days")
# computed from the current contributions (Postgres keeps them as tables), and views over them
DERIVED = ("daily_kpis", "funnel_daily", "product_sales", "customers", "cohort_retention")
VIEWS = ("category_sales_daily", "category_sales_daily_as_ordered", "latest_complete_day", "reporting_window")
TABLES = (*LOAD_DATE_MARTS, *DERIVED, *VIEWS)


class NotAMart(ValueError):
    """A name that is no model of sql/marts/."""


def _check(table: str, among: tuple[str, ...] = TABLES) -> str:
    if table not in among:
        raise NotAMart(f"unknown mart {table!r}; expected one of {', '.join(among)}")
    return table


def model_sql(table: str) -> str:
    """The text of `sql/marts/<table>.sql`."""
    return sqlrun.sql_text(LAYER, _check(table)).strip().rstrip(";")


def inputs(table: str) -> tuple[str, ...]:
    """The warehouse tables a per-load-date mart reads, from its SQL (each is the date's partition)."""
    names = sqlrun.references(model_sql(_check(table, LOAD_DATE_MARTS))).relations
    for name in names:
        if name not in warehouse.TABLES:
            raise warehouse.UnknownInput(f"sql/marts/{table}.sql reads {name!r}, which is not a warehouse table:"
                                         " a per-load-date mart reads the date's warehouse partitions")
    return tuple(names)


def parameters(table: str) -> set[str]:
    """The `$name` parameters a model binds (the contributions bind none: Postgres runs them too)."""
    return set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", re.sub(r"--[^\n]*", "", model_sql(table))))


def build(table: str, load_date: dt.date | str) -> int:
    """Build one per-load-date mart's partition of a date from its warehouse partitions; return its rows."""
    _check(table, LOAD_DATE_MARTS)
    day = lake.parse_date(load_date)
    with sqlrun.connect() as con:
        for name in inputs(table):
            path = lake.partition_file("warehouse", name, day)
            if not lake.exists(path):
                raise warehouse.InputPartitionMissing(
                    f"warehouse/{name} for {day} is missing ({path}); build the warehouse for {day} first")
            sqlrun.register_parquet(con, name, path)
        select = model_sql(table)
        if table in CONTRIBUTIONS:  # the file carries its load date, like every lake partition (the model does not:
            # Postgres runs it over rows of many load dates)
            select = f"select model_rows.*, cast($load_date as date) as load_date from (\n{select}\n) as model_rows"
        rows = sqlrun.copy_to_partition(con, select, {"load_date": day}, lake.partition_file(LAYER, table, day))
    logger.info("built mart %s for %s: %s rows", table, day, rows)
    return rows


def over(relations: dict[str, str], select_sql: str) -> str:
    """`select_sql` with each unqualified relation it reads bound to a SELECT (portable: a CTE around it)."""
    ctes = ",\n".join(f"{sqlrun.quote_ident(name)} as (\n{body}\n)" for name, body in relations.items())
    return f"with {ctes}\nselect * from (\n{select_sql}\n) as model_rows"


def current_sql(table: str) -> str:
    """The SELECT of a mart's current rows; runs unchanged on the lake (DuckDB) and on Postgres.

    A contribution: its model over the current facts (warehouse.fact_orders / fact_events, one row
    per order / event). A derived mart or view: its own model. complete_days has no current form
    (its rows are the partitions themselves).
    """
    if table in CONTRIBUTIONS:
        return over({name: f"select * from warehouse.{sqlrun.quote_ident(name)}" for name in inputs(table)},
                    model_sql(table))
    return model_sql(_check(table, (*DERIVED, *VIEWS)))
