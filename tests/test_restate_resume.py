"""A restatement killed after it archived the landed files is finished by running its own command again: `restate
--date D` finishes a pending daily restatement (not "nothing to restate"), and `restate --catalog KIND --date S`
one whose snapshot it archived already (not "no snapshot of S was landed"); meanwhile the run summary names that
command.

Real `python -m pipeline restate` command lines, the fault engine's pause to hold the restatement's run once the
files are archived, and SIGKILL of its whole process group, as a crash leaves it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO

DATE = ["--date", str(SEED_DAY)]
LOCAL = "--local-scheduler"


def record(ops: Ops, day: dt.date = SEED_DAY) -> dict:
    return json.loads((ops.lake / "audit" / "restatements" / f"load_date={day}" / "restatement.json").read_text())


def killed_while_running(ops: Ops, tmp_path: Path, *args: str) -> str:
    """`python -m pipeline restate ARGS`, paused as its run's first task starts (the files archived), then SIGKILLed
    with every process it forked; its output."""
    faults = tmp_path / "faults"
    faults.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "restate", *args], cwd=REPO,
                            env={**ops.env, "ECOMM_FAULT": "task.start:*:pause", "ECOMM_FAULT_DIR": str(faults)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (faults / "task.start.paused").exists():
            assert proc.poll() is None, f"the restate ended first: {proc.communicate()[0][-3000:]}"
            assert time.monotonic() < deadline, "the restate's run did not start"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    return out


@pytest.mark.slow
def test_a_killed_daily_restatement_is_finished_by_restate_date(ops: Ops, tmp_path: Path) -> None:
    first = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert first.returncode == 0, first.stderr[-3000:]
    orders = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    rows = json.loads(orders.read_text())
    orders.write_text(json.dumps(rows + [{**r, "order_id": r["order_id"] + "_B"} for r in rows[:5]]))

    out = killed_while_running(ops, tmp_path, *DATE)
    assert "file(s) archived" in out, out[-3000:]
    pending = record(ops)
    assert (pending["status"], pending["sources"]) == ("pending", ["orders"])
    assert not (ops.lake / "raw" / "orders" / f"load_date={SEED_DAY}" / "_manifest.json").exists()

    summary = ops.pipeline("summary", *DATE)
    assert summary.returncode == 1 and "published, restatement PENDING" in summary.stdout, summary.stdout
    assert (f"    what to do (restatement pending): unless a `restate` is running, run `python -m pipeline restate"
            f" --date {SEED_DAY} --source orders`") in summary.stdout, summary.stdout

    again = ops.pipeline("restate", *DATE)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (f"finishing the pending restatement of {SEED_DAY} (requested at {pending['requested_at']}: orders)"
            in again.stdout), again.stdout[-3000:]
    assert record(ops)["status"] == "published"
    assert ops.query("select count(*) from warehouse.fact_orders_all where load_date = %s", [SEED_DAY]) == [(25,)]
    assert ops.pipeline("summary", *DATE).returncode == 0
    # nothing pending any more: nothing to restate, as before
    nothing = ops.pipeline("restate", *DATE)
    assert nothing.returncode == 0 and "nothing to restate" in nothing.stdout, nothing.stdout


@pytest.mark.slow
def test_a_killed_catalog_restatement_is_finished_by_its_own_command(ops: Ops, tmp_path: Path) -> None:
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY - dt.timedelta(days=1)),
                         "--stop", str(SEED_DAY + dt.timedelta(days=1)), LOCAL)
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    snapshot = ops.incoming / "products" / f"products_{SEED_DAY}.json"
    products = json.loads(snapshot.read_text())
    (moved,) = [p for p in products if p["product_id"] == "PROD_0003"]
    moved.update(category="Garden", current_price=9.99)
    snapshot.write_text(json.dumps(products, indent=2))
    command = f"python -m pipeline restate --catalog products --date {SEED_DAY}"

    out = killed_while_running(ops, tmp_path, "--catalog", "products", *DATE)
    assert "file(s) archived" in out, out[-3000:]
    pending = record(ops)
    assert (pending["status"], pending["snapshots"]) == ("pending", {"products": str(SEED_DAY)})
    assert "changed since it was landed" in pending["reasons"]["products"]
    assert not (ops.lake / "raw" / "products" / f"load_date={SEED_DAY}" / "_manifest.json").exists()
    assert not (ops.lake / "warehouse" / "fact_orders" / f"load_date={SEED_DAY}").exists()

    summary = ops.pipeline("summary", *DATE)
    assert summary.returncode == 1 and "published, restatement PENDING" in summary.stdout, summary.stdout
    assert f"what to do (restatement pending): unless a `restate` is running, run `{command}`" in summary.stdout
    # the daily command does not restate a snapshot: it names the catalog's
    daily = ops.pipeline("restate", *DATE)
    assert daily.returncode == 2 and f"restates a catalog snapshot; run `{command}`" in daily.stderr, daily.stderr

    again = ops.pipeline(*command.split()[3:])
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"the dates it feeds: {SEED_DAY}" in again.stdout, again.stdout[-3000:]
    finished = record(ops)
    assert finished["status"] == "published"
    assert "changed since it was landed" in finished["reasons"]["products"], "the interrupted one's why stays"
    assert ops.query("select category, current_price from warehouse.dim_product where product_id = 'PROD_0003'") \
        == [("Garden", Decimal("9.99"))]
    assert ops.pipeline("summary", *DATE).returncode == 0


@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_pending_restatements_of_a_snapshot_are_found_in_the_lake(where: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      request: pytest.FixtureRequest) -> None:
    """What an interrupted `restate --catalog` left: the dates whose pending record restates that snapshot, found by
    listing the restatement records (in a local lake and in a bucket alike)."""
    from pipeline import lake
    from pipeline.tasks import restatements

    if where == "s3":
        request.getfixturevalue("s3_lake")
    else:
        monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / "lake"))
    snapshot = SEED_DAY - dt.timedelta(days=1)
    records = {SEED_DAY: ("pending", {"products": str(snapshot)}),
               SEED_DAY + dt.timedelta(days=1): ("published", {"products": str(snapshot)}),  # finished already
               SEED_DAY + dt.timedelta(days=2): ("pending", {"users": str(snapshot)}),  # another catalog's
               SEED_DAY + dt.timedelta(days=3): ("pending", {}),  # a daily one
               snapshot: ("pending", {"products": str(snapshot)})}
    for day, (status, snapshots) in records.items():
        written = {"load_date": str(day), "status": status, "sources": [*snapshots, "orders"], "snapshots": snapshots}
        lake.write_atomic(restatements.marker_path(day), json.dumps(written).encode())
    assert restatements.recorded_dates() == sorted(records)
    assert restatements.pending_for_snapshot("products", snapshot) == [snapshot, SEED_DAY]
    assert restatements.pending_for_snapshot("products", SEED_DAY) == []
    assert restatements.daily_sources(restatements.read_record(SEED_DAY)) == ["orders"]


def test_a_killed_restate_s_scratch_lake_is_removed_by_the_next(tmp_path: Path) -> None:
    from pipeline.tasks import restate_steps

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"{restate_steps.SCRATCH}{dead.pid}-abc"  # a restate killed while it landed there
    running = tmp_path / f"{restate_steps.SCRATCH}{os.getpid()}-def"
    other = tmp_path / "duckdb_temp_storage_DEFAULT-0.tmp"
    for path in (left / "raw", running / "raw"):
        path.mkdir(parents=True)
    other.write_text("")
    restate_steps._clean_dead_scratch(str(tmp_path))
    assert not left.exists() and running.exists() and other.exists()
