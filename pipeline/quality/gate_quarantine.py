"""The quality gate's reading of audit/bad_records: which rows staging quarantined, and why.

The gate views that judge a reason on its own (sql/gate/source_loss.sql: the orders' `multiple_order_lines`, a
change of the file's grain; sql/gate/catalog_snapshots.sql: a catalog snapshot's `duplicate_id_conflict`, one id
listed twice with different values) read a relation `register()` makes of the audit/bad_records partitions of
the sources and dates they judge: three columns (source_table, reason_code, record_id) of a small audit table, the
rows one day quarantined, never a staging table. A source without a partition (nothing staged for it) has none.
"""
from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa

from pipeline import lake

COLUMNS = "source_table, reason_code, record_id"
SCHEMA = pa.schema([("source_table", pa.string()), ("reason_code", pa.string()), ("record_id", pa.string())])


def files(partitions: list[tuple[dt.date, str]]) -> list[str]:
    """The audit/bad_records files of the given (load date, staging table) partitions that exist."""
    found = [lake.partition_file("audit", "bad_records", day, source_table=table) for day, table in partitions]
    return [path for path in found if lake.exists(path)]


def register(con: duckdb.DuckDBPyConnection, relation: str, partitions: list[tuple[dt.date, str]]) -> None:
    """Expose the quarantined rows of the given partitions as `relation` (source_table, reason_code, record_id)."""
    present = files(partitions)
    if present:
        con.register(relation, con.read_parquet(present, union_by_name=True, hive_partitioning=False).select(COLUMNS))
    else:
        con.register(relation, SCHEMA.empty_table())
