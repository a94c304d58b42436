"""Serving reconciliation: after publish, Postgres must hold exactly the lake's figures for the date.

`reconcile_serving(D)` scans `checks/serving/reconciliation.yml` with soda-core-postgres: the rows of
`warehouse.fact_orders_all` and `warehouse.fact_events_all` with load_date = D, and the revenue of
`fact_orders_all` for D, against the lake's figures (computed here from the lake partitions with
DuckDB unless given) passed in as variables. A mismatch raises ServingMismatch naming the table,
the expected (lake) and the found (serving) figure.

Connection: `pipeline.quality.serving_connection` opens it for Soda from the pipeline's DSN as libpq reads it
(`pipeline.serving.pg.dsn()`), as every other pipeline connection; a connection libpq cannot make raises
ServingChecksUnreachable or ServingChecksRefused with libpq's reason, not a checks-file error.
"""
from __future__ import annotations

import datetime as dt
import decimal
import logging
from pathlib import Path
from typing import Any

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.quality import serving_connection
from pipeline.quality.gate import GateResult, checks_dir
from pipeline.quality.serving_connection import (  # noqa: F401 - re-exported
    ServingCheckError,
    ServingChecksRefused,
    ServingChecksUnreachable,
)
from pipeline.quality.soda import run_checks_file
from pipeline.serving import pg

logger = logging.getLogger(__name__)

DATA_SOURCE = "serving"
SCHEMA = "warehouse"
# metric name in checks/serving/reconciliation.yml -> (lake figure, serving table, what it counts)
FIGURES = {
    "serving_order_rows": ("fact_orders_rows", "warehouse.fact_orders_all", "rows"),
    "serving_revenue_cents": ("fact_orders_revenue", "warehouse.fact_orders_all", "revenue"),
    "serving_event_rows": ("fact_events_rows", "warehouse.fact_events_all", "rows"),
}


class ServingMismatch(Exception):
    """Postgres serving tables do not hold the lake's figures for the date."""


def compute_lake_figures(load_date: dt.date | str) -> dict[str, Any]:
    """The lake's figures for a date: fact_orders / fact_events rows and fact_orders revenue."""
    day = lake.parse_date(load_date)
    paths = {t: lake.partition_file("warehouse", t, day) for t in ("fact_orders", "fact_events")}
    for table, path in paths.items():
        if not lake.exists(path):
            raise ServingCheckError(f"no lake partition {path} for {table} {day}; build the date before reconciling")
    with sqlrun.connect() as con:
        orders, revenue = con.execute(
            "select count(*), coalesce(sum(revenue), 0)::decimal(38, 2)"
            " from read_parquet($p, hive_partitioning = false)", {"p": paths["fact_orders"]},
        ).fetchone()
        events = con.execute(
            "select count(*) from read_parquet($p, hive_partitioning = false)", {"p": paths["fact_events"]},
        ).fetchone()[0]
    return {"fact_orders_rows": int(orders), "fact_events_rows": int(events),
            "fact_orders_revenue": decimal.Decimal(revenue)}


def _cents(value: Any) -> int:
    amount = decimal.Decimal(str(value))
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"revenue {amount} has more than 2 decimals")
    return int(cents)


def reconcile_serving(
    load_date: dt.date | str, *, lake_figures: dict | None = None, dsn: str | None = None,
    checks_root: Path | None = None,
) -> GateResult:
    """Check that Postgres serves the lake's rows and revenue for a date; raise ServingMismatch if not."""
    day = lake.parse_date(load_date)
    figures = dict(lake_figures) if lake_figures is not None else compute_lake_figures(day)
    missing = {f for f, _, _ in FIGURES.values()} - figures.keys()
    if missing:
        raise ValueError(f"lake_figures lacks {sorted(missing)}")
    variables = {
        "load_date": day.isoformat(),
        "expected_order_rows": str(int(figures["fact_orders_rows"])),
        "expected_event_rows": str(int(figures["fact_events_rows"])),
        "expected_revenue_cents": str(_cents(figures["fact_orders_revenue"])),
    }
    target = pg.dsn() if dsn is None else dsn
    conn = serving_connection.connect(target, SCHEMA)
    checked_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:  # closed whatever happens from here (also when the file is refused before the scan; the scan closes it too)
        exit_code, results, where = _scan(day, conn, variables, checks_root)
    finally:
        conn.close()
    result = GateResult(load_date=day, results=results, checked_at=checked_at)
    if result.errored:
        raise ServingCheckError(
            f"the serving reconciliation for {day} could not run ({where}): "
            + "; ".join(r.message for r in results if r.outcome == "error")
        )
    mismatches = []
    for r in results:
        if r.outcome != "fail":
            continue
        figure, table, what = FIGURES.get(r.metric or "", (None, r.table_name, r.check_name))
        expected = figures.get(figure) if figure else None
        found: Any = r.value
        if what == "revenue" and r.value is not None:
            found = decimal.Decimal(r.value) / 100
        mismatches.append(f"{table} {what} for {day}: expected {expected} (lake), found {found} (serving)")
    if mismatches or exit_code >= 2:
        raise ServingMismatch("the serving tables do not match the lake; republish the date:\n  "
                              + "\n  ".join(mismatches or [f"soda exit code {exit_code}"]))
    logger.info("serving reconciled for %s: %s checks passed", day, result.passed)
    return result


def _scan(day: dt.date, conn: Any, variables: dict[str, str], checks_root: Path | None) -> tuple[int, list, str]:
    """Scan the reconciliation's checks file on `conn` (the caller closes it): soda's exit code, the results, and
    where the connection went."""
    where = serving_connection.describe(conn)
    logger.info("reconciling serving tables for %s on %s", day, where)

    def add_postgres(scan: Any) -> None:
        # Soda scans on the connection made above (serving_connection's contract), not one of its own
        from soda.execution.data_source import DataSource  # after pipeline.quality.soda set soda-core up

        properties = {"type": "postgres", "schema": SCHEMA, "database": conn.info.dbname, "host": conn.info.host,
                      "port": str(conn.info.port), "username": conn.info.user}
        scan._configuration.data_source_properties_by_name[DATA_SOURCE] = properties
        source = DataSource.create(scan._logs, DATA_SOURCE, "postgres", dict(properties))
        source.connection = conn
        scan._data_source_manager.data_sources[DATA_SOURCE] = source

    file = (checks_root or checks_dir()) / "serving" / "reconciliation.yml"
    exit_code, results = run_checks_file(file, variables, add_postgres, DATA_SOURCE, default_table="serving")
    return exit_code, results, where
