"""The run audit's measure of what a task cost: its CPU seconds, and its process's peak RSS when it had one.

The end-to-end record (every task of a real `luigi` run, in the lake twin and in Postgres) is checked
in tests/test_ops_exitcodes.py; here the handlers are called as Luigi calls them, in the process
that runs the task.
"""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import time
from pathlib import Path

import luigi

from pipeline import tasks
from pipeline.tasks import run_audit
from pipeline.tasks.base import PipelineTask

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


# ------------------------------------------------------------------ the attempt recorded as its process starts
RUN_AT = dt.date(2025, 12, 16)
_PARENT = os.getpid()


class _Dependency(luigi.Task):
    """Complete; checked again in the task's process before it starts (Luigi's unfulfilled-dependency check), where
    it notes what the run audit holds of the task then: what a `kill -9` at that moment would have left."""

    seen = luigi.Parameter(significant=False)

    def complete(self) -> bool:
        if os.getpid() != _PARENT:
            statuses = [r["status"] for r in run_audit.executions(RUN_AT) if r["task_family"] == "AuditedAfterDeps"]
            Path(self.seen).write_text(json.dumps(statuses))
        return True


class AuditedAfterDeps(PipelineTask):
    """A pipeline task (audited, run in a process of its own) with a dependency; its run only marks it done."""

    seen = luigi.Parameter(significant=False)

    def requires(self) -> luigi.Task:
        return _Dependency(seen=self.seen)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(f"{self.seen}.done")

    def run(self) -> None:
        Path(self.output().path).write_text("done")


def test_an_attempt_is_recorded_running_before_luigi_checks_its_dependencies(lake_root, tmp_path) -> None:
    """Killed 0.2 s after `running <task>` showed, a task had no row at all: Luigi logs that line and checks the
    task's dependencies in its process before the START event the audit recorded it at."""
    seen = tmp_path / "seen.json"
    assert luigi.build([AuditedAfterDeps(date=RUN_AT, seen=str(seen))], local_scheduler=True, workers=1)
    assert json.loads(seen.read_text()) == ["running"], "the attempt is on record while its dependencies are checked"
    (row,) = [r for r in run_audit.executions(RUN_AT) if r["task_family"] == "AuditedAfterDeps"]
    assert (row["attempt"], row["status"]) == (1, "done"), "one attempt: START does not record it a second time"
