"""Serving reconciliation: after publish, Postgres must hold exactly the lake's figures for the date.

`reconcile_serving(D)` scans `checks/serving/reconciliation.yml` with soda-core-postgres: the rows of
`warehouse.fact_orders_all` and `warehouse.fact_events_all` with load_date = D, and the revenue of
`fact_orders_all` for D, against the lake's figures (computed here from the lake partitions with
DuckDB unless given) passed in as variables. A mismatch raises ServingMismatch naming the table,
the expected (lake) and the found (serving) figure.

Connection: `pipeline.serving.pg.dsn()` (ECOMM_PG_DSN, libpq PG* variables, or the embedded server). The
Soda data source is built from the parsed DSN and handed to Soda as a dict, never as YAML text:
Soda renders configuration YAML through Jinja and logs the text when that fails, which would print
a password. sslmode: the DSN's own choice if it is a definite one (disable, require, verify-*);
otherwise `disable` for a Unix socket or loopback host and [checks] serving_sslmode (default
`require`) for any other host, never libpq's downgradable `prefer`/`allow`.
"""
from __future__ import annotations

import datetime as dt
import decimal
import getpass
import logging
import os
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.quality.gate import GateResult, checks, checks_dir
from pipeline.quality.soda import run_checks_file
from pipeline.serving.settings import postgres as postgres_settings

logger = logging.getLogger(__name__)

DATA_SOURCE = "serving"
SCHEMA = "warehouse"
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
DEFINITE_SSLMODES = {"disable", "require", "verify-ca", "verify-full"}
# metric name in checks/serving/reconciliation.yml -> (lake figure, serving table, what it counts)
FIGURES = {
    "serving_order_rows": ("fact_orders_rows", "warehouse.fact_orders_all", "rows"),
    "serving_revenue_cents": ("fact_orders_revenue", "warehouse.fact_orders_all", "revenue"),
    "serving_event_rows": ("fact_events_rows", "warehouse.fact_events_all", "rows"),
}


class ServingMismatch(Exception):
    """Postgres serving tables do not hold the lake's figures for the date."""


class ServingCheckError(Exception):
    """The serving reconciliation could not run (connection, configuration or SodaCL error)."""


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


def _is_local(host: str) -> bool:
    return host.startswith("/") or host.startswith("@") or host.lower() in LOOPBACK


def _service_resolved(dsn: str) -> dict[str, Any]:
    """What libpq makes of a DSN that names a service (`service=...` or PGSERVICE, read from pg_service.conf):
    its host, port, database and user, asked of a connection (libpq's own lookup, not a second reading of it)."""
    with psycopg.connect(dsn, connect_timeout=postgres_settings().connect_timeout) as conn:
        info = conn.info
        return {"host": info.host, "port": str(info.port), "dbname": info.dbname, "user": info.user}


def postgres_properties(dsn: str) -> dict[str, Any]:
    """Soda postgres data source properties from a libpq DSN (or the PG* environment when empty)."""
    parts = conninfo_to_dict(dsn) if dsn else {}
    env = os.environ
    if parts.get("service") or env.get("PGSERVICE"):  # Soda's driver is given each value, never the service
        parts = {**parts, **_service_resolved(dsn)}
    host = str(parts.get("host") or env.get("PGHOST") or "")
    if not host:
        raise ServingCheckError(
            "the Postgres DSN names no host: put host=... (or ?host=/socket/dir) in ECOMM_PG_DSN or set PGHOST"
        )
    hosts = [h for h in host.split(",") if h]
    given = str(parts.get("sslmode") or env.get("PGSSLMODE") or "").lower()
    if given in DEFINITE_SSLMODES:
        sslmode = given
    elif all(_is_local(h) for h in hosts):
        sslmode = "disable"  # a Unix socket or loopback: nothing on the wire to protect
    else:
        sslmode = str(checks().serving_sslmode).strip().lower()
        if sslmode not in DEFINITE_SSLMODES - {"disable"}:
            raise ServingCheckError(
                f"[checks] serving_sslmode = {sslmode!r}: use require, verify-ca or verify-full for a remote"
                " Postgres (or put an explicit sslmode in the DSN)"
            )
    user = str(parts.get("user") or env.get("PGUSER") or getpass.getuser())
    return {
        "type": "postgres",
        "host": host,
        "port": str(parts.get("port") or env.get("PGPORT") or "5432"),
        "username": user,
        # None lets libpq read ~/.pgpass (or PGPASSFILE) itself
        "password": parts.get("password") or env.get("PGPASSWORD") or None,
        "database": str(parts.get("dbname") or env.get("PGDATABASE") or user),
        "schema": SCHEMA,
        "sslmode": sslmode,
        "connection_timeout": int(parts.get("connect_timeout") or postgres_settings().connect_timeout),
    }


def describe(properties: dict[str, Any]) -> str:
    """A connection description safe to log (no password)."""
    return (f"host={properties['host']} port={properties['port']} dbname={properties['database']}"
            f" user={properties['username']} sslmode={properties['sslmode']}")


def _target_dsn(dsn: str | None) -> str:
    if dsn is not None:
        return dsn
    try:
        from pipeline.serving import pg
    except ImportError:  # the Postgres layer is optional for this module
        return os.environ.get("ECOMM_PG_DSN", "").strip()
    return pg.dsn()


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
    properties = postgres_properties(_target_dsn(dsn))
    logger.info("reconciling serving tables for %s on %s", day, describe(properties))

    def add_postgres(scan: Any) -> None:
        # a dict, not YAML: Soda Jinja-renders configuration text and logs it on failure
        scan._configuration.data_source_properties_by_name[DATA_SOURCE] = dict(properties)

    checked_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    file = (checks_root or checks_dir()) / "serving" / "reconciliation.yml"
    exit_code, results = run_checks_file(file, variables, add_postgres, DATA_SOURCE, default_table="serving")
    result = GateResult(load_date=day, results=results, checked_at=checked_at)
    if result.errored:
        raise ServingCheckError(
            f"the serving reconciliation for {day} could not run ({describe(properties)}): "
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
