"""A lake partition as rows of a Postgres table: what publish and preload stream into Postgres.

The serving table's columns (read from Postgres) decide what is read: `lake_select` is a DuckDB
SELECT giving exactly those columns, cast to their Postgres types, from one partition file (a
column the feed derives instead, e.g. `valid_as_of` from the load date, is computed); `batches`
streams it as Arrow record batches for the binary COPY (`pipeline.serving.binary_copy`).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import psycopg
import pyarrow as pa

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.serving import binary_copy
from pipeline.serving.facts import FACTS, FactSpec, LakePartitionInvalid, PublishError, load_stage
from pipeline.serving.publish_errors import Progress
from pipeline.serving.settings import publish as publish_settings
from pipeline.transform import merges

logger = logging.getLogger(__name__)

LOAD_DATE = merges.LOAD_DATE_PARAM  # a derived column: the date being published
SOURCE_TABLE = "$source_table"  # a derived column: the source_table=<key> of the partition


class LakePartitionMissing(PublishError):
    """A lake partition the publish needs is missing; run the pipeline for the date first."""


def lake_select(
    duck: duckdb.DuckDBPyConnection, path: str | list[str], columns: Sequence[binary_copy.PgColumn],
    derived: Mapping[str, str], lenient: bool, what: str, row_numbers: bool = False, served_whole: bool = False,
) -> str:
    """A DuckDB SELECT giving `columns` (cast to their Postgres types) from one partition file (or several: a list).

    `derived`: column -> DuckDB expression used instead of the file's column. `lenient`: a column
    the file lacks becomes NULL (with a warning) instead of an error. row_numbers=True adds
    `_lake_row`, the row's 1-based position in the file (= its COPY line). served_whole=True (the facts and the
    marts, whose every lake column is served): a column the file has and Postgres lacks is LakePartitionInvalid,
    not dropped: the model gained it without its serving migration (load_date, the partition's, aside: a mart adds
    each date's contribution into rows keyed by their own columns).
    """
    files = ", union_by_name = true" if isinstance(path, list) else ""  # partitions of several dates: by column name
    present = set(duck.sql(f"select * from read_parquet($path, hive_partitioning = false{files})",
                           params={"path": path}).columns)
    parts, missing = [], []
    for col in columns:
        if col.name in derived:
            expr = derived[col.name]
        elif col.name in present:
            expr = sqlrun.quote_ident(col.name)
        else:
            missing.append(col.name)
            expr = "null"
        parts.append(f"cast({expr} as {col.duckdb_type}) as {sqlrun.quote_ident(col.name)}")
    if missing and not lenient:
        raise LakePartitionInvalid(
            f"{what} ({path}) lacks column(s) {', '.join(missing)} that Postgres needs; it has {', '.join(sorted(present))}"
        )
    if unserved := sorted(present - {col.name for col in columns} - {"load_date"}) if served_whole else []:
        raise LakePartitionInvalid(
            f"{what} ({path}) has column(s) {', '.join(unserved)} that its Postgres table lacks: the lake model"
            " gained them without a serving migration; add one (sql/serving/NNN_name.sql, docs/development.md)"
            " and run the date again; nothing was published")
    if missing and not row_numbers:
        logger.warning("%s lacks %s: published as NULL", what, ", ".join(missing))
    if row_numbers:
        parts.append("file_row_number + 1 as _lake_row")
    options = files + (", file_row_number = true" if row_numbers else "")
    return f"select {', '.join(parts)} from read_parquet($path, hive_partitioning = false{options})"


def batches(duck: duckdb.DuckDBPyConnection, select: str, params: dict[str, Any]) -> pa.RecordBatchReader:
    """The rows of `select` ([publish] copy_batch_rows at a time)."""
    return duck.sql(select, params=sqlrun.bind(select, params)).to_arrow_reader(publish_settings().copy_batch_rows)


def text_columns(columns: Sequence[binary_copy.PgColumn]) -> list[str]:
    """The variable-width columns (candidates when an index row is too large, see publish_errors)."""
    return [c.name for c in columns if c.fixed_width is None]


def fact_path(table: str, day: dt.date) -> str:
    """A fact's partition file of the date; LakePartitionMissing if it is not built."""
    path = lake.partition_file("warehouse", table, day)
    if not lake.exists(path):
        raise LakePartitionMissing(f"warehouse/{table} for {day} is not built ({path}); run the pipeline for {day} first")
    return path


def fact_spec(lake_table: str) -> FactSpec:
    """The fact published from lake table `lake_table`."""
    for spec in FACTS:
        if spec.lake_table == lake_table:
            return spec
    raise ValueError(f"{lake_table!r} is not a fact table; facts: {', '.join(s.lake_table for s in FACTS)}")


def row_count(duck: duckdb.DuckDBPyConnection, path: str) -> int:
    """The rows of a partition file."""
    return duck.execute("select count(*) from read_parquet($p)", {"p": path}).fetchall()[0][0]


def load_fact(conn: psycopg.Connection, duck: duckdb.DuckDBPyConnection, spec: FactSpec, day: dt.date,
              path: str, progress: Progress | None = None, **where: str) -> dict[str, Any]:
    """COPY one fact's lake partition into a new, indexed stage table (`load_stage`; `where`: its name)."""
    columns = binary_copy.copy_order(binary_copy.table_columns(conn, f"warehouse.{spec.parent}"))
    what = f"lake warehouse/{spec.lake_table}"
    select = lake_select(duck, path, columns, {}, False, what, served_whole=True)
    if progress is not None:
        progress.at(f"warehouse.{spec.parent}", path=path, params={"path": path}, keys=(spec.key,),
                    select=lambda: lake_select(duck, path, columns, {}, False, what, row_numbers=True),
                    text_columns=text_columns(columns))
    t0 = time.monotonic()
    loaded = load_stage(conn, spec, day, columns, batches(duck, select, {"path": path}), **where)
    logger.info("%s %s: %s rows copied and indexed in %.1fs", spec.parent, day, loaded["rows"], time.monotonic() - t0)
    return loaded
