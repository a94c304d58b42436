"""audit/dq_results: one row per check of a date's quality gate, written by the gate, read back by its task.

`write_results` writes a gate run's results (atomic); `load_results` and `gate_passed` read them back:
the gate task's completion check, which Luigi asks while it schedules and again in the publish
process before it runs, so it reads the small file with pyarrow (imported by every pipeline
process) rather than opening a DuckDB database for it (~25-40 ms in a task process).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.quality.results import BLOCKING, CheckResult

DQ_RESULTS_SCHEMA = pa.schema([
    ("load_date", pa.date32()),
    ("check_name", pa.string()),
    ("table_name", pa.string()),
    ("check_type", pa.string()),
    ("outcome", pa.string()),
    ("value", pa.string()),
    ("message", pa.string()),
    ("checked_at", pa.timestamp("us")),
    # the pipeline run whose gate produced the results (audit.pipeline_runs.run_id): a run killed after its gate
    # leaves them to the next run, which publishes them, and audit.dq_failure_log must still name the gate's run
    ("run_id", pa.string()),
    # a loss check that warned or failed: the source's top quarantine reasons (CheckResult.top_reasons); NULL for
    # every other check, and for every check of a file written before dq_results kept it
    ("top_reasons", pa.string()),
])
_COLUMNS = ("check_name", "table_name", "check_type", "outcome", "value", "message")
_KEPT = (*_COLUMNS, "top_reasons")  # the CheckResult fields a file keeps


#: how many blocking checks the first line of QualityGateFailed names (the lines below list each one)
NAMED_CHECKS = 3


class QualityGateFailed(Exception):
    """The quality gate blocked the date: a fail or error check."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        blocking = [r for r in result.results if r.outcome in BLOCKING]
        lines = [
            f"  {r.outcome.upper()} {r.table_name} | {r.check_name} | value {r.value if r.value is not None else '-'}"
            f" | {r.message}"
            for r in blocking
        ]
        # the first line is what a failure e-mail's and luigid's first line quote: it names the checks
        named = "; ".join(f"{r.outcome.upper()} {r.table_name} | {r.check_name}" for r in blocking[:NAMED_CHECKS])
        more = f"; and {len(blocking) - NAMED_CHECKS} more" if len(blocking) > NAMED_CHECKS else ""
        super().__init__(
            f"the quality gate blocked {result.load_date}: {result.failed} failed, {result.errored} errored"
            f" ({named}{more}; every result in {lake.partition_file('audit', 'dq_results', result.load_date)}):\n"
            + "\n".join(lines)
        )


@dataclasses.dataclass
class GateResult:
    """Every check result of one gate run (or of one serving reconciliation) for a load date."""

    load_date: dt.date
    results: list[CheckResult]
    checked_at: dt.datetime
    run_id: str | None = None  # the gate's pipeline run; None in files written before dq_results kept it

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def passed(self) -> int:
        return self.count("pass")

    @property
    def warned(self) -> int:
        return self.count("warn")

    @property
    def failed(self) -> int:
        return self.count("fail")

    @property
    def errored(self) -> int:
        return self.count("error")

    @property
    def blocked(self) -> bool:
        return self.failed + self.errored > 0

    def raise_if_blocked(self) -> None:
        """Raise QualityGateFailed (carrying this result) when a check failed or errored."""
        if self.blocked:
            raise QualityGateFailed(self)


def results_table(result: GateResult) -> pa.Table:
    """The results as rows of audit/dq_results."""
    rows = [dataclasses.asdict(r) for r in result.results]
    columns: dict[str, list[Any]] = {name: [row[name] for row in rows] for name in _KEPT}
    return pa.table({
        "load_date": [result.load_date] * len(rows),
        **{name: columns[name] for name in _COLUMNS},
        "checked_at": [result.checked_at] * len(rows),
        "run_id": [result.run_id] * len(rows),
        "top_reasons": columns["top_reasons"],
    }, schema=DQ_RESULTS_SCHEMA)


def write_results(result: GateResult, con: duckdb.DuckDBPyConnection | None = None) -> int:
    """Write audit/dq_results/load_date=D atomically (one row per check); return the row count.

    `con`: a DuckDB connection to write with (the gate's own), instead of a new database.
    """
    if con is None:
        with sqlrun.connect() as own:
            return write_results(result, own)
    with con.cursor() as cursor:  # the results' view stays on this cursor
        cursor.register("gate_results", results_table(result))
        return sqlrun.copy_to_partition(
            cursor, "select * from gate_results order by table_name, check_name", {},
            lake.partition_file("audit", "dq_results", result.load_date), require_rows=True,
        )


def load_results(load_date: dt.date | str) -> GateResult | None:
    """The gate results recorded for a date (None if the gate has not run for it), by table and check name."""
    day = lake.parse_date(load_date)
    path = lake.partition_file("audit", "dq_results", day)
    if not lake.exists(path):
        return None
    # by schema: a file written before run_id (or top_reasons) was kept reads it as None
    rows = lake.read_rows(path, schema=pa.schema([DQ_RESULTS_SCHEMA.field(name)
                                                  for name in (*_KEPT, "checked_at", "run_id")]))
    # the order the file is written in (DuckDB's: NULLs last; code point order is UTF-8's byte order)
    rows.sort(key=lambda row: tuple((row[name] is None, row[name] or "") for name in ("table_name", "check_name")))
    results = [CheckResult(**{name: row[name] for name in _KEPT}) for row in rows]
    checked_at = rows[0]["checked_at"] if rows else dt.datetime.min
    return GateResult(load_date=day, results=results, checked_at=checked_at, run_id=rows[0]["run_id"] if rows else None)


def gate_passed(load_date: dt.date | str) -> bool:
    """True when the date's dq_results exist, hold at least one check and no fail or error."""
    result = load_results(load_date)
    return result is not None and bool(result.results) and not result.blocked


def dq_failure_rows(result: GateResult) -> list[dict[str, Any]]:
    """The warned, failed and errored results, shaped for Postgres audit.dq_failures, with the gate run's
    `checked_at` (which names the run in audit.dq_failure_log) and `run_id` (its pipeline run, the log's run_id)."""
    return [
        {
            "run_date": result.load_date,
            "check_name": r.check_name,
            "table_name": r.table_name,
            "check_type": r.check_type,
            "outcome": r.outcome,
            "value": r.value,
            "message": r.message,
            "checked_at": result.checked_at,
            "run_id": result.run_id,
        }
        for r in result.results if r.outcome != "pass"
    ]
