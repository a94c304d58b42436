"""pipeline.serving.data_folder: a first start killed during initdb, and a failed start (real servers, real kills)."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import psycopg
import pytest

from pipeline import cli
from pipeline.serving import embedded
from pipeline.tasks import runbook, unscheduled
from tests.support.paths import REPO
from tests.support.postgres import PG_ENV, EmbeddedServer, embedded_in_temp_dir
from tests.support.processes import free_port


def _env(server: EmbeddedServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV}
    env.update(ECOMM_PG_DATA=str(server.data_dir), ECOMM_PG_PORT=str(server.port))
    return env


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.serving.pg", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180, check=False)


def _postgres_in(root: Path) -> list[str]:
    """Every live postgres (or initdb) process working in, or given a folder under, `root`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and Path(args[0]).name in ("postgres", "initdb") and (
                cwd.startswith(str(root)) or any(arg.startswith(str(root)) for arg in args)):
            found.append(f"{entry.name}: {' '.join(args)}")
    return found


def _kill_when_initdb_wrote_pg_version(process: subprocess.Popen, root: Path, delay: float) -> None:
    """SIGKILL the process group of `process` `delay` seconds after initdb wrote a PG_VERSION anywhere under `root`
    (initdb writes it first of all its files, then bootstraps): the crash probe's moment, made deterministic."""
    deadline = time.monotonic() + 120
    while not any(root.rglob("PG_VERSION")):
        assert process.poll() is None, f"it ended before initdb began: {process.communicate()}"
        assert time.monotonic() < deadline, "initdb never began"
        time.sleep(0.005)
    time.sleep(delay)
    assert process.poll() is None, "initdb finished before the kill: the test killed nothing"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 30
    while _postgres_in(root) and time.monotonic() < deadline:  # the group's initdb and postgres --boot die too
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_a_first_start_killed_during_initdb_does_not_break_the_next_start(delay: float) -> None:
    with embedded_in_temp_dir() as server:
        env, root = _env(server), server.data_dir.parent
        first = subprocess.Popen([sys.executable, "-m", "pipeline.serving.pg", "dsn"], cwd=REPO, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _kill_when_initdb_wrote_pg_version(first, root, delay)
        try:
            again = _cli("dsn", env=env)
            assert again.returncode == 0, again.stderr
            with psycopg.connect(again.stdout.strip()) as conn:
                assert conn.execute("select count(*) from pg_database where datname = 'postgres'").fetchone() == (1,)
            assert not [p for p in root.iterdir() if p != server.data_dir], "the interrupted initdb's folder is gone"
        finally:
            _cli("stop", env=env)
        assert _postgres_in(root) == []


def _half_initialised_in_place(server: EmbeddedServer) -> None:
    """A data folder as a first start killed during initdb left it before initialisation was atomic: initdb in place."""
    server.data_dir.mkdir(mode=0o700)
    embedded._prepare_for_system_user(server.data_dir)
    initdb = subprocess.Popen([str(embedded.binary("initdb")), "-D", str(server.data_dir), "--auth=trust", "-U",
                               "postgres"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, **embedded._run_as())
    _kill_when_initdb_wrote_pg_version(initdb, server.data_dir.parent, 0.0)
    assert (server.data_dir / "PG_VERSION").exists()


@pytest.mark.slow
def test_a_folder_whose_initdb_never_finished_nor_served_is_initialised_again() -> None:
    with embedded_in_temp_dir() as server:
        _half_initialised_in_place(server)
        env = _env(server)
        try:
            started = _cli("dsn", env=env)
            assert started.returncode == 0, started.stderr
            assert "initdb that never finished" in started.stderr
        finally:
            _cli("stop", env=env)
        assert _postgres_in(server.data_dir.parent) == []


@pytest.mark.slow
def test_a_failed_start_leaves_no_postmaster_and_says_why_and_what_to_do_in_its_first_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with embedded_in_temp_dir() as server:
        _half_initialised_in_place(server)
        (server.data_dir / "postmaster.opts").write_text("postgres\n")  # a start was tried on it: it may hold data
        env = _env(server)
        try:
            failed = _cli("dsn", env=env)
            assert failed.returncode == 1
            first = failed.stderr.strip().splitlines()[-1] if "error: " not in failed.stderr else next(
                line for line in failed.stderr.splitlines() if line.startswith("error: "))
            assert str(server.data_dir) in first and "could not open file" in first, first  # the server log's cause
            assert f"remove {server.data_dir} and start again" in first, first
            assert (server.data_dir / "PG_VERSION").exists(), "a folder that may hold data is never removed"
            assert _postgres_in(server.data_dir.parent) == [], "the failed start left a postmaster running"
            # a run that could not schedule DailyPipeline for it: its summary line keeps the cause, the runbook the fix
            server.env(monkeypatch, "ecomm")
            with pytest.raises(embedded.EmbeddedServerError) as raised:
                embedded.start()
            said = unscheduled.error_line("".join(traceback.format_exception(raised.value)))
            assert said.startswith("EmbeddedServerError: ") and "could not open file" in cli.shortened(said), said
            assert runbook.remedy_for_text(said) is not None and runbook.remedy_for(raised.value) is not None
        finally:
            _cli("stop", env=env)


def test_stop_ends_a_postmaster_that_answers_no_signal_but_sigkill(tmp_path: Path) -> None:
    with embedded_in_temp_dir() as server:
        env, root = _env(server), server.data_dir.parent
        (tmp_path / "luigi.cfg").write_text("[postgres]\nstart_timeout = 3\n")  # pg_ctl gives up after 3 s
        env["LUIGI_CONFIG_PATH"] = str(tmp_path / "luigi.cfg")
        assert _cli("start", env=env).returncode == 0
        pid = embedded._postmaster(server.data_dir)["pid"]
        os.kill(pid, signal.SIGSTOP)  # as deaf as a postmaster in a crash-and-restart loop: pg_ctl cannot stop it
        try:
            stopped = _cli("stop", env=env)
            assert (stopped.returncode, stopped.stdout.strip()) == (0, "stopped"), stopped.stderr
            deadline = time.monotonic() + 30
            while _postgres_in(root) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _postgres_in(root) == []
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        del env["LUIGI_CONFIG_PATH"]  # crash recovery may take longer than 3 s on a busy machine
        started = _cli("start", env=env)  # no lock file of the killed postmaster stands in the way
        assert started.returncode == 0, started.stderr
        _cli("stop", env=env)
        assert _postgres_in(root) == []


def test_only_a_postgres_of_the_data_folder_is_ever_killed(tmp_path: Path) -> None:
    from pipeline.serving import data_folder

    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    other = subprocess.Popen(["sleep", "60"], cwd=pgdata)
    try:  # a pid file naming a process that is no postgres of this folder (a reused pid): never signalled
        (pgdata / "postmaster.pid").write_text(f"{other.pid}\n{pgdata}\n0\n5432\n{pgdata}\n\n\nready\n")
        assert data_folder.kill_postmaster(pgdata, wait=0.1) is None
        assert other.poll() is None
        assert (pgdata / "postmaster.pid").exists()
    finally:
        other.kill()
        other.wait()


def test_lock_files_stay_while_anything_answers_where_postmaster_pid_says_the_server_listens(tmp_path: Path) -> None:
    """/proc may misjudge a running server (a command line it may not read, a folder renamed under it): its lock files
    were removed on /proc's word alone, so Postgres shut down and a second server started. While the Unix socket or
    the TCP address postmaster.pid names accepts connections they stay; once nothing answers, a pid another process
    took is no server and they go."""
    from pipeline.serving import data_folder

    pgdata, sockets = tmp_path / "pgdata", tmp_path / "sockets"
    pgdata.mkdir()
    sockets.mkdir()
    port = free_port()
    other = subprocess.Popen(["sleep", "60"])  # alive, and no postgres of the folder
    locks = [pgdata / "postmaster.pid", pgdata / f".s.PGSQL.{port}.lock"]
    try:
        for folder, listener in ((sockets, socket.socket()), (pgdata, socket.socket(socket.AF_UNIX))):
            locks[0].write_text(f"{other.pid}\n{pgdata}\n0\n{port}\n{folder}\n127.0.0.1\n  1 2\nready\n")
            locks[1].write_text(f"{other.pid}\n")
            with listener:
                listener.bind(str(pgdata / f".s.PGSQL.{port}") if folder == pgdata else ("127.0.0.1", port))
                listener.listen()
                data_folder.clear_stale_locks(pgdata)
                assert all(lock.exists() for lock in locks), folder
        assert (pgdata / f".s.PGSQL.{port}").exists()  # the socket file stays, as after a crash: nothing answers on it
        data_folder.clear_stale_locks(pgdata)
        assert not any(lock.exists() for lock in locks)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_pid_a_crashed_server_left_and_another_process_took_is_no_server(tmp_path: Path) -> None:
    """A server killed -9 left postmaster.pid behind, and its pid went to another process: that process was taken for
    the server, so `stop` had pg_ctl signal it and failed, `status` said running and `start` waited for it to accept
    connections. Postgres's own lock check takes a live process of its user for a server: the stand-in runs as it."""
    from pipeline.serving import system_user

    with embedded_in_temp_dir() as server:
        env, root, pgdata = _env(server), server.data_dir.parent, server.data_dir
        (tmp_path / "luigi.cfg").write_text("[postgres]\nstart_timeout = 20\n")  # a wait for the stand-in ends
        env["LUIGI_CONFIG_PATH"] = str(tmp_path / "luigi.cfg")
        assert _cli("start", env=env).returncode == 0
        os.kill(embedded._postmaster(pgdata)["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _postgres_in(root) and time.monotonic() < deadline:  # its children see it die and exit
            time.sleep(0.1)
        assert _postgres_in(root) == []
        other = subprocess.Popen(["sleep", "300"], **system_user.run_as(system_user.for_start()))
        try:
            locks = [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")]
            assert len(locks) == 2, "a killed postmaster removes no lock file: the test would prove nothing"
            for lock in locks:  # the pid they name is the other process's now
                lock.write_text("\n".join([str(other.pid), *lock.read_text().splitlines()[1:]]) + "\n")

            status = _cli("status", env=env)
            assert (status.returncode, status.stdout.strip()) == (3, f"not running ({pgdata})"), status.stdout
            stopped = _cli("stop", env=env)
            assert (stopped.returncode, stopped.stdout.strip()) == (0, "not running"), stopped.stderr
            assert other.poll() is None, "stop signalled a process that is no server"
            started = _cli("start", env=env)
            assert started.returncode == 0, started.stderr
            with psycopg.connect(started.stdout.strip()) as conn:
                assert conn.execute("select pg_backend_pid() > 0").fetchone() == (True,)
            assert other.poll() is None
            assert _cli("status", env=env).stdout.startswith("running: pid ")
            stopped = _cli("stop", env=env)
            assert (stopped.returncode, stopped.stdout.strip()) == (0, "stopped"), stopped.stderr
            assert other.poll() is None
        finally:
            other.kill()
            other.wait()
            _cli("stop", env=env)
        assert _postgres_in(root) == []
