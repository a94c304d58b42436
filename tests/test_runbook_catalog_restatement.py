"""The runbook's generic fix for a blocked date names the `restate` command its pending restatement needs: a blocked
(or interrupted) `restate --catalog KIND --date S` is made again by that command, while `restate --date D` finds
nothing to do for it (`remedies.pending_restate`, `restatements.commands`). A real lake's restatement records.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipeline.tasks import restatements, runbook

D = dt.date(2025, 12, 15)
SNAPSHOT = "2025-12-14"
BLOCKED = ["fail: measured 75; ... to publish the date as it is, rerun it with --checks-lost-fail-pct 100."]


def pending(day: dt.date, sources: list[str], snapshots: dict[str, str]) -> None:
    restatements.write_record(day, {
        "load_date": str(day), "status": "pending", "sources": sources, "reasons": {},
        "requested_at": dt.datetime.now(dt.timezone.utc).isoformat(), "previous_manifests": {}, "archived": [],
        **({"snapshots": snapshots} if snapshots else {})})


def test_a_blocked_catalog_restatement_is_told_its_own_command(lake_root: Path) -> None:
    pending(D, ["products"], {"products": SNAPSHOT})
    fix = runbook.gate_fix(D, BLOCKED, local_scheduler=True)
    assert f"fix the file and `python -m pipeline restate --catalog products --date {SNAPSHOT}`" in fix, fix
    assert fix.endswith("rerun it with `--checks-lost-fail-pct 100`"), fix
    # what a failed QualityGate task explains, and the run summary's line for a RESTATING date, say the same
    gate = runbook.by_kind("gate blocked")
    assert f"`python -m pipeline restate --catalog products --date {SNAPSHOT}`" in gate.fix_for(D, failed=True)


def test_a_catalog_and_daily_restatement_is_told_both_commands(lake_root: Path) -> None:
    pending(D, ["products", "orders"], {"products": SNAPSHOT})
    fix = runbook.gate_fix(D, BLOCKED, local_scheduler=True)
    assert (f"`python -m pipeline restate --date {D} --source orders` and"
            f" `python -m pipeline restate --catalog products --date {SNAPSHOT}`") in fix, fix


def test_a_daily_or_no_restatement_keeps_the_daily_command(lake_root: Path) -> None:
    daily = f"fix the file and `python -m pipeline restate --date {D}`; a day that really is unusual"
    assert daily in runbook.gate_fix(D, BLOCKED, local_scheduler=True)
    pending(D, ["orders"], {})
    assert daily in runbook.gate_fix(D, BLOCKED, local_scheduler=True)
    restatements.write_record(D, {**restatements.read_record(D), "status": "published"})
    assert daily in runbook.gate_fix(D, BLOCKED, local_scheduler=True)


def test_the_runbook_table_says_where_every_gate_runs_outcomes_are(lake_root: Path) -> None:
    gate = runbook.by_kind("gate blocked")
    assert "`audit.dq_failure_log`" in gate.symptom and "`audit.dq_failures`" in gate.symptom
    row = next(line for line in runbook.markdown_table().splitlines() if line.startswith("| gate blocked |"))
    assert "`python -m pipeline restate --date D`" in row and "`audit.dq_failure_log`" in row
