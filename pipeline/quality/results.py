"""The records of a quality check, without soda-core: cheap to import.

`pipeline.quality.gate` needs them to tell whether a date's gate passed (Luigi asks that of every date
while it schedules), which must not pull in soda-core's ~0.7 s of imports; `pipeline.quality.soda`
fills them from Soda's scans (and re-exports them).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

OUTCOMES = ("pass", "warn", "fail", "error")
BLOCKING = ("fail", "error")
# The gated tables (pipeline.quality.gate), in scan order: view name -> lake layer. The view name is the table
# name, so the SodaCL file checks/<layer>/<table>.yml says `checks for <table>:`.
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
# The gate's derived views (pipeline.quality.gate_views), scanned in this order after the tables: view name ->
# the layer whose checks folder holds its SodaCL file. Here, so that gate knows every file it scans without soda-core.
VIEWS: dict[str, str] = {"source_loss": "audit", "source_volume": "audit", "unknown_users": "warehouse",
                         "catalog_snapshots": "staging"}


NOT_EVALUATED = "not evaluated: "  # how an errored check's message begins (its query failed: Soda's error follows)


class ChecksFileInvalid(Exception):
    """A checks file cannot be used as it is: the gate refuses to judge the date with it."""


class NoChecksParsed(ChecksFileInvalid):
    """A checks file parsed to zero checks: a gate that checks nothing must not pass."""


class ChecksVariableUnknown(ChecksFileInvalid):
    """A checks file uses a `${name}` no setting gives: Soda would put nothing in its place, and its SQL breaks."""


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: what was checked, the measured value and why it passed or not."""

    check_name: str
    table_name: str
    check_type: str  # the metric: row_count, duplicate_count, schema, freshness, user-defined, ...
    outcome: str  # pass | warn | fail | error
    value: str | None  # the measured value, as text
    message: str
    metric: str | None = None  # Soda's metric name (not persisted): lets callers map a result to a figure
    # the check's SodaCL `attributes`, variables resolved (not persisted): e.g. which source a gate
    # view's check is about, and the advice its message gives (pipeline.quality.gate_views)
    attributes: dict[str, Any] | None = dataclasses.field(default=None, compare=False, hash=False)
    # a loss check that warned or failed: the source's top quarantine reasons ("invalid_status 300 of 300", as its
    # message words them), kept in audit/dq_results for the run summary (pipeline.quality.quarantine)
    top_reasons: str | None = None


# the sentence (or clause after "; ") of a check's advice that publishes a blocked date with a threshold option:
# "To publish the date as it is, rerun it with --checks-lost-fail-pct 100", "If the day really was this small (...),
# rerun it with --checks-orders-volume-fail-low-ratio 0 to publish it"
_CLAUSE = r"[^.;]*\brerun (?:it|the date) with --checks-[a-z-]+ \d+(?:\.\d+)?[^.;]*"
_THRESHOLD_ADVICE = re.compile(rf";\s*{_CLAUSE}(?=\.|$)|(?:(?<=\.)\s+|^){_CLAUSE}(?:\.(?=\s|$))?")


def advice_for(outcome: str, advice: str | None) -> str | None:
    """A check's advice as its outcome needs it: none when it passed; when it warned, without the threshold option
    that publishes a blocked date (a warning blocks nothing: the date published, or a failing check blocked it)."""
    if not advice or outcome not in ("warn", "fail"):
        return None
    return advice if outcome == "fail" else _THRESHOLD_ADVICE.sub("", advice).strip() or None


def described(result: CheckResult, detail: str, advice: str | None = None) -> CheckResult:
    """`result` whose message says `detail` (what was measured, in words), then `advice` if it warned or failed
    (`advice_for`), then its rule in brackets (without the metric's SQL expression: the checks file has it)."""
    rule = result.message.split(f"; {result.metric} = ", 1)[0] if result.metric else result.message
    advice = advice_for(result.outcome, advice)
    return dataclasses.replace(result, message=detail + (f". {advice}" if advice else "") + f" [{rule}]")
