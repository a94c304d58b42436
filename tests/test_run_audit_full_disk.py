"""The run audit when the lake's disk is full: the twin cannot be written, the executions reach Postgres all the same.

A real full file system: a small tmpfs as the lake (tests/support/tmpfs.py: as root or as any user), filled up
after the landing.
"""
from __future__ import annotations

import datetime as dt
import multiprocessing
import re
from pathlib import Path

import psycopg

from pipeline import tasks
from pipeline.tasks import run_audit
from tests.support.ops import SEED_DAY, Ops
from tests.support.tmpfs import fill, tmpfs

D = dt.date(2025, 12, 15)
FULL = r"the lake's file system \({lake}\) is full \(No space left on device; 0 KiB free of 2 MiB now\)"


def test_a_run_on_a_full_lake_disk_is_recorded_in_postgres_and_says_the_twin_was_not_written(ops: Ops) -> None:
    with tmpfs(ops.lake, "2m") as ops.lake:
        for day in (SEED_DAY - dt.timedelta(days=1), SEED_DAY):  # the date needs the day before it, too
            assert ops.luigi("LandDaily", "--date", str(day), "--local-scheduler").returncode == 0
        fill(ops.lake)
        full = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
        assert full.returncode == 30, full.stderr[-3000:]
        assert "Traceback" not in full.stderr, full.stderr[-3000:]  # the audit raised nothing, nor logged one
        run = re.search(r"Run summary \(run (\w+)\)", full.stdout).group(1)
        said = re.findall(r"run audit: the lake twin of (\w+) could not be written: (.*)", full.stderr)
        assert said, full.stderr[-3000:]
        for _task, why in said:  # one line per task process, naming the file system and that it is full
            assert re.fullmatch(FULL.format(lake=re.escape(str(ops.lake)))
                                + r"; its executions go to Postgres audit.pipeline_runs directly", why), why
        failed = ops.query("select task, status, error_message from audit.pipeline_runs where run_id = %s"
                           " order by task", [run])
        assert failed and {task for task, _, _ in failed} == {task for task, _ in said}
        for task, status, error in failed:  # the tasks' own failures, not the audit's
            assert status == "failed" and "No space left on device" in error and "run audit" not in error, (task, error)
        assert not [r for r in ops.executions() if r["run_id"] == run], "the twin could not be written"
        # the run summary reads them from Postgres: the failures, what to do, and one line on the twin
        assert f"{SEED_DAY}  " in full.stdout and "FAILED" in full.stdout, full.stdout
        assert "what to do (disk full): free space" in full.stdout, full.stdout
        notes = re.findall(r"\n    run audit: (\d+) execution\(s\) are in Postgres audit.pipeline_runs only: the lake"
                           rf" twin could not be written, the lake's file system \({re.escape(str(ops.lake))}\) is full"
                           r" \(0 KiB free of 2 MiB\)\n", full.stdout)  # under each date
        assert notes and sum(map(int, notes)) == len(failed), full.stdout

        (ops.lake / "filler").unlink()
        again = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "run audit" not in again.stdout + again.stderr, again.stdout
        assert ops.query("select status, count(*) from audit.pipeline_runs where run_id = %s group by status",
                         [run]) == [("failed", len(failed))], "the full disk's run, as it was recorded"


def _start_fill_fail(lake: Path) -> None:
    """A task's process: its start is recorded in the twin, then the disk fills, then it fails."""
    task = tasks.BuildDimDate(date=D)
    run_audit.on_start(task)
    fill(lake)
    run_audit.on_failure(task, OSError(28, "No space left on device"))


def test_a_failure_the_twin_missed_reaches_postgres_and_a_later_sync_keeps_it(fresh_db, tmp_path, monkeypatch) -> None:
    with tmpfs(tmp_path / "lake", "2m") as lake:
        monkeypatch.setenv("ECOMM_LAKE_DIR", str(lake))
        child = multiprocessing.get_context("fork").Process(target=_start_fill_fail, args=(lake,))  # as Luigi's workers
        child.start()
        child.join(60)
        assert child.exitcode == 0
        [twin] = run_audit.executions(D)
        assert twin["status"] == "running", "its start was written, its end could not be"
        task = f"{tasks.BuildDimDate(date=D).task_id}"
        query = "select status, error_message from audit.pipeline_runs where task = %s"
        with psycopg.connect(fresh_db.dsn) as conn:
            assert conn.execute(query, [task]).fetchall() == [("failed", "OSError: [Errno 28] No space left on device")]
        # another process's sync finds the twin's attempt `running`, its process gone: lost, it guesses;
        # Postgres keeps what the task's own process recorded
        (lake / "filler").unlink()
        run_audit.sync_to_postgres(D)
        with psycopg.connect(fresh_db.dsn) as conn:
            assert conn.execute(query, [task]).fetchall() == [("failed", "OSError: [Errno 28] No space left on device")]
        [twin] = run_audit.executions(D)
        assert twin["in_postgres"]
