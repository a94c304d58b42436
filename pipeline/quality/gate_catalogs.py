"""The quality gate's view of the catalog snapshots covering a date: their fields' completeness and their size.

A catalog export that lost a field (products without `category`, users whose `address.city` became
`address.town`) or that was cut off (500 of 5,000 users) passes every row rule: each row is valid on its own.
`catalog_snapshots` (sql/gate/catalog_snapshots.sql, checks/staging/catalog_snapshots.yml) measures, per
catalog field, the share of the covering snapshot's members without it, and the snapshot's member count
against the previous snapshot's; and per catalog, the ids it lists more than once with different values (the
rows staging quarantined as duplicate_id_conflict: one version wins silently, under any share's threshold).
`pipeline.quality.gate_views.scan` builds it on every load date and scans its file; `explain_result` puts the
counts and dates into a check's message.

Every date a snapshot covers is judged by it (the date's facts join that snapshot), the same way on every
run: only staged snapshots on or before the date are read (the latest and the one before it, found as the
warehouse models find them: pipeline.transform.warehouse.input_files), never a later one.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.quality import quarantine
from pipeline.quality.results import CheckResult, described
from pipeline.quality.soda import format_number
from pipeline.transform import staging, warehouse

VIEW = "catalog_snapshots"
CATALOGS = ("products", "users")
LIST_SCHEMA = pa.schema([("catalog", pa.string()), ("snapshot_date", pa.date32()), ("recency", pa.int32())])


@dataclasses.dataclass(frozen=True)
class CatalogSnapshots:
    """Per catalog, its staged snapshots the view reads (date -> file: the covering one and the one before it),
    or why they cannot be read (a snapshot landed on or before the date but not staged)."""

    files: dict[str, dict[dt.date, str]] = dataclasses.field(default_factory=dict)
    problem: str | None = None


def snapshots(load_date: dt.date) -> CatalogSnapshots:
    """Each catalog's latest two staged snapshots on or before `load_date` (none before the first)."""
    found: dict[str, dict[dt.date, str]] = {}
    for catalog in CATALOGS:
        table = staging.staging_table(catalog)
        spec = warehouse.LakeInput("staging", table, snapshots="all")
        try:
            files = warehouse.input_files(spec, load_date)
        except warehouse.InputPartitionMissing as exc:
            return CatalogSnapshots(problem=str(exc))
        dated = sorted((day, path) for path in files if (day := _date_of(path)) is not None)
        found[catalog] = dict(dated[-2:])
    return CatalogSnapshots(found)


def _date_of(path: str) -> dt.date | None:
    for part in path.replace("\\", "/").split("/"):
        if part.startswith("load_date="):
            return lake.parse_date(part.split("=", 1)[1])
    return None


def build(con: duckdb.DuckDBPyConnection, found: CatalogSnapshots) -> None:
    """Create `catalog_snapshots` on a gate connection from the snapshots `snapshots()` found (quarantine.Unreadable:
    a covering snapshot's quarantine is gone or cannot be read)."""
    listed = []
    for catalog in CATALOGS:
        files = found.files.get(catalog, {})
        relation = f"{catalog}_snapshots"
        if files:
            con.register(relation, con.read_parquet(list(files.values()), union_by_name=True, hive_partitioning=False))
        else:  # before the catalog's first snapshot: no members
            con.register(relation, staging.STAGING_SCHEMAS[staging.staging_table(catalog)].empty_table())
        listed += [(catalog, day, recency) for recency, day in enumerate(sorted(files, reverse=True), start=1)]
    con.register("catalog_snapshot_list", pa.Table.from_pylist(
        [dict(zip(LIST_SCHEMA.names, row)) for row in listed], schema=LIST_SCHEMA))
    # the covering snapshots' quarantined rows: an id listed twice with different values (duplicate_id_conflict)
    quarantine.register_rows(con, "catalog_quarantine", [
        (day, staging.staging_table(catalog)) for catalog, day, recency in listed if recency == 1])
    con.execute(f"create or replace temp table {sqlrun.quote_ident(VIEW)} as {sqlrun.sql_text('gate', VIEW)}")


def rows(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict[str, Any]]:
    """The view's rows by (catalog, field); empty when it could not be built (its checks say so)."""
    try:
        cursor = con.execute(f"select * from {sqlrun.quote_ident(VIEW)}")
    except duckdb.Error:
        return {}
    names = [d[0] for d in cursor.description]
    return {(row[0], row[1]): dict(zip(names, row)) for row in cursor.fetchall()}


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else (format_number(value) or "-")


def explain_result(row: dict[str, Any] | None, result: CheckResult, day: str) -> CheckResult:
    """A catalog check's message: which catalog, field and snapshot, how many of how many, and what to do.

    The size check without a previous snapshot (the catalog's first, or none yet) measured nothing: it does not
    apply, and is recorded as a pass saying so.
    """
    attributes = result.attributes or {}
    if row is None:
        return result
    catalog = members = row["catalog"]  # a catalog's members are named as it is: products, users
    size = attributes.get("figure") == "catalog_size"
    if size and not row["is_compared"] and result.value is None:  # Soda measured nothing: an error to it
        if row["snapshot_date"] is None:
            why = f"there is no {catalog} snapshot on or before {day}"
        else:
            why = (f"the {catalog} snapshot of {row['snapshot_date']} ({_n(row['member_count'])} {members}) has"
                   " nothing to compare with: " + ("it is the first in the lake" if row["previous_snapshot_date"] is None
                                                   else f"the previous one ({row['previous_snapshot_date']}) has none"))
        return dataclasses.replace(result, outcome="pass", message=f"not evaluated: {why}")
    if result.outcome == "error":
        return result
    if attributes.get("figure") == "catalog_conflict":
        detail = _conflict_detail(row, day)
    elif row["snapshot_date"] is None:
        detail = f"{catalog}: no {catalog} snapshot on or before {day}, so no member lacks a field"
    elif size:
        detail = (f"{catalog}: the snapshot of {row['snapshot_date']} (covering {day}) lists {_n(row['member_count'])}"
                  f" {members}, {format_number(round(row['member_ratio'], 3))} x the {_n(row['previous_member_count'])}"
                  f" of the previous snapshot ({row['previous_snapshot_date']})")
    else:
        detail = (f"{catalog}: {_n(row['missing_count'])} of the {_n(row['member_count'])} {members} of the snapshot"
                  f" of {row['snapshot_date']} (covering {day}) have no {row['field']}:"
                  f" {format_number(round(row['missing_pct'], 2))} %")
    return described(result, detail, attributes.get("advice"))


def _conflict_detail(row: dict[str, Any], day: str) -> str:
    """How many ids the covering snapshot lists more than once with different values, and the first few."""
    catalog, count = row["catalog"], row["conflict_id_count"]
    if row["snapshot_date"] is None:
        return f"{catalog}: no {catalog} snapshot on or before {day}, so no id is listed twice"
    snapshot = f"the snapshot of {row['snapshot_date']} (covering {day})"
    if not count:
        return f"{catalog}: {snapshot} lists no id twice with different values"
    examples = list(row["conflict_id_examples"] or [])
    ids = ", ".join(examples) + (", ..." if count > len(examples) else "")
    return (f"{catalog}: {snapshot} lists {_n(count)} id{'s' if count != 1 else ''} more than once with different"
            f" values: {ids}; the later line of each is staged, the other versions ({_n(row['conflict_row_count'])})"
            " are quarantined as duplicate_id_conflict")
