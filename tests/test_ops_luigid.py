"""Runs through the central scheduler: a real `luigid` on a free loopback port, its HTTP API and UI."""
from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from tests.support.luigid import Luigid
from tests.support.ops import Ops, assert_published_once

# Sunday to Tuesday: catalog snapshots on the first day and on Monday, so the Monday and Tuesday
# models also need the Sunday snapshot staged (a task of another date, maybe not run yet).
BACKFILL = [dt.date(2025, 12, 7) + dt.timedelta(days=i) for i in range(3)]
CONCURRENT_DAY = dt.date(2025, 12, 10)


@pytest.mark.slow
def test_a_backfill_through_luigid_with_2_workers(ops: Ops, luigid: Luigid) -> None:
    ops.generate(BACKFILL[0], len(BACKFILL))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECOMM_DATA_DIR", str(ops.incoming))
        mp.setenv("ECOMM_LAKE_DIR", str(ops.lake))
        from pipeline import tasks

        assert tasks.StageUsers(date=BACKFILL[0]) in tasks.BuildDimUser(date=BACKFILL[2]).requires()
        assert tasks.StageProducts(date=BACKFILL[0]) in tasks.BuildDimProductHistory(date=BACKFILL[2]).requires()
    result = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(BACKFILL[0]),
                       "--stop", str(BACKFILL[-1] + dt.timedelta(days=1)), "--workers", "2", *luigid.scheduler_args())
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("published") >= len(BACKFILL)

    done = luigid.tasks("DONE")
    families = Counter(task["name"] for task in done.values())
    assert families["DailyPipeline"] == families["Publish"] == families["QualityGate"] == len(BACKFILL)
    assert families["RangeDaily"] == 1 and families["LandOrders"] == families["BuildDailyMetrics"] == len(BACKFILL)
    for status in ("PENDING", "RUNNING", "FAILED", "DISABLED"):
        assert luigid.tasks(status) == {}, f"no task {status}"
    assert {w for task in done.values() for w in task["workers"]}, "workers are recorded"
    # oldest first: the scheduler must not flatten each date's priority to the RangeDaily's
    started = [t["time_running"] for _, t in sorted((t["params"]["date"], t) for t in done.values()
                                                    if t["name"] == "Publish")]
    assert started == sorted(started), "published oldest first"

    # what the UI shows for a task: its status message and progress
    lands = {tid: t for tid, t in done.items() if t["name"] == "LandOrders"}
    for task in lands.values():
        assert task["status_message"] == "landed 300 orders rows" and task["progress_percentage"] == 100
    gate = next(t for t in done.values() if t["name"] == "QualityGate")
    assert gate["status_message"].endswith("0 failed, 0 errored") and "checks run" in gate["status_message"]
    publish = next(t for t in done.values() if t["name"] == "Publish")
    assert publish["status_message"].startswith("published and reconciled") and publish["progress_percentage"] == 100
    publish_id = next(tid for tid, t in done.items() if t["name"] == "Publish")
    graph = luigid.get("/api/dep_graph", {"task_id": publish_id})
    assert {t["name"] for t in graph.values()} >= {"Publish", "QualityGate", "BuildFactEvents", "LandOrders"}
    assert luigid.get("/api/get_task_status_message", {"task_id": publish_id})["statusMessage"].startswith("published")

    page = luigid.get("/static/visualiser/index.html")
    assert "<html" in page.lower() and "luigi" in page.lower()
    for day in BACKFILL:
        assert_published_once(ops, day)


@pytest.mark.slow
def test_two_processes_on_one_date_through_luigid_run_each_task_once(ops: Ops, luigid: Luigid) -> None:
    ops.generate(CONCURRENT_DAY, 1)
    day = ["--date", str(CONCURRENT_DAY)]
    single = ops.popen("DailyPipeline", *day, *luigid.scheduler_args())
    backfill = ops.popen("RangeDaily", "--of", "DailyPipeline", "--start", str(CONCURRENT_DAY),
                         "--stop", str(CONCURRENT_DAY + dt.timedelta(days=1)), *luigid.scheduler_args())
    outcomes = [process.communicate(timeout=180) for process in (single, backfill)]
    codes = [single.returncode, backfill.returncode]
    # 25 ("not run") is Luigi's code for a process some of whose tasks another worker ran: the one
    # that waited gets it (both do when each ran part of the date), a process that ran all it needed 0
    assert set(codes) <= {0, 25} and 25 in codes, outcomes
    runs = ops.executions(CONCURRENT_DAY)
    per_task = Counter(r["task_id"] for r in runs)
    assert len(per_task) == 23 and set(per_task.values()) == {1}, "each of the 23 tasks ran once, on one worker"
    assert {r["status"] for r in runs} == {"done"}
    assert_published_once(ops, CONCURRENT_DAY)
