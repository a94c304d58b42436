"""What the operator reads about a date the gate blocked: why its orders were thrown away (the top quarantine
reasons, on the failing check's line of the run's summary and of `summary --date`), and how many rows were
quarantined on the daily report, read from the lake since Postgres gets them only at publish.

Real `luigi` and `python -m pipeline` runs on the seed fixture day, a fresh database on the embedded Postgres.
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support.browser import Dom
from tests.support.ops import SEED_DAY, Ops, restate_with_unusable_orders


def _lake_reasons(ops: Ops) -> Counter:
    """(source_table, reason_code) -> rows of the date's audit/bad_records in the lake."""
    found: Counter = Counter()
    for path in (ops.lake / "audit" / "bad_records" / f"load_date={SEED_DAY}").glob("source_table=*/data.parquet"):
        for row in pq.read_table(str(path), columns=["source_table", "reason_code"]).to_pylist():
            found[(row["source_table"], row["reason_code"])] += 1
    return found


def _report(ops: Ops, out: Path) -> Dom:
    done = ops.pipeline("report", "--date", str(SEED_DAY), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return Dom(out.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_a_date_blocked_for_orders_without_status_says_why_and_how_many(ops: Ops, tmp_path: Path) -> None:
    path = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    orders = json.loads(path.read_text())
    for order in orders:  # the export dropped the field: every order is quarantined as invalid_status
        del order["status"]
    path.write_text(json.dumps(orders))
    n = len(orders)

    run = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")

    assert run.returncode == 30, run.stdout[-3000:] + run.stderr[-2000:]
    failing = (f"FAIL source_loss: share of orders thrown away (quarantined or rejected) (value 100; top reasons:"
               f" invalid_status {n} of {n})")
    assert failing in run.stdout, run.stdout  # the run's own summary: the line names the reason
    standing = ops.pipeline("summary", "--date", str(SEED_DAY))
    assert standing.returncode == 1 and failing in standing.stdout, standing.stdout
    assert f"({n} quarantined, 0 rejected lines; top reasons: invalid_status {n} of {n})" in standing.stdout

    # the report: Postgres has none of the date's quarantine (it gets it at publish), the lake has it
    assert ops.query("select count(*) from audit.bad_records where load_date = %s", [SEED_DAY]) == [(0,)]
    reasons = _lake_reasons(ops)
    assert reasons[("stg_orders", "invalid_status")] == n
    page = _report(ops, tmp_path / "blocked.html")
    assert page.one(data_published=None)["attrs"]["data-published"] == "false"
    assert page.one(data_quarantined=None)["attrs"]["data-quarantined"] == str(sum(reasons.values()))
    assert page.one(data_rejected_lines=None)["attrs"]["data-rejected-lines"] == str(
        ops.lake_rows("audit", "rejected_lines"))
    for (source, reason), rows in reasons.items():
        assert page.one("rect", data_reason=f"{source}: {reason}")["attrs"]["data-value"] == str(rows)
    assert "is not published: its quarantine is read from the lake" in page.one(data_quarantine_note=None)["text"]

    # without the lake at hand the figure is not known: said so, never a 0
    elsewhere = dataclasses.replace(ops, lake=tmp_path / "another-lake")
    page = _report(elsewhere, tmp_path / "no-lake.html")
    assert page.one(data_quarantined=None)["attrs"]["data-quarantined"] == ""
    assert page.one(data_quarantined=None)["text"] == "not available yet"
    assert page.one(data_rejected_lines=None)["text"] == "not available yet"
    assert f"has no audit/reconciliation of {SEED_DAY}" in page.one(data_quarantine_note=None)["text"]


@pytest.mark.slow
def test_a_restatement_the_gate_blocks_reports_the_new_versions_quarantine(ops: Ops, tmp_path: Path) -> None:
    """A published date restated with a file the gate blocks: Postgres keeps the old version and its quarantine,
    the report lists the new version's blocking checks, so it counts the new version's quarantine (the lake's)
    and says which version that is."""
    restate_with_unusable_orders(ops)
    published = ops.query("select count(*) from audit.bad_records where load_date = %s", [SEED_DAY])[0][0]

    reasons = _lake_reasons(ops)
    assert sum(reasons.values()) != published, "the new version's quarantine is not the published one's"
    page = _report(ops, tmp_path / "restated.html")
    assert page.one(data_published=None)["attrs"]["data-published"] == "true"  # Postgres serves the old version
    assert page.one(data_quarantined=None)["attrs"]["data-quarantined"] == str(sum(reasons.values()))
    for (source, reason), rows in reasons.items():
        assert page.one("rect", data_reason=f"{source}: {reason}")["attrs"]["data-value"] == str(rows)
    note = page.one(data_quarantine_note=None)["text"]
    assert f"{SEED_DAY} is published, but its restatement is pending" in note, note
    assert "Postgres serves the version published at " in note and "its quarantine is read from the lake" in note
    staged = sorted(p.name.split("=", 1)[1] for p in
                    (ops.lake / "audit" / "reconciliation" / f"load_date={SEED_DAY}").glob("source_table=*"))
    assert f"the version the quality gate judged last, of {', '.join(staged)};" in note, note  # what it covers
