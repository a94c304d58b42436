"""The run summary's lines for the checks that blocked a date (`pipeline.tasks.summary`): one line per check,
its measured value and, for a loss check, the top quarantine reasons (and a renamed key) the gate kept with it
(audit/dq_results top_reasons); beneath it, when asked, its whole message; then what to do."""
from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline.quality import quarantine
from pipeline.quality.results import BLOCKING
from pipeline.tasks import runbook

MESSAGE = "  "  # a blocking check's whole message, beneath its line (never cut)


def line(r: dict[str, Any]) -> str:
    """'FAIL source_loss: share of orders thrown away (...) (value 100; top reasons: invalid_status 300 of 300)'."""
    value = "-" if r["value"] is None else str(r["value"])
    reasons = r.get("top_reasons")  # with the renamed key, when the gate found one
    said = f"value {value}" + (f"; {quarantine.REASONS}{reasons}" if reasons else "")
    return f"{r['outcome'].upper()} {r['table_name']}: {r['check_name']} ({said})"


def blocking_checks(results: list[dict[str, Any]], messages: bool, day: dt.date, rerun: dict[str, bool]) -> list[str]:
    """The checks that blocked a date (with their whole messages when asked), then what to do (their options)."""
    blocking = [r for r in results if r["outcome"] in BLOCKING]
    lines = [text for r in blocking
             for text in (line(r), *([f"{MESSAGE}{r['message']}"] if messages and r["message"] else []))]
    fix = runbook.gate_fix(day, [r["message"] for r in blocking], **rerun,
                           checks=[(r["table_name"], r["check_name"]) for r in blocking],
                           errored=runbook.soda_errored((r["outcome"], r["check_type"]) for r in blocking))
    return [*lines, f"what to do (gate blocked): {fix}"]
