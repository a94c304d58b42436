"""Warehouse: a load date's staging partitions become its star-schema partitions, one table at a time.

`build(table, D)` runs `sql/warehouse/<table>.sql` and writes `lake/warehouse/<table>/load_date=D`.
A model reads only D's own partitions (staging, facts, audit) plus the small catalog snapshots on or
before D, so a day costs the same whatever the lake's history; rebuilding a date rewrites the same
rows. Models run in TABLES order: facts first, then the dimensions that read D's facts, then metrics.

Every partition keeps what its load date said; users read the *current views*
(`sql/warehouse/views/<table>.sql`, see `current_view_sql` / `create_current_views`), which combine all
partitions so that the result does not depend on the order dates were processed in:
- fact_orders: the latest load_date of an order_id wins (a later file restates the order);
- fact_events: the first load_date of an event_id wins (a later file repeating it is a resend);
- dim_user: contributions merged (min first dates, max last date, latest known city/country);
- dim_product: the latest catalog version, inferred members only for never-catalogued products;
- dim_product_history: the latest partition (each holds the whole SCD2 history up to its date);
- dim_date, daily_metrics: one row per date.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any, Callable

import duckdb
import pyarrow as pa

from pipeline import config, lake
from pipeline.transform import sqlrun
from pipeline.transform.staging import STAGING_SCHEMAS, business_timezone

logger = logging.getLogger(__name__)

TABLES = (
    "fact_orders",
    "fact_events",
    "dim_date",
    "dim_product_history",
    "dim_product",
    "dim_user",
    "daily_metrics",
)

# The relations each model reads (registered under these names before the model runs).
INPUTS: dict[str, tuple[str, ...]] = {
    "fact_orders": ("stg_orders", "stg_products_snapshot"),
    "fact_events": ("stg_events", "stg_products_snapshot"),
    "dim_date": ("fact_orders", "fact_events"),
    "dim_product_history": ("stg_products_history",),
    "dim_product": ("dim_product_history", "fact_orders", "fact_events"),
    "dim_user": ("fact_orders", "fact_events", "stg_users_snapshot"),
    "daily_metrics": (
        "raw_orders", "raw_events", "stg_orders", "stg_events", "fact_orders", "fact_events", "reconciliation",
    ),
}

VIEWS_DIR = sqlrun.SQL_DIR / "warehouse" / "views"


class InputPartitionMissing(Exception):
    """A partition a warehouse model reads has not been written yet."""


def partition_dates(layer: str, table: str) -> dict[dt.date, str]:
    """Every load date of a table that has a partition file now, with the file."""
    found: dict[dt.date, str] = {}
    root = lake.table_dir(layer, table)
    for path in lake.table_files(layer, table):
        match = re.fullmatch(r"load_date=(\d{4}-\d{2}-\d{2})", path[len(root):].lstrip("/").split("/")[0])
        if match:
            found[dt.date.fromisoformat(match.group(1))] = path
    return found


def _required(layer: str, table: str, load_date: dt.date, **keys: str) -> list[str]:
    path = lake.partition_file(layer, table, load_date, **keys)
    if not lake.exists(path):
        raise InputPartitionMissing(
            f"{layer}/{table} for {load_date} is missing ({path}); run that step for {load_date} first"
        )
    return [path]


def _snapshots_through(table: str, load_date: dt.date, latest_only: bool) -> list[str]:
    """A catalog's staged snapshots on or before the date (all, or the latest one); maybe none."""
    files = partition_dates("staging", table)
    dates = sorted(day for day in files if day <= load_date)
    source = table.removeprefix("stg_")
    unstaged = sorted(day for day in partition_dates("raw", source) if day <= load_date and day not in files)
    if unstaged:  # building now would give a different result than after staging: refuse
        raise InputPartitionMissing(
            f"raw/{source} snapshot(s) {', '.join(map(str, unstaged))} on or before {load_date} are landed but "
            f"not staged; run staging.stage({source!r}, <snapshot date>) for each first"
        )
    return [files[day] for day in (dates[-1:] if latest_only else dates)]


# Where each input relation's files are; a daily input must exist, a catalog may have none yet.
_INPUT_FILES: dict[str, Callable[[dt.date], list[str]]] = {
    "raw_orders": lambda d: _required("raw", "orders", d),
    "raw_events": lambda d: _required("raw", "events", d),
    "stg_orders": lambda d: _required("staging", "stg_orders", d),
    "stg_events": lambda d: _required("staging", "stg_events", d),
    "fact_orders": lambda d: _required("warehouse", "fact_orders", d),
    "fact_events": lambda d: _required("warehouse", "fact_events", d),
    "dim_product_history": lambda d: _required("warehouse", "dim_product_history", d),
    "reconciliation": lambda d: (
        _required("audit", "reconciliation", d, source_table="stg_orders")
        + _required("audit", "reconciliation", d, source_table="stg_events")
    ),
    "stg_products_snapshot": lambda d: _snapshots_through("stg_products", d, latest_only=True),
    "stg_products_history": lambda d: _snapshots_through("stg_products", d, latest_only=False),
    "stg_users_snapshot": lambda d: _snapshots_through("stg_users", d, latest_only=True),
}
# Before the first snapshot, a catalog input is an empty relation of the staging table's shape.
_EMPTY_SHAPES: dict[str, pa.Schema] = {
    "stg_products_snapshot": STAGING_SCHEMAS["stg_products"],
    "stg_products_history": STAGING_SCHEMAS["stg_products"],
    "stg_users_snapshot": STAGING_SCHEMAS["stg_users"],
}


def register_inputs(con: duckdb.DuckDBPyConnection, table: str, load_date: dt.date) -> None:
    """Register the relations `table`'s model reads for a load date (catalogs may be empty).

    A model that reads `stg_products_snapshot` also gets the ENUM type `catalog_product_id`: the
    snapshot's product ids. The fact models test catalog membership with
    `try_cast(product_id as catalog_product_id)`, a hash lookup inside a single-table select, instead
    of a join: the facts then keep staging's row order (DuckDB preserves it for single-table
    selects) and are written without sorting the whole day.
    """
    for name in INPUTS[table]:
        files = _INPUT_FILES[name](load_date)
        if files:
            sqlrun.register_parquet(con, name, files)
        else:
            con.register(name, _EMPTY_SHAPES[name].empty_table())
    if "stg_products_snapshot" in INPUTS[table]:
        con.execute(
            "create type catalog_product_id as enum ("
            " select distinct product_id from stg_products_snapshot where product_id is not null)"
        )


def define_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the warehouse macros (`sql/warehouse/macros.sql`) on a connection."""
    con.execute(sqlrun.sql_text("warehouse", "macros"))


def model_params(load_date: dt.date) -> dict[str, Any]:
    """The bound parameters of the warehouse models."""
    return {"load_date": load_date, "sold_statuses": config.sold_statuses(), "business_timezone": business_timezone()}


def build(table: str, load_date: dt.date) -> int:
    """Build one warehouse table's partition for a load date; return its row count."""
    if table not in TABLES:
        raise ValueError(f"unknown warehouse table {table!r}; expected one of {TABLES}")
    load_date = lake.parse_date(load_date)
    with sqlrun.connect() as con:
        define_macros(con)
        register_inputs(con, table, load_date)
        rows = sqlrun.run_model(
            con, "warehouse", table, model_params(load_date), lake.partition_file("warehouse", table, load_date)
        )
    logger.info("built warehouse %s for %s: %s rows", table, load_date, rows)
    return rows


def current_view_sql(table: str) -> str:
    """The SELECT of a table's current view; it reads `<table>_all`, a relation over every partition."""
    if table not in TABLES:
        raise ValueError(f"unknown warehouse table {table!r}; expected one of {TABLES}")
    return (VIEWS_DIR / f"{table}.sql").read_text(encoding="utf-8")


def create_current_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """On a connection, expose `<table>_all` (every partition) and view `<table>` (current) per built table."""
    define_macros(con)
    created = []
    for table in TABLES:
        files = lake.table_files("warehouse", table)
        if not files:
            continue
        sqlrun.register_parquet(con, f"{table}_all", files)
        con.execute(f"create or replace temp view {sqlrun.quote_ident(table)} as {current_view_sql(table)}")
        created.append(table)
    return created
