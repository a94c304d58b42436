"""The run audit's measure of what a task cost: its CPU seconds, and its process's peak RSS when it had one.

The end-to-end record (every task of a real `luigi` run, in the lake twin and in Postgres) is checked
in tests/test_ops_exitcodes.py; here the handlers are called as Luigi calls them, in the process
that runs the task.
"""
from __future__ import annotations

import datetime as dt
import multiprocessing
import time

from pipeline import tasks
from pipeline.tasks import run_audit

D = dt.date(2025, 12, 15)
BURN = 0.15  # CPU seconds the "task" spends between its start and end events


def _burn(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def _run_task(day: dt.date) -> None:
    task = tasks.BuildDimDate(date=day)
    run_audit.on_start(task)
    _burn(BURN)
    run_audit.on_success(task)


def _row(day: dt.date) -> dict:
    (row,) = [r for r in run_audit.executions(day) if r["task_family"] == "BuildDimDate"]
    return row


def test_a_task_in_a_process_of_its_own_records_its_cpu_seconds_and_peak_rss(lake_root) -> None:
    child = multiprocessing.get_context("fork").Process(target=_run_task, args=(D,))  # as Luigi's workers run tasks
    child.start()
    child.join(60)
    assert child.exitcode == 0
    row = _row(D)
    assert row["status"] == "done"
    assert BURN <= row["cpu_seconds"] < BURN + 1.0, "the CPU the task spent, not its process's whole life"
    assert row["peak_rss_mib"] > 10, "the forked process's peak resident memory, in MiB"


def test_a_task_run_in_the_luigi_process_records_its_cpu_but_not_that_process_s_peak(lake_root) -> None:
    _burn(0.3)  # CPU this process spent before the task: not the task's
    _run_task(D)
    row = _row(D)
    assert BURN <= row["cpu_seconds"] < BURN + 0.25
    assert row["peak_rss_mib"] is None, "the peak of a process that ran other things is not the task's"


def test_a_task_whose_end_is_recorded_by_another_process_has_no_cost_recorded(lake_root, tmp_path, monkeypatch) -> None:
    # a killed task's end is recorded by the worker's main process (TIMEOUT, PROCESS_FAILURE): it
    # never saw the start, so it cannot know what the task's process spent
    for variable in ("ECOMM_PG_DSN", "PGHOST", "PGDATABASE", "PGSERVICE"):  # a failure is synced to a
        monkeypatch.delenv(variable, raising=False)  # reachable Postgres: here there is none
    monkeypatch.setenv("ECOMM_PG_DATA", str(tmp_path / "no-postgres"))
    started = multiprocessing.get_context("fork").Process(target=run_audit.on_start,
                                                          args=(tasks.BuildDimDate(date=D),))
    started.start()
    started.join(60)
    run_audit.on_lost(tasks.BuildDimDate(date=D), "Task timed out after 2 seconds and was terminated.")
    row = _row(D)
    assert row["status"] == "failed" and "timed out" in row["error_message"]
    assert row["cpu_seconds"] is None and row["peak_rss_mib"] is None
