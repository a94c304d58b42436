"""Warehouse: a load date's staging partitions become its star-schema partitions, one table at a time.

`build(table, D)` runs `sql/warehouse/<table>.sql` and writes `lake/warehouse/<table>/load_date=D`.
A model reads only D's own partitions (staging, facts, audit) plus the small catalog snapshots on or
before D, so a day costs the same whatever the lake's history; rebuilding a date rewrites the same
rows. Models run in TABLES order: the catalog's history (whose current products the facts' is_known_product
tests), the facts, then the dimensions that read D's facts, then metrics.
What a model reads is stated once, in its SQL (`inputs`); LAKE_INPUTS says where each relation is.
A model reading every staged snapshot of a catalog records in its partition's Parquet footer which ones it
read (`read_record`): daily_metrics' products_snapshot_dates is dim_product_history's record of the date.

Every partition keeps what its load date said; users read the *current views* (see `current_view_sql`
/ `create_current_views`: `sql/warehouse/views/<table>.sql`, and for dim_date, dim_user, dim_product
and dim_product_history rendered from `pipeline.transform.merges`, whose rules the Postgres publish
merges by too), which combine all partitions so that the result does not depend on the order dates
were processed in:
- fact_orders: the latest load_date of an order_id wins (a later file restates the order);
- fact_events: the first load_date of an event_id wins (a later file repeating it is a resend);
- dim_user: contributions merged (min first dates, max last date, latest known city/country);
- dim_product: the latest catalog version, inferred members only for never-catalogued products;
- dim_product_history: the latest partition (each holds the whole SCD2 history up to its date);
- dim_date (any partition's row of a date: they are equal), daily_metrics: one row per date.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import lake, read_once
from pipeline.lake import sqlrun
from pipeline.transform import merges
from pipeline.transform.staging import (DAILY_SOURCES, STAGING_SCHEMAS, business_timezone, hours_and_days, sold_statuses,
                                        staging_table)

logger = logging.getLogger(__name__)

TABLES = (
    "dim_product_history",
    "fact_orders",
    "fact_events",
    "dim_date",
    "dim_product",
    "dim_user",
    "daily_metrics",
)


@dataclasses.dataclass(frozen=True)
class LakeInput:
    """A relation a warehouse model may read, under the name its SQL uses: which lake partitions it is."""

    layer: str
    table: str
    sources: tuple[str, ...] = ()  # partitions keyed source_table=<each>, all required
    snapshots: str | None = None  # a catalog: the "latest" staged snapshot on or before the date, or "all" of them
    # (an audit table of a catalog: its partitions of those snapshots, source_table = sources[0])


# What a model's SQL may read besides the warehouse tables (a name in TABLES is that table's partition of
# the date). Which relations a model reads is not written down anywhere else: it is derived from its
# SQL (`inputs`), and pipeline.tasks.model maps each input to the task that writes it.
LAKE_INPUTS: dict[str, LakeInput] = {
    "raw_orders": LakeInput("raw", "orders"),
    "raw_events": LakeInput("raw", "events"),
    "stg_orders": LakeInput("staging", "stg_orders"),
    "stg_events": LakeInput("staging", "stg_events"),
    # every date reconciles its daily sources (a catalog only on its snapshot days)
    "reconciliation": LakeInput("audit", "reconciliation", sources=tuple(map(staging_table, DAILY_SOURCES))),
    "stg_products_snapshot": LakeInput("staging", "stg_products", snapshots="latest"),
    "stg_products_history": LakeInput("staging", "stg_products", snapshots="all"),
    "stg_users_snapshot": LakeInput("staging", "stg_users", snapshots="latest"),
    # the catalog rows staging quarantined: a product whose row was bad is still listed (macros.sql)
    "products_quarantine": LakeInput("audit", "bad_records", sources=("stg_products",), snapshots="all"),
}

VIEWS_DIR = sqlrun.SQL_DIR / "warehouse" / "views"
# Types a model may cast to: `sql/warehouse/types/<type>.sql` selects an ENUM's values from lake inputs,
# created on the model's connection before the model runs; a model casting to one reads its inputs.
TYPES_DIR = sqlrun.SQL_DIR / "warehouse" / "types"
INPUT_TYPES: dict[str, str] = {path.stem: path.read_text(encoding="utf-8") for path in sorted(TYPES_DIR.glob("*.sql"))}
# an empty audit input (no catalog snapshot yet): the columns the models read of it
_EMPTY_AUDIT = pa.schema([("record_id", pa.string()), ("reason_code", pa.string()), ("load_date", pa.date32())])


class InputPartitionMissing(Exception):
    """A partition a warehouse model reads has not been written yet."""


class UnknownInput(LookupError):
    """A model's SQL reads a relation that is no declared lake input; declare it in LAKE_INPUTS."""


NOT_DECLARED = ("is neither a warehouse table nor a lake input: declare it in pipeline.transform.warehouse.LAKE_INPUTS"
                " (its layer and table)")


def lake_input(name: str) -> LakeInput:
    """Where the relation `name` of a model's SQL is in the lake (a warehouse table: its own partition)."""
    if name in TABLES:
        return LakeInput("warehouse", name)
    try:
        return LAKE_INPUTS[name]
    except KeyError:
        raise UnknownInput(f"{name!r} {NOT_DECLARED}") from None


def _references(table: str) -> sqlrun.References:
    if table not in TABLES:
        raise ValueError(f"unknown warehouse table {table!r}; expected one of {TABLES}")
    return sqlrun.references(sqlrun.sql_text("warehouse", table))


def _relations(table: str) -> list[str]:
    """The relations `table`'s SQL reads, with those of the INPUT_TYPES it casts to."""
    refs = _references(table)
    return [*refs.relations, *(name for type_name in sorted(refs.types & INPUT_TYPES.keys())
                               for name in sqlrun.references(INPUT_TYPES[type_name]).relations)]


def inputs(table: str) -> tuple[str, ...]:
    """The relations `table`'s model reads, from its SQL (sql/warehouse/<table>.sql), in order of mention.

    A type of INPUT_TYPES it casts to counts as reading the inputs the type is built from, and a parameter
    of INPUT_PARAMS it binds as reading the warehouse table whose record the parameter is.
    """
    used = sqlrun.bind(sqlrun.sql_text("warehouse", table), INPUT_PARAMS)
    names = [*_relations(table), *(param.reads for param in used.values())]
    for name in names:
        try:
            lake_input(name)
        except UnknownInput:
            raise UnknownInput(f"sql/warehouse/{table}.sql reads {name!r}, which {NOT_DECLARED}") from None
    return tuple(dict.fromkeys(names))


def partition_dates(layer: str, table: str) -> dict[dt.date, str]:
    """Every load date of a table that has a partition file now, with the file (listed once in a `read_once.scope`)."""
    found: dict[dt.date, str] = {}
    root = lake.table_dir(layer, table)
    for path in read_once.once(("table files", layer, table), lambda: lake.table_files(layer, table)):
        if (day := _load_date(path[len(root):].lstrip("/"))) is not None:
            found[day] = path
    return found


def _load_date(path: str) -> dt.date | None:
    """The load date a partition file's path names (`load_date=D/...`, relative to its table), if any."""
    match = re.fullmatch(r"load_date=(\d{4}-\d{2}-\d{2})", path.split("/")[0])
    return dt.date.fromisoformat(match.group(1)) if match else None


def _required(layer: str, table: str, load_date: dt.date, **keys: str) -> list[str]:
    path = lake.partition_file(layer, table, load_date, **keys)
    if not lake.exists(path):
        raise InputPartitionMissing(
            f"{layer}/{table} for {load_date} is missing ({path}); run that step for {load_date} first"
        )
    return [path]


def _snapshots_through(table: str, load_date: dt.date, latest_only: bool) -> dict[dt.date, str]:
    """A catalog's staged snapshots on or before the date (all, or the latest one), with their files; maybe none."""
    files = partition_dates("staging", table)
    dates = sorted(day for day in files if day <= load_date)
    source = table.removeprefix("stg_")
    unstaged = sorted(day for day in partition_dates("raw", source) if day <= load_date and day not in files)
    if unstaged:  # building now would give a different result than after staging: refuse
        raise InputPartitionMissing(
            f"raw/{source} snapshot(s) {', '.join(map(str, unstaged))} on or before {load_date} are landed but "
            f"not staged; run staging.stage({source!r}, <snapshot date>) for each first"
        )
    return {day: files[day] for day in (dates[-1:] if latest_only else dates)}


def input_files(spec: LakeInput, load_date: dt.date) -> list[str]:
    """The files of an input for a date: a daily input's must exist, a catalog may have none yet."""
    if spec.snapshots is not None:
        catalog = spec.sources[0] if spec.layer == "audit" else spec.table
        snapshots = _snapshots_through(catalog, load_date, latest_only=spec.snapshots == "latest")
        if spec.layer == "audit":  # staging writes a catalog's audit partitions before its staging one
            return [lake.partition_file(spec.layer, spec.table, day, source_table=catalog) for day in snapshots]
        return list(snapshots.values())
    keys = [{"source_table": source} for source in spec.sources] or [{}]
    return [path for key in keys for path in _required(spec.layer, spec.table, load_date, **key)]


def register_inputs(con: duckdb.DuckDBPyConnection, table: str, load_date: dt.date) -> dict[str, list[str]]:
    """Register the relations `table`'s model reads for a load date, and the INPUT_TYPES it casts to; the files
    of each relation.

    Before a catalog's first snapshot, its input is an empty relation of the staging table's shape.
    """
    registered, relations = {}, set(_relations(table))
    for name in inputs(table):  # each checked to be declared before any is read
        if name not in relations:
            continue  # a table whose partition is read only for its record (INPUT_PARAMS)
        spec = lake_input(name)
        files = registered[name] = input_files(spec, load_date)
        if files:
            sqlrun.register_parquet(con, name, files)
        else:
            con.register(name, STAGING_SCHEMAS.get(spec.table, _EMPTY_AUDIT).empty_table())
    for type_name in sorted(_references(table).types & INPUT_TYPES.keys()):
        con.execute(f"create type {sqlrun.quote_ident(type_name)} as enum ({INPUT_TYPES[type_name]}\n)")
    return registered


def define_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the warehouse macros (`sql/warehouse/macros.sql`) on a connection."""
    con.execute(sqlrun.sql_text("warehouse", "macros"))


def model_params(load_date: dt.date) -> dict[str, Any]:
    """The bound parameters of the warehouse models."""
    return {"load_date": load_date, "sold_statuses": sold_statuses(), "business_timezone": business_timezone(),
            "late_window_days": hours_and_days()[1]}


def _snapshots_read(registered: dict[str, list[str]]) -> dict[str, str]:
    """A partition's record of what it read: for each input of every staged snapshot of a catalog, those whose
    files were registered (JSON, a list of ISO dates), under the input's name."""
    record = {}
    for name, files in registered.items():
        spec = lake_input(name)
        if spec.snapshots == "all" and spec.layer == "staging":
            root = lake.table_dir(spec.layer, spec.table)
            record[name] = json.dumps(sorted(str(_load_date(path[len(root):].lstrip("/"))) for path in files))
    return record


def read_record(table: str, load_date: dt.date) -> dict[str, str]:
    """A warehouse partition's record of what its build read (`_snapshots_read`; {}: built before it was recorded).

    Only the file's footer is read. InputPartitionMissing if the partition is not built.
    """
    path = lake.partition_file("warehouse", table, load_date)
    try:
        with lake.open_input(path) as handle:
            metadata = pq.ParquetFile(handle).metadata.metadata or {}
    except FileNotFoundError:
        raise InputPartitionMissing(f"warehouse/{table} for {load_date} is missing ({path}); build it first") from None
    return {key.decode(): value.decode() for key, value in metadata.items() if key.decode() in LAKE_INPUTS}


def products_snapshot_dates(load_date: dt.date) -> list[dt.date]:
    """The products snapshots the date's dim_product_history partition was built from, as it recorded them.

    Not those staged now: a restatement of a snapshot removes its staging while it restages it, and a history
    built meanwhile lacks it. A partition built before the record was kept: the staged ones (what it read then).
    """
    read = read_record("dim_product_history", load_date).get("stg_products_history")
    if read is None:
        return sorted(_snapshots_through("stg_products", load_date, latest_only=False))
    return [dt.date.fromisoformat(day) for day in json.loads(read)]


@dataclasses.dataclass(frozen=True)
class InputParam:
    """A bound parameter that records what a build read, taken from the record of a warehouse table of the date."""

    reads: str  # that table: a model binding the parameter reads (and its task requires) its partition
    value: Callable[[dt.date], Any]


# Parameters that record what a build read rather than a setting, computed only for a model that binds them
# (daily_metrics records the products snapshots, which pipeline.tasks.late_catalogs compares with the landed ones).
INPUT_PARAMS = {"products_snapshot_dates": InputParam("dim_product_history", products_snapshot_dates)}


def build(table: str, load_date: dt.date) -> int:
    """Build one warehouse table's partition for a load date; return its row count."""
    if table not in TABLES:
        raise ValueError(f"unknown warehouse table {table!r}; expected one of {TABLES}")
    load_date = lake.parse_date(load_date)
    used = sqlrun.bind(sqlrun.sql_text("warehouse", table), INPUT_PARAMS)
    params = {**model_params(load_date), **{name: param.value(load_date) for name, param in used.items()}}
    with sqlrun.connect() as con:
        define_macros(con)
        registered = register_inputs(con, table, load_date)
        rows = sqlrun.run_model(con, "warehouse", table, params, lake.partition_file("warehouse", table, load_date),
                                metadata=_snapshots_read(registered))
    logger.info("built warehouse %s for %s: %s rows", table, load_date, rows)
    return rows


def current_view_sql(table: str) -> str:
    """The SELECT of a table's current view; it reads `<table>_all`, a relation over every partition.

    `sql/warehouse/views/<table>.sql`, or for a dimension the publish merges into Postgres the same way,
    rendered from its declaration in `pipeline.transform.merges`.
    """
    if table not in TABLES:
        raise ValueError(f"unknown warehouse table {table!r}; expected one of {TABLES}")
    if table in merges.MERGES:
        return merges.MERGES[table].lake_view()
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
