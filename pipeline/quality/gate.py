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
  or rejected), `source_volume` (records received against the median of earlier load dates) and
  `unknown_users` (the facts' rows whose user the users catalog snapshot does not list).
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

import luigi

from pipeline import config, lake, resources
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
from pipeline.quality.results import VIEWS, CheckResult, NoChecksParsed
from pipeline.transform import staging

logger = logging.getLogger(__name__)

__all__ = [
    "CheckResult", "GateResult", "NoChecksParsed", "QualityGateFailed", "checks", "dq_failure_rows",
    "enforce_gate", "gate_passed", "gate_variables", "load_results", "run_gate",
]

DATA_SOURCE = "lake"
# The gated tables, in scan order: view name -> lake layer. The view name is the table name, so the
# SodaCL file checks/<layer>/<table>.yml says `checks for <table>:`.
GATED_TABLES: dict[str, str] = {
    "stg_orders": "staging",
    "stg_events": "staging",
    "dim_user": "warehouse",
    "dim_product": "warehouse",
    "fact_orders": "warehouse",
    "fact_events": "warehouse",
    "product_sales_daily": "marts",
    "customer_orders_daily": "marts",
    "user_activity_daily": "marts",
    "complete_days": "marts",
    "reconciliation": "audit",
}
# audit/reconciliation has one file per source; orders and events every day, catalogs on snapshot days.
RECONCILED_SOURCES = tuple(staging.staging_table(source) for source in staging.SOURCES)
REQUIRED_RECONCILED = tuple(staging.staging_table(source) for source in staging.DAILY_SOURCES)

class checks(config.NamedBadSettings, luigi.Config):  # noqa: N801 - luigi maps the class name to the [checks] section
    """[checks]: the quality gate's thresholds (the seed system's rules as defaults); a value that cannot
    be read is a one-line `pipeline.config.BadSetting` naming it, not luigi's parse error in a traceback."""

    checks_dir = luigi.Parameter(default="checks")  # relative to pipeline.resources.ROOT (checkout or package)
    orders_min_rows = luigi.IntParameter(default=100)
    orders_max_rows = luigi.IntParameter(default=500_000)
    events_min_rows = luigi.IntParameter(default=500)
    events_max_rows = luigi.IntParameter(default=2_000_000)
    unknown_product_warn_pct = luigi.FloatParameter(default=1.0)
    unknown_product_fail_pct = luigi.FloatParameter(default=99.0)
    # shares (%) of the facts' rows whose user the users snapshot covering the date lacks (gate_views: unknown_users)
    unknown_user_warn_pct = luigi.FloatParameter(default=1.0)
    unknown_user_fail_pct = luigi.FloatParameter(default=99.0)
    freshness_warn_hours = luigi.IntParameter(default=24)
    # late rows: shares (%) of stg_orders / stg_events rows whose business day is not the load date (a day's file
    # that is another date's is all late rows); anomalies of fact_orders that only warn (_anomaly_settings)
    late_warn_pct = luigi.FloatParameter(default=20.0)
    late_fail_pct = luigi.FloatParameter(default=90.0)
    price_off_catalog_ratio = luigi.FloatParameter(default=10.0)
    price_off_catalog_warn_pct = luigi.FloatParameter(default=1.0)
    quantity_warn_max = luigi.IntParameter(default=1000)
    # gate views (pipeline.quality.gate_views): shares (%) of a source's received records (raw rows + rejected
    # lines) thrown away, and its volume against the median of earlier load dates
    lost_warn_pct = luigi.FloatParameter(default=5.0)
    lost_fail_pct = luigi.FloatParameter(default=50.0)
    rejected_warn_pct = luigi.FloatParameter(default=0.0)
    rejected_fail_pct = luigi.FloatParameter(default=10.0)
    volume_window = luigi.IntParameter(default=7)
    volume_min_history = luigi.IntParameter(default=3)
    volume_warn_low_ratio = luigi.FloatParameter(default=0.6)
    volume_fail_low_ratio = luigi.FloatParameter(default=0.25)
    volume_warn_high_ratio = luigi.FloatParameter(default=3.0)
    serving_sslmode = luigi.Parameter(default="require")  # TCP to a non-loopback Postgres


def checks_dir() -> Path:
    """The root of the SodaCL files: [checks] checks_dir, relative to the product's files (the
    repository checkout, or the installed package's copy: see pipeline.resources).

    BadSetting when it is empty (the product's own folder, not its checks) or lacks a file the gate scans.
    """
    value = str(checks().checks_dir).strip()
    root = resources.resolve(value)
    gated = [*((layer, table) for table, layer in GATED_TABLES.items()), *((layer, view) for view, layer in VIEWS.items())]
    missing = [f"{layer}/{table}.yml" for layer, table in gated if not (root / layer / f"{table}.yml").is_file()]
    if not value or missing:
        why = "empty: the product's own folder" if not value else \
            f"{root} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
        raise config.BadSetting(
            f"[checks] checks_dir = {value!r} is not a folder of the quality gate's SodaCL files ({why}): give the"
            " folder that holds <layer>/<table>.yml, in luigi.cfg (or in the file LUIGI_CONFIG_PATH names), or remove"
            " it for the default")
    return root


def checks_file(layer: str, table: str, root: Path | None = None) -> Path:
    """`checks/<layer>/<table>.yml`: the SodaCL file of a table (names as in the lake)."""
    lake.table_dir(layer, table)  # refuses unknown layers and unsafe names
    return (root or checks_dir()) / layer / f"{table}.yml"


def _ts(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def gate_variables(load_date: dt.date | str, *, catalog_covered: bool = True,
                   users_catalog_covered: bool = True) -> dict[str, str]:
    """The SodaCL variables of a date: the only values that reach the checks' SQL text.

    Without any catalog snapshot on or before the date (`catalog_covered` false: dim_product has no
    catalog member, only inferred ones) every product is unknown by construction; the unknown-product
    share then warns but cannot fail (its fail threshold becomes 100 %), and dim_product.yml warns
    that no catalog covers the date. Likewise without a users snapshot on or before the date
    (`users_catalog_covered` false) every user is unknown: the unknown-user share warns but cannot fail.

    The day's boundaries are those of the business day ([model] business_timezone), as naive UTC
    timestamps like the staged ones. `future_limit_ts` is the latest instant staging accepts at all
    (`staging.timestamp_limits`): the end of the business day plus the tolerance, or later for a
    timestamp written with the load date in a western offset (at most the day's end at UTC-14:00).
    """
    day = lake.parse_date(load_date)
    settings = checks()
    timezone = staging.business_timezone()  # validated: it reaches the checks' SQL text
    day_start = staging.business_day_start(day, timezone)
    day_end = staging.business_day_start(day + dt.timedelta(days=1), timezone)
    future_limit = staging.timestamp_limits(day)["latest_accepted_ts"]
    pcts = {name: _pct_pair(settings, name) for name in PCT_PAIRS}
    warn_pct, fail_pct = pcts["unknown_product"]
    volume = _volume_settings(settings)
    return {
        "load_date": day.isoformat(),
        "business_timezone": timezone,
        "day_start_ts": _ts(day_start),
        "day_end_ts": _ts(day_end),
        "future_limit_ts": _ts(future_limit),
        # Soda's freshness "now": the end of the load date, so reruns of old dates judge the same way
        "NOW": day_end.isoformat(),
        "freshness_warn": f"{int(settings.freshness_warn_hours)}h",
        "orders_min_rows": str(int(settings.orders_min_rows)),
        "orders_max_rows": str(int(settings.orders_max_rows)),
        "events_min_rows": str(int(settings.events_min_rows)),
        "events_max_rows": str(int(settings.events_max_rows)),
        # the staged tables' row_count fails below it: an empty day blocks unless the volume check is told that
        # no day is too small (--checks-volume-fail-low-ratio 0: "this small day is real", as for the volume)
        "publish_min_rows": "1" if float(settings.volume_fail_low_ratio) > 0 else "0",
        "unknown_product_warn_pct": repr(warn_pct),
        "unknown_product_fail_pct": repr(fail_pct if catalog_covered else 100.0),
        "unknown_user_warn_pct": repr(pcts["unknown_user"][0]),
        "unknown_user_fail_pct": repr(pcts["unknown_user"][1] if users_catalog_covered else 100.0),
        "lost_warn_pct": repr(pcts["lost"][0]),
        "lost_fail_pct": repr(pcts["lost"][1]),
        "rejected_warn_pct": repr(pcts["rejected"][0]),
        "rejected_fail_pct": repr(pcts["rejected"][1]),
        "late_warn_pct": repr(pcts["late"][0]),
        "late_fail_pct": repr(pcts["late"][1]),
        **volume,
        **_anomaly_settings(settings),
    }


def check_settings() -> None:
    """Refuse [checks] thresholds that contradict each other, or a checks_dir without the gate's files (BadSetting
    naming them), before a run does any work."""
    checks_dir()
    settings = checks()
    for name in PCT_PAIRS:
        _pct_pair(settings, name)
    _volume_settings(settings)
    _anomaly_settings(settings)


# the [checks] <name>_warn_pct / <name>_fail_pct pairs (_pct_pair)
PCT_PAIRS = ("unknown_product", "unknown_user", "lost", "rejected", "late")


def _pct_pair(settings: checks, name: str) -> tuple[float, float]:
    """[checks] <name>_warn_pct and <name>_fail_pct, refused unless 0 <= warn <= fail <= 100."""
    warn, fail = float(getattr(settings, f"{name}_warn_pct")), float(getattr(settings, f"{name}_fail_pct"))
    if not 0 <= warn <= fail <= 100:
        raise config.BadSetting(f"[checks] needs 0 <= {name}_warn_pct <= {name}_fail_pct <= 100,"
                                f" got {warn} and {fail}")
    return warn, fail


def _volume_settings(settings: checks) -> dict[str, str]:
    """The volume check's [checks] settings as variables, refused unless they make sense together."""
    window, min_history = int(settings.volume_window), int(settings.volume_min_history)
    fail_low, warn_low = float(settings.volume_fail_low_ratio), float(settings.volume_warn_low_ratio)
    warn_high = float(settings.volume_warn_high_ratio)
    if not 1 <= min_history <= window:
        raise config.BadSetting(f"[checks] needs 1 <= volume_min_history <= volume_window,"
                                f" got {min_history} and {window}")
    if not 0 <= fail_low <= warn_low <= 1 <= warn_high:
        raise config.BadSetting("[checks] needs 0 <= volume_fail_low_ratio <= volume_warn_low_ratio <= 1 <="
                                f" volume_warn_high_ratio, got {fail_low}, {warn_low} and {warn_high}")
    return {
        "volume_window": str(window),
        "volume_min_history": str(min_history),
        "volume_fail_low_ratio": repr(fail_low),
        "volume_warn_low_ratio": repr(warn_low),
        "volume_warn_high_ratio": repr(warn_high),
    }


def _anomaly_settings(settings: checks) -> dict[str, str]:
    """fact_orders' warn-only anomaly thresholds as variables, refused unless they can mean something: a price
    ratio above 1 (at 1 every price unlike the catalog's would be off), a share 0-100 %, a quantity of 1 or more."""
    ratio, warn_pct = float(settings.price_off_catalog_ratio), float(settings.price_off_catalog_warn_pct)
    max_quantity = int(settings.quantity_warn_max)
    if not ratio > 1:
        raise config.BadSetting(f"[checks] needs price_off_catalog_ratio > 1, got {ratio}")
    if not 0 <= warn_pct <= 100:
        raise config.BadSetting(f"[checks] needs 0 <= price_off_catalog_warn_pct <= 100, got {warn_pct}")
    if max_quantity < 1:
        raise config.BadSetting(f"[checks] needs quantity_warn_max >= 1, got {max_quantity}")
    return {
        "price_off_catalog_ratio": repr(ratio),
        "price_off_catalog_warn_pct": repr(warn_pct),
        "quantity_warn_max": str(max_quantity),
    }


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


def run_gate(load_date: dt.date | str, *, checks_root: Path | None = None) -> GateResult:
    """Scan every gated table's partition of a date, write audit/dq_results, return the results.

    Never raises for failing checks (see `GateResult.raise_if_blocked` / `enforce_gate`); raises
    ValueError for a malformed date and NoChecksParsed for a checks file without checks.
    """
    from pipeline.quality import gate_views
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
        variables = gate_variables(day, catalog_covered=_catalog_covered(con, list(present)),
                                   users_catalog_covered=users is None or users.covered)

        def scan_table(table: str) -> list[CheckResult]:
            path = checks_file(GATED_TABLES[table], table, root)
            with con.cursor() as cursor:  # its own connection to the database: scans' queries run at once
                _register(cursor, _named_in(path, present))
                return [_advised(result) for result in run_checks_file(
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
        result = GateResult(load_date=day, results=results, checked_at=checked_at)
        write_results(result, con)
    log = logger.warning if result.blocked else logger.info
    log("quality gate %s: %s passed, %s warned, %s failed, %s errored%s", day, result.passed, result.warned,
        result.failed, result.errored, " -> BLOCKED" if result.blocked else "")
    return result


def _advised(result: CheckResult) -> CheckResult:
    """A table check's `advice` attribute (what a person does about it) after its message when it warns or fails
    (the derived views' checks get theirs with their counts, `gate_views.explain`)."""
    result = _without_rows(result)
    advice = (result.attributes or {}).get("advice")
    if not advice or result.outcome not in ("warn", "fail"):
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
            " --checks-volume-fail-low-ratio 0"))
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
