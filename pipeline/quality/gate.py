"""The quality gate: SodaCL checks on one load date's lake partitions, results written to the lake.

`run_gate(D)` opens one DuckDB database, exposes each gated table as a view over its partition
file for D only (paths from `pipeline.lake`), scans `checks/<layer>/<table>.yml` for every table
with soda-core-duckdb (one table per core at a time, each on its own cursor), and writes every
check's result to `audit/dq_results/load_date=D` (atomic).

- Variables reach the SodaCL files from here only (`gate_variables`): `${load_date}` after
  `lake.parse_date`, timestamps Python formats itself, thresholds from `[checks]` in luigi.cfg.
- Soda exit code 2 (fail) or 3 (error) blocks the date; 1 (warn) is recorded and the date goes on.
  A checks file that parses to zero checks raises `NoChecksParsed`: a gate that checks nothing
  must not pass. A table whose partition is missing is an error result (it blocks).
- After the tables, `pipeline.quality.gate_views` adds views derived from the lake's audit partitions and
  scans their files the same way: `source_loss` (how much of each source's delivery was quarantined
  or rejected, collapsed as duplicates, or second lines of an order), `source_volume` (records received
  against the median of earlier load dates), `unknown_users` (the facts' rows whose user the users catalog
  snapshot does not list) and `catalog_snapshots` (the covering catalog snapshots' members without a field,
  their size against the previous snapshot's, and their ids listed twice with different values).
- The results partition lives in `pipeline.quality.dq_results` (re-exported here): `gate_passed(D)`
  reads it back (the Luigi task's completion check); `dq_failure_rows(result)` shapes warn/fail/error
  results for Postgres `audit.dq_failures`.

The serving-side reconciliation (Postgres) lives in `pipeline.quality.serving_reconciliation`.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
import os
import re
from pathlib import Path
from typing import Any

from pipeline import config, lake
from pipeline.lake import sqlrun
from pipeline.quality.dq_results import (  # noqa: F401 - re-exported: the gate's results are read through here
    DQ_RESULTS_SCHEMA,
    GateResult,
    QualityGateFailed,
    dq_failure_rows,
    gate_passed,
    load_results,
    results_table,
    write_results,
)
from pipeline.quality.gate_settings import (  # noqa: F401 - re-exported: the gate's settings are read through here
    check_settings,
    checks,
    checks_dir,
    checks_file,
    gate_variables,
)
from pipeline.quality.results import GATED_TABLES, VIEWS, CheckResult, NoChecksParsed, advice_for
from pipeline.transform import staging

logger = logging.getLogger(__name__)

__all__ = [
    "CheckResult", "GateResult", "NoChecksParsed", "QualityGateFailed", "checks", "dq_failure_rows",
    "enforce_gate", "gate_passed", "gate_variables", "load_results", "run_gate",
]

DATA_SOURCE = "lake"
# audit/reconciliation has one file per source; orders and events every day, catalogs on snapshot days.
RECONCILED_SOURCES = tuple(staging.staging_table(source) for source in staging.SOURCES)
REQUIRED_RECONCILED = tuple(staging.staging_table(source) for source in staging.DAILY_SOURCES)

def partition_files(table: str, load_date: dt.date) -> list[str]:
    """The partition files of a gated table for a date that exist now (reconciliation: one per source)."""
    layer = GATED_TABLES[table]
    if table == "reconciliation":
        candidates = [lake.partition_file(layer, table, load_date, source_table=s) for s in RECONCILED_SOURCES]
    else:
        candidates = [lake.partition_file(layer, table, load_date)]
    return [path for path in candidates if lake.exists(path)]


def _missing_partition(table: str, load_date: dt.date) -> CheckResult:
    layer = GATED_TABLES[table]
    if table == "reconciliation":
        where = ", ".join(lake.partition_file(layer, table, load_date, source_table=s) for s in REQUIRED_RECONCILED)
    else:
        where = lake.partition_file(layer, table, load_date)
    return CheckResult(
        check_name=f"{table} partition exists", table_name=table, check_type="partition", outcome="error",
        value=None, message=f"not evaluated: no partition for {load_date} ({where}); build it first, then rerun",
    )


def run_gate(load_date: dt.date | str, *, checks_root: Path | None = None, run_id: str | None = None) -> GateResult:
    """Scan every gated table's partition of a date, write audit/dq_results, return the results.

    `run_id`: the pipeline run the gate runs in, kept with the results (the run audit.dq_failure_log names).

    Never raises for failing checks (see `GateResult.raise_if_blocked` / `enforce_gate`); raises
    ValueError for a malformed date and NoChecksParsed for a checks file without checks.
    """
    from pipeline.quality import gate_views, unknown_products, unseen_orders
    from pipeline.quality.soda import add_duckdb, run_checks_file  # soda-core: imported when a gate runs

    day = lake.parse_date(load_date)  # before anything reaches a scan
    gate_variables(day)  # refuses bad [checks] settings before any work
    root = checks_root or checks_dir()
    checked_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    results: list[CheckResult] = []
    with sqlrun.connect() as con:
        present: dict[str, list[str]] = {}
        for table in GATED_TABLES:
            files = partition_files(table, day)
            if table == "reconciliation":
                have = {os.path.basename(os.path.dirname(p)).split("=", 1)[1] for p in files}
                files = files if set(REQUIRED_RECONCILED) <= have else []
            if files:
                present[table] = files
            else:
                results.append(_missing_partition(table, day))
        _register(con, present)
        users = gate_views.users_catalog(day) if {"fact_orders", "fact_events"} <= present.keys() else None
        covered = _catalog_covered(con, list(present))
        variables = gate_variables(day, catalog_covered=covered, users_catalog_covered=users is None or users.covered)
        products_snapshot = unknown_products.covering_snapshot(day) if covered else None

        def scan_table(table: str) -> list[CheckResult]:
            path = checks_file(GATED_TABLES[table], table, root)
            with con.cursor() as cursor:  # its own connection to the database: scans' queries run at once
                _register(cursor, _named_in(path, present))
                if table == "fact_orders":  # its status changes of orders no other load date delivered
                    unseen_orders.register(cursor, day)
                # an unknown-product share names the products (unknown_products), unseen status changes their
                # orders (unseen_orders), any other check gets its advice
                return [unknown_products.explain(cursor, result, variables["load_date"], covered=covered,
                                                 snapshot=products_snapshot)
                        or unseen_orders.explain(cursor, result, variables["load_date"]) or _advised(result)
                        for result in run_checks_file(
                            path, variables, lambda scan: add_duckdb(scan, cursor, DATA_SOURCE), DATA_SOURCE,
                            default_table=table,
                        )[1]]

        # Tables scanned one per core at a time, beside the derived views (gate_views: each source's loss and
        # volume, the facts' unknown users, built on `con`): a scan is half DuckDB queries, which run outside
        # Python's lock.
        views = {view: checks_file(layer, view, root) for view, layer in VIEWS.items()}
        with concurrent.futures.ThreadPoolExecutor(max_workers=config.cores(), thread_name_prefix="gate-scan") as pool:
            scans = [pool.submit(scan_table, table) for table in present]
            derived = gate_views.scan(con, day, variables, views, DATA_SOURCE, reconciled="reconciliation" in present,
                                       users=users)
            results.extend(r for future in scans for r in future.result())  # in GATED_TABLES' order
        results.extend(derived)
        result = GateResult(load_date=day, results=results, checked_at=checked_at, run_id=run_id)
        write_results(result, con)
    log = logger.warning if result.blocked else logger.info
    log("quality gate %s: %s passed, %s warned, %s failed, %s errored%s", day, result.passed, result.warned,
        result.failed, result.errored, " -> BLOCKED" if result.blocked else "")
    return result


def _advised(result: CheckResult) -> CheckResult:
    """A table check's `advice` attribute (what a person does about it) after its message when it warns or fails
    (the derived views' checks get theirs with their counts, `gate_views.explain`)."""
    result = _without_rows(result)
    advice = advice_for(result.outcome, (result.attributes or {}).get("advice"))
    if not advice:
        return result
    return dataclasses.replace(result, message=f"{result.message}. {advice}")


def _without_rows(result: CheckResult) -> CheckResult:
    """The checks of a partition without rows (a day without orders): the row_count failure says what to do (the
    run's what-to-do reads the option from it), and freshness, which measured nothing, is a warning "not evaluated"
    (Soda fails it, which would block a day the row_count rule lets through: see gate_variables)."""
    if result.outcome != "fail":
        return result
    if result.check_type == "row_count" and result.value == "0" and result.table_name in REQUIRED_RECONCILED:
        return dataclasses.replace(result, message=(
            f"{result.message}. No rows staged: when the source received none, the check of its volume against"
            " earlier load dates says what to do; a day that really had none is published by rerunning it with"
            f" --checks-{result.table_name.removeprefix('stg_')}-volume-fail-low-ratio 0"))
    if result.check_type == "freshness" and result.value is None:
        return dataclasses.replace(result, outcome="warn", message=f"not evaluated: {result.table_name} has no rows"
                                   " for the date, so no newest timestamp (its row_count check says whether that"
                                   " blocks it)")
    return result


def _named_in(path: Path, present: dict[str, list[str]]) -> dict[str, list[str]]:
    """The present tables whose name a checks file mentions: all its SQL can read.

    A scan's cursor gets views of these only: each view reads its files' Parquet footers, and every
    table on each of the eleven cursors was 0.15 s of a gate's CPU. A missing file reads as empty
    (Soda then reports it as a file without checks).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    return {table: files for table, files in present.items() if re.search(rf"\b{re.escape(table)}\b", text)}


def _register(con: Any, present: dict[str, list[str]]) -> None:
    """Expose each present table's partition files as a view of its name on a DuckDB connection."""
    for table, files in present.items():
        # hive_partitioning off: the files carry load_date/source_table themselves
        con.register(table, con.read_parquet(files, union_by_name=True, hive_partitioning=False))


def _catalog_covered(con: Any, present: list[str]) -> bool:
    """Whether dim_product of the date has a catalog member (a snapshot on or before the date exists)."""
    if "dim_product" not in present:
        return True  # the strict default; the missing partition is an error anyway
    try:
        return con.execute("select count(*) from dim_product where not is_inferred").fetchall()[0][0] > 0
    except Exception:  # noqa: BLE001 - a broken dim_product is reported by its schema check
        return True


def enforce_gate(load_date: dt.date | str) -> GateResult:
    """Run the gate and raise QualityGateFailed if it blocked (the results are written either way)."""
    result = run_gate(load_date)
    result.raise_if_blocked()
    return result
