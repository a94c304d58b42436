"""Restatements beside other runs of the same date: a build made before a restatement is never published as the
restated date, and a restatement requested while another run publishes the date stays pending until its own run
publishes it (`restatements.superseded`, `restatements.mark_published`, `restate_steps.remove_derived` under the date's
publish lock).

Real `python -m pipeline restate` and `luigi` command lines, the fault engine's pause to hold a publish's
transaction open, the session's embedded Postgres.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO

DATE = ["--date", str(SEED_DAY)]


def record_path(ops: Ops) -> Path:
    return ops.lake / "audit" / "restatements" / f"load_date={SEED_DAY}" / "restatement.json"


def served(ops: Ops) -> tuple[int, int]:
    """(fact_orders rows, fact_events rows) Postgres serves for the seed day."""
    return ops.query("select (select count(*) from warehouse.fact_orders_all where load_date = %(d)s),"
                     " (select count(*) from warehouse.fact_events_all where load_date = %(d)s)", {"d": SEED_DAY})[0]


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"{what}: the command ended first: {proc.communicate()[0][-3000:]}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_restatement_requested_while_another_publishes_the_date_is_published_by_its_own_run(
        ops: Ops, tmp_path: Path) -> None:
    """Operator 1 restates the orders; while its publish holds the date, operator 2 restates the corrected events.
    Operator 1's publish must not mark operator 2's restatement done (its run would then find the date published and
    skip it, leaving the old events served), nor read the lake while operator 2 removes the date's build."""
    first = ops.luigi("DailyPipeline", *DATE, "--local-scheduler")
    assert first.returncode == 0, first.stderr[-3000:]
    assert served(ops) == (20, 60)
    orders = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    records = json.loads(orders.read_text())
    orders.write_text(json.dumps(records + [{**r, "order_id": r["order_id"] + "_B"} for r in records[:5]]))

    faults = tmp_path / "faults"
    faults.mkdir()
    one = subprocess.Popen([sys.executable, "-m", "pipeline", "restate", *DATE, "--source", "orders"], cwd=REPO,
                           env={**ops.env, "ECOMM_FAULT": "publish.merge:pause", "ECOMM_FAULT_DIR": str(faults)},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    two = None
    try:
        wait_for((faults / "publish.merge.paused").exists, one, "operator 1's publish holding the date")
        requested = json.loads(record_path(ops).read_text())["requested_at"]
        events = ops.incoming / "events" / str(SEED_DAY) / "events.csv"
        events.write_text("".join(events.read_text().splitlines(keepends=True)[:41]))  # the header and 40 events
        two = subprocess.Popen([sys.executable, "-m", "pipeline", "restate", *DATE], cwd=REPO, env=ops.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: json.loads(record_path(ops).read_text())["requested_at"] != requested, two,
                 "operator 2's restatement recorded")
        time.sleep(2)  # operator 2 now waits for the date's lock to remove the build operator 1 is publishing
        assert two.poll() is None, two.communicate()[0][-3000:]
        (faults / "publish.merge.resume").write_text("")
        out_one, _ = one.communicate(timeout=300)
        out_two, _ = two.communicate(timeout=300)
    finally:
        for proc in (one, two):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert two.returncode == 0, out_two[-4000:]
    assert "it stays pending" in out_one, out_one[-4000:]
    # what the lake holds is what Postgres serves: the corrected orders and the corrected events
    assert served(ops) == (25, 40) == (ops.lake_rows("warehouse", "fact_orders"), ops.lake_rows("warehouse",
                                                                                                 "fact_events"))
    record = json.loads(record_path(ops).read_text())
    # one record: operator 2's restatement extended operator 1's, still pending when it was requested
    assert (record["status"], record["sources"]) == ("published", ["orders", "events"]), record
    summary = ops.pipeline("summary", *DATE)
    assert summary.returncode == 0 and "published" in summary.stdout, summary.stdout


@pytest.mark.slow
def test_a_build_older_than_a_pending_restatement_is_not_published_as_it(ops: Ops) -> None:
    """A restatement interrupted before it removed the date's build (killed between recording it and removing):
    the next run must not publish the old build as the restated date and mark the restatement done."""
    first = ops.luigi("DailyPipeline", *DATE, "--local-scheduler")
    assert first.returncode == 0, first.stderr[-3000:]
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    record_path(ops).parent.mkdir(parents=True, exist_ok=True)
    record_path(ops).write_text(json.dumps({
        "load_date": str(SEED_DAY), "status": "pending", "sources": ["orders"], "reasons": {}, "requested_at": now,
        "previous_manifests": {}, "archived": []}))
    again = ops.luigi("DailyPipeline", *DATE, "--local-scheduler")
    assert again.returncode == 30, again.stderr[-3000:]
    assert "BuildSuperseded" in again.stderr and "predates its restatement" in again.stderr, again.stderr[-3000:]
    assert f"run `python -m pipeline restate --date {SEED_DAY} --source orders` again" in again.stderr
    assert json.loads(record_path(ops).read_text())["status"] == "pending"

    restated = ops.pipeline("restate", *DATE, "--source", "orders")
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-3000:]
    assert json.loads(record_path(ops).read_text())["status"] == "published"
    assert served(ops) == (20, 60)
    assert os.path.exists(ops.lake / "audit" / "dq_results" / f"load_date={SEED_DAY}" / "data.parquet")


@pytest.mark.slow
def test_an_interrupted_catalog_restatement_names_the_catalog_command_and_a_later_one_keeps_it(ops: Ops) -> None:
    """A `restate --catalog` killed after recording its dates, before removing their builds: the next run's Publish
    refuses the old build and names the command that finishes it (a daily `restate --date` found nothing to do).
    A daily restatement of the date meanwhile keeps the catalog's part of the record, whose publish replaces the
    snapshot's audit rows too."""
    first = ops.luigi("DailyPipeline", *DATE, "--local-scheduler")
    assert first.returncode == 0, first.stderr[-3000:]
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    record_path(ops).parent.mkdir(parents=True, exist_ok=True)
    record_path(ops).write_text(json.dumps({
        "load_date": str(SEED_DAY), "status": "pending", "sources": ["products"], "reasons": {"products": "x"},
        "requested_at": now, "previous_manifests": {}, "archived": [], "snapshots": {"products": "2025-12-14"}}))
    again = ops.luigi("DailyPipeline", *DATE, "--local-scheduler")
    assert again.returncode == 30, again.stderr[-3000:]
    assert "run `python -m pipeline restate --catalog products --date 2025-12-14` again" in again.stderr, \
        again.stderr[-3000:]

    restated = ops.pipeline("restate", *DATE, "--source", "orders")
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-3000:]
    record = json.loads(record_path(ops).read_text())
    assert (record["status"], record["sources"], record["snapshots"]) == (
        "published", ["products", "orders"], {"products": "2025-12-14"}), record


@pytest.mark.slow
@pytest.mark.parametrize("task", ["Publish", "PreloadFactOrders"])
def test_a_task_of_a_run_that_starts_after_a_restatement_removed_its_build_says_it_was_superseded(
        ops: Ops, tmp_path: Path, task: str) -> None:
    """Operator 1's run is about to publish (or preload) the date, its requirements checked; operator 2's `restate`
    removes the date's build first. That task must say the build was superseded and name the restatement's command
    (BuildSuperseded), not LakePartitionMissing's "run the pipeline for D first": a run of the date is not the remedy
    of a restatement interrupted after it removed the build, and a `restate` still running publishes the date."""
    old_faults, restate_faults = tmp_path / "old-faults", tmp_path / "restate-faults"
    old_faults.mkdir()
    restate_faults.mkdir()
    # one worker: nothing else of operator 1's run goes on while its task waits
    old = subprocess.Popen([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline", *DATE,
                            "--local-scheduler", "--workers", "1"], cwd=REPO,
                           env={**ops.env, "ECOMM_FAULT": f"task.start:{task}:pause", "ECOMM_FAULT_DIR": str(old_faults)},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    restating = None
    try:
        wait_for((old_faults / "task.start.paused").exists, old, f"operator 1's {task} about to run")
        # operator 2's restate records the restatement and removes the build, then holds its run before the new file
        # is landed (one LandOrders: a pause of every task would pause each of its workers' first tasks)
        restating = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "restate", *DATE, "--source", "orders"], cwd=REPO,
            env={**ops.env, "ECOMM_FAULT": "task.start:LandOrders:pause", "ECOMM_FAULT_DIR": str(restate_faults)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for((restate_faults / "task.start.paused").exists, restating, "operator 2's restate running the date")
        assert json.loads(record_path(ops).read_text())["status"] == "pending"
        assert not (ops.lake / "warehouse" / "fact_orders" / f"load_date={SEED_DAY}").exists()
        (old_faults / "task.start.resume").write_text("")
        _, err_old = old.communicate(timeout=300)
        assert old.returncode == 30, err_old[-4000:]
        assert f"failed    {task}(date={SEED_DAY})" in err_old, err_old[-4000:]
        assert f"BuildSuperseded: the build of {SEED_DAY} was removed by its restatement" in err_old, err_old[-4000:]
        assert f"run `python -m pipeline restate --date {SEED_DAY} --source orders` again" in err_old, err_old[-4000:]
        # (a preload's BuildSuperseded is raised from the LakePartitionMissing it explains: its traceback shows both)
        assert "LakePartitionMissing" not in err_old.split("direct cause of the following exception")[-1], err_old[-4000:]
        (restate_faults / "task.start.resume").write_text("")
        out_restate, _ = restating.communicate(timeout=300)
    finally:
        for proc in (old, restating):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert restating.returncode == 0, out_restate[-4000:]
    assert json.loads(record_path(ops).read_text())["status"] == "published"
    assert served(ops) == (20, 60)
