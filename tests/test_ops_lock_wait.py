"""A run whose scheduling waits on a lock in Postgres (another session holds audit.publish_log in ACCESS EXCLUSIVE, a
DBA's maintenance): it says what it waits on and who holds it, gives up after the bounded waits of [publish], and
Ctrl-C (SIGINT to its process group, as a terminal sends) ends it promptly. Real luigi runs, a real lock."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from pipeline.serving import locks, migrations, pg, publish
from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO
from tests.support.processes import wait_for

DAILY = ("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")


def published(ops: Ops) -> object:
    first = ops.luigi(*DAILY)
    assert first.returncode == 0, first.stderr[-3000:]
    return ops.query("select published_at from audit.publish_log where load_date = %s", [SEED_DAY])[0][0]


def maintenance(ops: Ops) -> psycopg.Connection:
    """Another session holding audit.publish_log in ACCESS EXCLUSIVE, its transaction open."""
    conn = psycopg.connect(ops.dsn)
    conn.execute("lock table audit.publish_log in access exclusive mode")
    return conn


def waiting_on_the_log(ops: Ops) -> bool:
    return bool(ops.query("select 1 from pg_stat_activity where wait_event_type = 'Lock'"
                          " and query like '%audit.publish_log%' and pid <> pg_backend_pid()"))


def test_a_run_waiting_on_a_locked_publish_log_names_the_holder_and_gives_up(ops: Ops) -> None:
    published(ops)
    cfg = Path(ops.extra_env["LUIGI_CONFIG_PATH"])
    cfg.write_text(cfg.read_text() + "[publish]\nlock_timeout = 1s\nlock_attempts = 2\nlock_backoff_seconds = 0.5\n")
    locker = maintenance(ops)
    try:
        holder = locker.info.backend_pid
        began = time.monotonic()
        run = ops.luigi(*DAILY, timeout=120)
        took = time.monotonic() - began
    finally:
        locker.close()
    log = run.stderr
    assert run.returncode == 35, log[-3000:]
    assert took < 60, took
    assert f"audit.publish_log locked by pid {holder} " in log, log[-3000:]
    assert "AccessExclusiveLock on audit.publish_log" in log, log[-3000:]
    assert f"LockWaitTimeout: reading which dates are published: audit.publish_log stayed locked by pid {holder}" \
        in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def ctrl_c(env: dict[str, str], ready: Callable[[], bool], what: str, wait: float,
           end: float) -> tuple[int, str, float]:
    """Run the daily command in its own process group, SIGINT the group (a terminal's Ctrl-C) once `ready()`: its exit
    code, output and the seconds it took to end."""
    proc = subprocess.Popen([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", *DAILY], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: ready() or proc.poll() is not None, timeout=wait, what=what)
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        os.killpg(proc.pid, signal.SIGINT)
        began = time.monotonic()
        out, _ = proc.communicate(timeout=end)
        return proc.returncode, out, time.monotonic() - began
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def test_ctrl_c_ends_a_run_waiting_on_a_locked_publish_log(ops: Ops) -> None:
    before = published(ops)
    locker = maintenance(ops)
    try:
        returncode, out, took = ctrl_c(ops.env, lambda: waiting_on_the_log(ops), "the run waiting on audit.publish_log",
                                       wait=120, end=30)
        # the query was cancelled: nothing waits on the lock any more, while it is still held
        assert not waiting_on_the_log(ops)
    finally:
        locker.close()
    assert returncode == 130, out[-3000:]
    assert took < 15, took
    assert "interrupted (Ctrl-C)" in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert ops.query("select published_at from audit.publish_log where load_date = %s", [SEED_DAY]) == [(before,)]


HOLDER = """
import sys, time
from pipeline.serving import locks, pg
conn = pg.connect()
locks.hold(conn, locks.PUBLISH_KEY)
print(conn.info.backend_pid, flush=True)
time.sleep(120)
"""


def test_a_lock_message_names_the_pipeline_process_holding_the_lock_not_only_its_backend(fresh_db) -> None:
    """A task process left behind by a killed `luigi` keeps its transaction: the operator needs its pid, not the
    Postgres backend's, to stop it."""
    with pg.connect() as setup:
        migrations.ensure_schema(setup)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE,
                            text=True)
    try:
        backend = int(proc.stdout.readline())
        with pg.connect() as conn, conn.transaction(), pytest.raises(locks.PipelineLockBusy) as busy:
            locks.hold(conn, locks.PUBLISH_KEY, timeout="1s")
    finally:
        proc.kill()
        proc.communicate()
    said = str(busy.value)
    assert f"pid {backend} (" in said, said
    assert f"application 'ecomm-pipeline' of client process {proc.pid}" in said, said


def test_ctrl_c_during_a_publish_transaction_rolls_it_back_and_ends_the_run(ops: Ops, tmp_path: Path) -> None:
    faults = tmp_path / "faults"
    faults.mkdir()
    returncode, out, took = ctrl_c({**ops.env, "ECOMM_FAULT": "publish.commit:pause", "ECOMM_FAULT_DIR": str(faults)},
                                   (faults / "publish.commit.paused").exists, "the publish paused before its commit",
                                   wait=240, end=60)
    assert returncode == 130, out[-3000:]
    assert took < 30, took
    assert "interrupted (Ctrl-C)" in out, out[-3000:]
    assert ops.query("select count(*) from audit.publish_log") == [(0,)], "the interrupted publish committed nothing"
    assert ops.query("select count(*) from pg_stat_activity where datname = current_database()"
                     " and pid <> pg_backend_pid()") == [(0,)], "a session of the run is left"


def test_reading_the_publish_log_leaves_the_transaction_s_lock_timeout_as_it_was(fresh_db) -> None:
    """The bounded read runs in a savepoint whose SET LOCAL lock_timeout would outlive it: a publish's transaction
    reading the log must wait for its later locks as before."""
    with pg.connect() as conn:
        migrations.ensure_schema(conn)
        conn.commit()
        before = conn.execute("select current_setting('lock_timeout')").fetchone()[0]
        assert publish.published_in(conn, [SEED_DAY]) == set()
        assert conn.execute("select current_setting('lock_timeout')").fetchone()[0] == before


def test_ctrl_c_ends_a_restate_waiting_on_a_locked_publish_log(ops: Ops) -> None:
    published(ops)
    locker = maintenance(ops)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "restate", "--date", str(SEED_DAY), "--source",
                                 "orders"], cwd=REPO, env=ops.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            wait_for(lambda: waiting_on_the_log(ops) or proc.poll() is not None, timeout=120,
                     what="the restate waiting on audit.publish_log")
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            os.killpg(proc.pid, signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        assert not waiting_on_the_log(ops)
    finally:
        locker.close()
    assert proc.returncode == 130, out[-3000:]
    assert "python -m pipeline restate: interrupted (Ctrl-C)" in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
