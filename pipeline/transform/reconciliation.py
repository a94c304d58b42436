"""Reconciliation of a staging run: every record of the source file is landed, rejected, staged, quarantined or a duplicate.

`audit/reconciliation/load_date=D/source_table=stg_<source>` (`sql/staging/reconciliation.sql`) holds
one source's counts for one date; `reconcile()` writes it and raises ReconciliationError when either
balance fails: the file's records = raw + rejected at landing, raw = staged + quarantined + duplicates.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import duckdb

from pipeline import lake
from pipeline.lake import sqlrun

logger = logging.getLogger(__name__)


class ReconciliationError(Exception):
    """File records != raw + rejected, or raw rows != staged + quarantined + duplicates."""


def reconcile(
    con: duckdb.DuckDBPyConnection, source_table: str, load_date: dt.date, counts: dict[str, int]
) -> dict[str, Any]:
    """Write the reconciliation record of a source and date; raise ReconciliationError if unbalanced."""
    params = {"source_table": source_table, "load_date": load_date, **counts}
    path = lake.partition_file("audit", "reconciliation", load_date, source_table=source_table)
    sqlrun.run_model(con, "staging", "reconciliation", params, path)
    names = ("raw_count", "staged_count", "quarantined_count", "duplicate_count", "source_records", "rejected_count",
             "is_balanced")
    record = dict(zip(names, con.execute(
        f"select {', '.join(names)} from read_parquet($p)", {"p": path}).fetchall()[0]))
    if record["source_records"] != record["raw_count"] + record["rejected_count"]:
        raise ReconciliationError(
            f"{source_table} {load_date}: the file's {record['source_records']} records != raw {record['raw_count']}"
            f" + rejected {record['rejected_count']} (recorded in {path}); a landed record or a rejected line is"
            f" missing: remove the date's raw partition of the source and land it again"
        )
    if not record["is_balanced"]:
        raise ReconciliationError(
            f"{source_table} {load_date}: raw {record['raw_count']} != staged {record['staged_count']}"
            f" + quarantined {record['quarantined_count']} + duplicates {record['duplicate_count']}"
            f" (recorded in {path}); a staging rule drops or multiplies rows: fix the model, then rerun"
        )
    return record


def landing_counts(con: duckdb.DuckDBPyConnection, source: str, load_date: dt.date, raw_count: int) -> dict[str, int]:
    """The file's records (raw manifest) and the records rejected at landing (audit/rejected_lines)."""
    from pipeline.ingest import landing

    rejected_file = lake.partition_file("audit", "rejected_lines", load_date, source_table=source)
    rejected = (con.execute("select count(*) from read_parquet($p)", {"p": rejected_file}).fetchone()[0]
                if lake.exists(rejected_file) else 0)
    manifest = landing.read_manifest(source, load_date) or {}
    if "source_records" not in manifest:  # landed before the line accounting: what the reader returned
        logger.warning("raw/%s %s has no source_records in its manifest: taken as raw + rejected", source, load_date)
    return {"source_records": manifest.get("source_records", raw_count + rejected), "rejected_count": rejected}
