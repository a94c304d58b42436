"""Running one SodaCL checks file with soda-core and turning its checks into plain result records.

Shared by the lake quality gate (`pipeline.quality.gate`, DuckDB) and the serving reconciliation
(`pipeline.quality.serving_reconciliation`, Postgres). soda-core is set up for the process first
(`pipeline.quality.soda_setup`: no telemetry, no `.env`, no pandas, templates compiled and
checks files parsed once).
"""
from __future__ import annotations

import datetime as dt
import decimal
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from pipeline.quality import soda_setup  # noqa: F401 - first: soda-core set up for this process
from soda.common.logs import Logs  # noqa: I001 - after soda_setup
from soda.scan import Scan

from pipeline.lake import sqlrun
from pipeline.quality.results import (  # noqa: F401 - re-exported
    BLOCKING,
    OUTCOMES,
    CheckResult,
    NOT_EVALUATED,
    ChecksVariableUnknown,
    NoChecksParsed,
)

logger = logging.getLogger(__name__)

OUT_OF_MEMORY = "Out of Memory Error:"  # DuckDB's words for a query over [duckdb] memory_limit, in Soda's error log


class _GateConnection:
    """A DuckDB connection as Soda sees it: Soda must neither close it nor fail on its rollback.

    soda-core calls `rollback()` after a failed query; DuckDB raises when no transaction is open,
    which would abort the whole scan and hide every other check's outcome (a missing column would
    turn the schema check's FAIL into an error). The owner closes the connection, not Soda.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def rollback(self) -> None:
        try:
            self._con.rollback()
        except duckdb.TransactionException:
            pass

    def close(self) -> None:
        pass


def add_duckdb(scan: Scan, con: duckdb.DuckDBPyConnection, data_source_name: str = "duckdb") -> None:
    """Give a scan the caller's DuckDB connection (its views are the scanned tables)."""
    scan.add_duckdb_connection(_GateConnection(con), data_source_name=data_source_name)


def new_scan() -> Scan:
    """A soda-core Scan with a log of its own.

    soda-core 3.x keeps one `Logs` object per process and every `Scan()` empties it. The gate scans
    its tables side by side, so a scan started in one thread wiped the errors another had logged (a
    check that does not parse, a failing query): the scan's exit code and its error results then
    depended on timing, and a check Soda could not parse could vanish from the results unreported.
    """
    scan = Scan()
    logs = object.__new__(Logs)  # not Logs(): that returns the shared one
    logs._initialize()
    scan._logs = logs
    scan._data_source_manager.logs = logs
    scan.environment.logs = logs
    return scan


def run_checks_file(
    checks_file: Path, variables: dict[str, str], add_data_source: Callable[[Scan], None],
    data_source_name: str, *, default_table: str,
) -> tuple[int, list[CheckResult]]:
    """Scan one checks file; return Soda's exit code and one result per check (errors included).

    Raises NoChecksParsed when the file yields no check at all (missing, empty or unparseable), and
    ChecksVariableUnknown when it uses a `${name}` that `variables` lacks.
    """
    if not checks_file.is_file():
        raise NoChecksParsed(f"checks file {checks_file} does not exist; every gated table needs one")
    scan = new_scan()
    given = {**scan._variables, **variables}  # Soda's own (`NOW`), then the caller's
    unknown = sorted(soda_setup.variables_used(checks_file.read_text(encoding="utf-8")) - given.keys())
    if unknown:
        raise ChecksVariableUnknown(
            f"{checks_file} uses {', '.join('${' + name + '}' for name in unknown)}, which no setting gives (Soda"
            f" would put nothing in its place); its variables: {', '.join(sorted(given))}; fix the name or add"
            " the setting (docs/quality-gate.md)")
    scan.disable_telemetry()
    # execute() ends by building Soda Cloud's results document (every check's definition dumped as
    # YAML: ~7 % of a gate's CPU), which nothing here reads: the results come from scan._checks below.
    scan.build_scan_results = dict  # type: ignore[method-assign]
    scan.set_scan_definition_name(f"ecomm_{checks_file.stem}")
    scan.set_data_source_name(data_source_name)
    add_data_source(scan)
    scan.add_variables(variables)
    scan.add_sodacl_yaml_file(str(checks_file))
    try:
        exit_code = scan.execute()
    finally:
        _close_connections(scan)
    checks = list(scan._checks)  # soda-core 3.x keeps the evaluated checks here; there is no getter
    errors = [log.message for log in scan.get_error_logs()]
    if (oom := next((e for e in errors if OUT_OF_MEMORY in e), None)) is not None:
        # a check's query met [duckdb] memory_limit: the setting to raise, not an errored check blocking the data
        said = oom[oom.index(OUT_OF_MEMORY):].split(" Possible solutions")[0]
        raise sqlrun.out_of_memory(duckdb.OutOfMemoryException(said))
    if not checks:
        detail = "; ".join(errors[:3]) or "the file has no `checks for <table>:` list"
        raise NoChecksParsed(f"{checks_file} parsed to zero checks ({detail}); fix the SodaCL file")
    results = [_result(check, scan, errors, default_table) for check in checks]
    if exit_code == 3 and errors and not any(r.outcome == "error" for r in results):
        # an error outside any single check (a failing query, a connection problem): still blocks
        results.append(CheckResult(
            check_name=f"scan of {checks_file.name}", table_name=default_table, check_type="scan",
            outcome="error", value=None, message=_short("; ".join(errors[:3])),
        ))
    logger.info(
        "scanned %s: exit code %s, %s checks (%s)", checks_file, exit_code, len(results),
        ", ".join(f"{o} {sum(r.outcome == o for r in results)}" for o in OUTCOMES),
    )
    return exit_code, results


def _close_connections(scan: Scan) -> None:
    """Close the connections the scan opened: soda-core 3.x does not (its close_all_connections walks a
    dict it never fills), so a Postgres scan would leave an idle transaction holding ACCESS SHARE
    locks on the scanned tables until garbage collection, and the next publish's swap in the same
    process (a backfill's next date) would wait on it. The gate's DuckDB connection is not closed
    here: its wrapper's close() is a no-op, its owner closes it."""
    for data_source in scan._data_source_manager.data_sources.values():
        connection = getattr(data_source, "connection", None)
        if connection is not None:
            try:
                connection.close()
            except Exception as err:  # noqa: BLE001 - a connection already broken: nothing left to release
                logger.debug("closing %s after the scan: %s", type(connection).__name__, err)
            data_source.connection = None


def _result(check: Any, scan: Scan, errors: list[str], default_table: str) -> CheckResult:
    try:
        diagnostics = check.get_cloud_diagnostics_dict()
    except Exception:  # noqa: BLE001 - some check kinds cannot describe themselves without their metrics
        diagnostics = {}
    check_type = _check_type(check)
    outcome = check.outcome.value if check.outcome is not None else "error"
    value = _value_text(check, check_type, diagnostics)
    if outcome == "error":
        own = [e for e in errors if check.check_cfg.source_line and f"'{check.check_cfg.source_line}'" in e]
        others = [e for e in errors if e not in own and not e.startswith("Metrics ")]
        message = NOT_EVALUATED + _short("; ".join(own[:1] + others[:2]) or "no measured value")
    else:
        message = f"{outcome}: measured {value}; rule: {_rule_text(check, scan, check_type, diagnostics)}"
    table = getattr(getattr(check, "partition", None), "table", None)
    return CheckResult(
        check_name=check.name, table_name=getattr(table, "table_name", None) or default_table,
        check_type=check_type, outcome=outcome, value=value, message=message,
        metric=getattr(check.check_cfg, "metric_name", None),
        attributes=dict(getattr(check, "attributes", None) or {}) or None,
    )


def _check_type(check: Any) -> str:
    kind = type(check).__name__
    if kind == "SchemaCheck":
        return "schema"
    if kind == "FreshnessCheck":
        return "freshness"
    if kind.startswith("UserDefinedFailedRows"):
        return "failed_rows"
    if kind == "RowCountComparisonCheck":
        return "row_count_comparison"
    cfg = check.check_cfg
    if getattr(cfg, "metric_query", None) or getattr(cfg, "metric_expression", None):
        return "user-defined"
    return getattr(cfg, "metric_name", None) or kind


def _value_text(check: Any, check_type: str, diagnostics: dict) -> str | None:
    if check_type == "schema":
        missing = diagnostics.get("missing_column_names") or []
        wrong = diagnostics.get("column_type_mismatches") or {}
        parts = [f"missing columns: {', '.join(missing)}"] if missing else []
        parts += [
            f"{name} is {types.get('actual_type')} (expected {types.get('expected_type')})"
            for name, types in wrong.items()
        ]
        measured = getattr(check, "measured_schema", None)
        if not parts:
            return "matches" if measured else None
        return "; ".join(parts)
    if check_type == "freshness":
        values = getattr(check, "freshness_values", None) or {}
        if values.get("freshness") is None:
            return None
        return f"{values['freshness']} (newest {values.get('max_column_timestamp')}, now {values.get('now_timestamp')})"
    if check_type == "row_count_comparison" and hasattr(check, "diagnostic_values"):
        counts = check.diagnostic_values
        return f"{counts['row_count']} vs {counts['other_row_count']} (difference {check.check_value})"
    return format_number(getattr(check, "check_value", diagnostics.get("value")))


def format_number(value: Any) -> str | None:
    """A measured value as short text: 3, 1.5, 33.3333, 1234.50."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    return str(value)


def _rule_text(check: Any, scan: Scan, check_type: str, diagnostics: dict) -> str:
    cfg = check.check_cfg
    if check_type == "schema":
        return "required columns present with their contract types"
    conf = cfg.source_configurations if isinstance(cfg.source_configurations, dict) else {}
    parts = [] if cfg.source_line in (getattr(cfg, "metric_name", None), "schema", "failed rows") else [cfg.source_line]
    for key in ("fail condition", "warn condition", "fail", "warn"):
        if isinstance(conf.get(key), str):
            parts.append(f"{key} {conf[key]}" if key in ("fail", "warn") else f"{key}: {conf[key]}")
    # a user-defined metric: say what it measures, with the variables resolved (the actual limits)
    if getattr(cfg, "metric_expression", None):
        parts.append(f"{cfg.metric_name} = {cfg.metric_expression}")
    elif getattr(cfg, "metric_query", None):
        parts.append(f"{cfg.metric_name} from: {cfg.metric_query}")
    return _short(scan.jinja_resolve("; ".join(p.strip() for p in parts if p)) or "")


def _short(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
