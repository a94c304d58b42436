"""Faults: the real Luigi CLI is killed, starved of disk or loses Postgres mid-run; a rerun repairs all.

Every scenario runs `luigi --module pipeline.tasks DailyPipeline` as a subprocess against its own
lake and its own database on this module's embedded Postgres, with a fault armed through
ECOMM_FAULT (devtools/faults.py), then runs it again without the fault. Afterwards:

- the lake holds whole partitions only (every data.parquet has a valid footer, no temporary file is
  matched by a reader's glob, none is left behind) with the same content as a clean run's;
- every serving table has the same checksum (md5 of its ordered rows, computed in Postgres) as a
  clean run's, without duplicate rows or leftover stage tables, and audit.publish_log agrees with
  the fact tables.

The clean reference run is done once per module.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator

import luigi
import psycopg
import pytest

from devtools import faults
from pipeline import lake, tasks
from pipeline.tasks.publish import PublishTask
from tests.support.faults import (
    D,
    LakeState,
    Runner,
    ServingState,
    assert_no_reader_sees_temp_files,
    assert_serving_consistent,
    create_database,
    database_exists,
    killed,
    lake_state,
    module_server,
    serving_state,
    start_server,
    stop_server,
)
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow


@dataclasses.dataclass
class Reference:
    serving: ServingState
    lake: LakeState
    ran: list[str]  # the tasks a clean run of the date runs


def tasks_done(output: str) -> list[str]:
    """The tasks a run's worker reported done, in order, with their date: the gate of the date also
    stages the earlier seed day (the volume check's history), so a family can run for two dates."""
    return re.findall(r"Worker\(.*?\) done\s+(\w+\([^)]*\))", output)


@pytest.fixture(scope="module")
def server():
    with module_server() as srv:
        yield srv


def new_runner(server, tmp_path_factory, name: str, **kwargs) -> Runner:
    return Runner(server, tmp_path_factory.mktemp(name), f"f_{uuid.uuid4().hex[:10]}", **kwargs)


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory) -> Reference:
    """One clean run of the date: what every scenario must end up with."""
    runner = new_runner(server, tmp_path_factory, "reference")
    result = runner.run()
    assert result.returncode == 0, result.stdout[-3000:]
    state = serving_state(runner.dsn)
    assert_serving_consistent(state)
    assert state.publish_log and state.publish_log[0][1] == 20, state.publish_log
    return Reference(state, lake_state(runner.lake), tasks_done(result.stdout))


def assert_like_reference(runner: Runner, reference: Reference) -> None:
    state = lake_state(runner.lake)
    assert state.temp_files == [], "temporary files were left in the lake"
    assert state.manifests == reference.lake.manifests
    assert state.partitions == reference.lake.partitions, "the lake differs from a clean run's"
    serving = serving_state(runner.dsn)
    assert_serving_consistent(serving)
    assert serving.checksums == reference.serving.checksums, "a serving table differs from a clean run's"
    assert serving.relations == reference.serving.relations


def assert_nothing_partial(runner: Runner) -> None:
    """After a failed or killed run: whole partitions only, nothing of the date visible in Postgres."""
    assert_no_reader_sees_temp_files(runner.lake)
    lake_state(runner.lake)  # every data.parquet has a valid footer
    if os.path.exists(runner.lake / "raw"):
        for folder in (runner.lake / "raw").glob("*/load_date=*"):
            manifest = folder / "_manifest.json"
            if manifest.exists():
                assert (folder / lake.DATA_FILE).exists(), f"{manifest} marks a partition without data"


def assert_not_published(runner: Runner) -> None:
    if not database_exists(runner.server, runner.database):
        return  # nothing ever connected: nothing can be visible
    state = serving_state(runner.dsn)
    assert state.publish_log == [] and state.fact_rows == [], "a failed publish left data visible"
    assert [r for r in state.relations if r.endswith("_load")] == []


# ------------------------------------------------------------------------------------ the switch
def test_fault_specs_parse_and_bad_ones_are_refused() -> None:
    (fault,) = faults.parse("task.start:BuildFactOrders:kill")
    assert (fault.point, fault.qualifier, fault.action, fault.nth) == ("task.start", "BuildFactOrders", "kill", None)
    first, second = faults.parse("lake.promote:kill, lake.write:*:enospc@3")
    assert (first.qualifier, first.action) == (None, "kill")
    assert (second.qualifier, second.action, second.nth, second.slot) == (None, "enospc", 3, 1)
    for bad in ("lake.promot:kill", "lake.promote:explode", "task.start:raise", "lake.write:kill@0", "kill"):
        with pytest.raises(faults.FaultSpecError):
            faults.parse(bad)


def test_points_do_nothing_without_the_variable_and_fire_with_it(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.point("lake.write", tmp_path / "x")  # unarmed: nothing
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / "lake"))
    target = tmp_path / "lake" / "staging" / "stg_orders" / "load_date=2025-12-15" / "data.parquet.tmp-1"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x" * 100)
    monkeypatch.setenv(faults.ENV, "lake.write:staging/stg_events:enospc")
    faults.point("lake.write", target)  # another table: nothing
    monkeypatch.setenv(faults.ENV, "lake.write:staging/stg_orders:enospc")
    with pytest.raises(OSError) as info:
        faults.point("lake.write", target)
    assert info.value.errno == 28 and target.stat().st_size == 50, "the write was cut short"
    monkeypatch.setenv(faults.ENV, "publish.commit:raise")
    with pytest.raises(faults.FaultInjected):
        faults.point("publish.commit")
    with pytest.raises(faults.FaultSpecError):
        faults.point("no.such.point")


def test_the_task_boundary_handlers_are_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ECOMM_FAULT set, the product's fault points load the engine, which registers Luigi's task-boundary points."""
    import pipeline.faults

    monkeypatch.setenv(faults.ENV, "publish.commit:raise")
    pipeline.faults.install()
    assert lake.faults is pipeline.faults and pipeline.faults._engine is faults
    callbacks = luigi.Task._event_callbacks.get(luigi.Task, {})
    assert faults._task_started in callbacks.get(luigi.Event.START, set())
    assert faults._task_succeeded in callbacks.get(luigi.Event.SUCCESS, set())


# ------------------------------------------------------------------------------ SIGKILL mid-task
KILL_POINTS = {
    # landing: between a partition's data file and its manifest (the completion marker), mid-write
    "land-events-before-manifest": "landing.manifest:raw/events:kill",
    "land-products-mid-write": "lake.write:raw/products:kill",
    # writing lake partitions: staging, warehouse, the quality gate's results
    "stage-orders-mid-write": "lake.write:staging/stg_orders:kill",
    "fact-orders-rename": "lake.promote:warehouse/fact_orders:kill",
    "gate-results-mid-write": "lake.write:audit/dq_results:kill",
    # the Postgres side: mid-COPY of a preload (its own transaction), everything done but the commit
    "publish-mid-copy": "publish.copy:fact_events:kill",
    "publish-before-commit": "publish.commit:kill",
}


@pytest.mark.parametrize("fault", list(KILL_POINTS.values()), ids=list(KILL_POINTS))
def test_sigkill_mid_task_then_rerun_gives_the_clean_result(server, reference, tmp_path_factory, fault) -> None:
    runner = new_runner(server, tmp_path_factory, "kill")
    first = runner.run(fault=fault)
    assert killed(first), f"rc {first.returncode}; the fault did not kill the worker:\n{first.stdout[-3000:]}"
    assert len(runner.fired()) == 1 and runner.fired()[0].startswith(fault.split(":")[0])
    assert_nothing_partial(runner)
    if fault.startswith("publish"):
        assert_not_published(runner)
    second = runner.run()
    assert second.returncode == 0, second.stdout[-3000:]
    assert_like_reference(runner, reference)


# ----------------------------------------------------------------------- SIGKILL at task borders
WRAPPERS = {"LandDaily", "StageDaily", "BuildWarehouse", "DailyPipeline"}


def test_sigkill_at_every_task_boundary_then_rerun(server, reference, tmp_path_factory) -> None:
    """Each run lets one task run and kills the worker at a boundary: after its SUCCESS event
    (output complete, scheduler not told) or at the START of the next task; then the next run."""
    runner = new_runner(server, tmp_path_factory, "walk")
    boundaries = ("task.success:*:kill", "task.start:*:kill@2")
    runs, done = 0, []
    while True:
        # one worker: the walk counts one task per run (two workers can both reach a boundary at once)
        result = runner.run("DailyPipeline", "--workers", "1", fault=boundaries[runs % 2])
        runs += 1
        if result.returncode == 0:
            break
        assert killed(result), f"run {runs}: rc {result.returncode}\n{result.stdout[-3000:]}"
        assert len(runner.fired()) == runs, "each run must be killed by its fault"
        assert len(tasks_done(result.stdout)) == 1, "each killed run completes exactly one task"
        done += tasks_done(result.stdout)
        assert_nothing_partial(runner)
        assert runs < 40, "no progress between runs"
    done += tasks_done(result.stdout)
    # every task that does work was completed by a run that was then killed (wrappers that were
    # already complete when a run started are never run, and need not be)
    working = {t for t in reference.ran if t.split("(")[0] not in WRAPPERS}
    assert working <= set(done), f"the walk never killed a run after {sorted(working - set(done))}"
    assert sorted(done) == sorted(set(done)), "a task was run twice: a completed output was not trusted"
    assert_like_reference(runner, reference)


# ------------------------------------------------------------------------- disk full, errors
ENOSPC_POINTS = {  # a partition's data file (DuckDB's COPY) and a manifest's rename
    "fact-orders": "lake.write:warehouse/fact_orders:enospc",
    "manifest-rename": "lake.promote:_manifest.json:enospc",
}


@pytest.mark.parametrize("fault", list(ENOSPC_POINTS.values()), ids=list(ENOSPC_POINTS))
def test_disk_full_promotes_nothing_half_written_and_rerun_succeeds(server, reference, tmp_path_factory, fault) -> None:
    runner = new_runner(server, tmp_path_factory, "enospc")
    first = runner.run(fault=fault)
    assert first.returncode == 30, first.stdout[-3000:]
    assert "No space left on device" in first.stdout
    tag = fault.split(":")[1]
    if "/" in tag:  # the partition being written was not promoted, its temporary file removed
        folder = runner.lake / tag / f"load_date={D}"
        assert not (folder / lake.DATA_FILE).exists()
        assert not folder.exists() or list(folder.glob("*.tmp-*")) == []
    assert_nothing_partial(runner)
    assert_not_published(runner)
    second = runner.run()
    assert second.returncode == 0, second.stdout[-3000:]
    assert_like_reference(runner, reference)


def test_a_publish_error_that_cannot_heal_fails_at_once_and_is_rolled_back(server, reference, tmp_path_factory) -> None:
    """An error that is not a transient Postgres failure is not retried (pipeline.serving.retry)."""
    runner = new_runner(server, tmp_path_factory, "raise")
    first = runner.run(fault="publish.copy:fact_orders:raise")
    assert first.returncode == 30, first.stdout[-3000:]
    assert len(runner.fired()) == 1, "tried once: neither the task nor Luigi retries it"
    assert "FaultInjected: fault injected at publish.copy" in first.stdout
    assert "will retry" not in first.stdout
    assert_not_published(runner)
    second = runner.run()
    assert second.returncode == 0, second.stdout[-3000:]
    assert_like_reference(runner, reference)


# --------------------------------------------------------------------- Postgres stopped mid-run
@contextlib.contextmanager
def server_back_after(proc: subprocess.Popen, server) -> Iterator[subprocess.Popen]:
    """A background run during which the test stops Postgres: killed if still running, the server started again."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        start_server(server)


def test_postgres_stopped_mid_publish_fails_clearly_retries_and_leaves_nothing(
        server, reference, tmp_path_factory) -> None:
    """Postgres is stopped while the publish transaction is open (after the gate, all written). The
    attempt fails with the server's message, nothing is visible, and the task's own retry (a
    transient failure: pipeline.serving.retry) publishes the date once Postgres is back. ECOMM_PG_DSN
    names the server, so the pipeline never restarts it itself."""
    runner = new_runner(server, tmp_path_factory, "pgstop", dsn_env=True,
                        luigi_cfg="[publish]\nretry_backoff_seconds = 3\n[worker]\nwait_interval = 0.1\nwait_jitter = 0\n")
    create_database(server, runner.database)
    paused, resume = runner.fault_dir / "publish.merge.paused", runner.fault_dir / "publish.merge.resume"
    log = runner.root / "pgstop.log"
    with server_back_after(runner.start(fault="publish.merge:pause", log=log), server) as proc:
        wait_for(paused.exists, 120, "the publish to pause mid-transaction")
        stop_server(server)
        resume.touch()
        wait_for(lambda: "this can heal, will retry: attempt 2 of 4" in log.read_text(), 60, "the publish to fail")
        start_server(server)
        # the task retries after [publish] retry_backoff_seconds; the retry pauses at the same point
        wait_for(lambda: not resume.exists() and paused.exists(), 60, "Luigi's retry")
        assert_not_published(runner)
        resume.touch()
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    output = log.read_text()
    assert re.search(r"publishing 2025-12-15 failed: [^\n]*(terminating connection due to administrator command"
                     r"|server closed)[^\n]*; this can heal, will retry: attempt 2 of 4 at \d\d:\d\d:\d\d", output)
    assert "failed    Publish" not in output, "one Luigi attempt, which succeeded"
    assert_like_reference(runner, reference)


def test_postgres_stopped_after_the_preloads_is_retried_by_the_publish(server, reference, tmp_path_factory) -> None:
    """Postgres goes away after the facts' preloads, before the Publish starts: Luigi checks the Publish's
    requirements in its process first, and a preload that could not be confirmed failed it at once
    ("Unfulfilled dependencies at run time"), without the publish's own retries. Now the Publish runs,
    retries, and publishes once Postgres is back. One worker: the gate is the last task before it."""
    runner = new_runner(server, tmp_path_factory, "pgstop-preloaded", dsn_env=True,
                        luigi_cfg="[publish]\nretry_backoff_seconds = 3\n[worker]\nwait_interval = 0.1\nwait_jitter = 0\n")
    create_database(server, runner.database)
    paused, resume = runner.fault_dir / "task.success.paused", runner.fault_dir / "task.success.resume"
    log = runner.root / "pgstop-preloaded.log"
    started = runner.start("DailyPipeline", "--workers", "1", fault="task.success:QualityGate:pause", log=log)
    with server_back_after(started, server) as proc:
        wait_for(paused.exists, 120, "the gate to pause after its success")
        stop_server(server)
        resume.touch()
        wait_for(lambda: "publishing 2025-12-15 failed: " in log.read_text() or proc.poll() is not None, 60,
                 "the publish to fail its first attempt")
        start_server(server)
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    output = log.read_text()
    assert "Unfulfilled dependencies" not in output
    assert re.search(r"publishing 2025-12-15 failed: connection is bad: [^\n]*; this can heal, will retry:"
                     r" attempt 2 of 4", output), output[-3000:]
    assert "preloading fact_" not in output, "the preloads ran before the gate, with Postgres up"
    assert_like_reference(runner, reference)


def test_retry_policy_comes_from_luigi_cfg() -> None:
    """Luigi runs every task once: the catalog landing retries a transiently failing API itself ([catalog]
    attempts, the seed's 3 attempts 5 minutes apart), Publish and the preloads transient Postgres failures
    ([publish] attempts); bad-data tasks, a malformed catalog file included, are not retried."""
    config = luigi.configuration.get_config()
    assert config.getint("catalog", "attempts") == 3 and config.getfloat("catalog", "retry_delay_seconds") == 300
    assert config.getint("publish", "attempts") == 4 and config.getfloat("publish", "retry_backoff_seconds") == 30
    assert config.getboolean("worker", "keep_alive")
    day = lake.parse_date(D)
    for task in (tasks.LandOrders, tasks.LandEvents, tasks.LandProducts, tasks.LandUsers, tasks.StageOrders,
                 tasks.BuildFactOrders, tasks.QualityGate, tasks.Publish, tasks.PreloadFactOrders,
                 tasks.PreloadFactEvents):
        assert task(date=day).retry_count == 1, task
    assert issubclass(tasks.Publish, PublishTask)


# -------------------------------------------------------------------- two publishers, one date
def waiting_for_a_lock(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("select exists (select 1 from pg_locks where not granted)").fetchone()[0]


def test_two_processes_publishing_one_date_at_once_leave_no_duplicates(server, reference, tmp_path_factory) -> None:
    """Two `luigi ... Publish` processes for the same date (no Luigi pid lock): the first holds its
    transaction open (holding the date's lock) while the second starts; both succeed, one copy of the
    date is served."""
    runner = new_runner(server, tmp_path_factory, "twopub")
    prepared = runner.run("QualityGate")
    assert prepared.returncode == 0, prepared.stdout[-3000:]
    paused, resume = runner.fault_dir / "publish.merge.paused", runner.fault_dir / "publish.merge.resume"
    first = runner.start("Publish", fault="publish.merge:pause", log=runner.root / "first.log")
    try:
        wait_for(paused.exists, 120, "the first publish to hold its transaction")
        second = runner.start("Publish", log=runner.root / "second.log")
        wait_for(lambda: waiting_for_a_lock(runner.dsn) or second.poll() is not None, 120,
                 "the second publish to wait for the date's lock")
        assert second.poll() is None, (runner.root / "second.log").read_text()[-3000:]
        resume.touch()
        assert first.wait(timeout=120) == 0, (runner.root / "first.log").read_text()[-3000:]
        assert second.wait(timeout=120) == 0, (runner.root / "second.log").read_text()[-3000:]
    finally:
        for proc in (first, locals().get("second")):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
    assert runner.run().returncode == 0  # the rest of the date (DailyPipeline) is complete
    assert_like_reference(runner, reference)
