"""Where the embedded Postgres's folders are on a production-like box (pipeline.serving.embedded_folders).

A socket folder in /tmp that another user made first, or a link placed at its name; a data folder path with
characters pg_ctl's /bin/sh reads (`$(...)` was run); parent folders the server's user cannot traverse (root
made them listable by everyone); a data folder that is a link; a port held only by TIME-WAIT. Real servers,
real folders, the real command line.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.serving import embedded
from tests.support.paths import REPO
from tests.support.postgres import PG_ENV
from tests.support.processes import free_port

ROOT = os.geteuid() == 0


@pytest.fixture
def place() -> Iterator[Path]:
    """A private folder other users may traverse (not list), removed after with any server still in it."""
    root = Path(tempfile.mkdtemp(prefix="ecomm-emf-"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        for pgdata in [p for p in root.rglob("PG_VERSION")]:
            _cli("stop", pgdata=pgdata.parent, port=0)
        shutil.rmtree(root, ignore_errors=True)


def _cli(*args: str, pgdata: Path | str, port: int) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV}
    env.update(ECOMM_PG_DATA=str(pgdata), ECOMM_PG_PORT=str(port or free_port()))
    return subprocess.run([sys.executable, "-m", "pipeline.serving.pg", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


def _long(place: Path) -> Path:
    """A data folder whose socket path does not fit in sun_path: the socket goes to /tmp."""
    pgdata = place / ("d" * 90) / "pgdata"
    assert len(str(pgdata / ".s.PGSQL.54320")) > 108
    return pgdata


def _socket_folder(pgdata: Path) -> Path:
    return Path(tempfile.gettempdir()) / f"ecomm-pg-{hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]}"


@contextlib.contextmanager
def _planted(path: Path) -> Iterator[None]:
    try:
        yield
    finally:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)


# ------------------------------------------------------------------------------------- socket folder
def test_a_socket_folder_another_user_made_first_is_refused_in_one_line(place: Path) -> None:
    """Another user's folder, mode 777: they could replace the socket the pipeline connects through as superuser."""
    pgdata = _long(place)
    short = _socket_folder(pgdata)
    with _planted(short):
        short.mkdir()
        short.chmod(0o777)
        if ROOT:
            os.chown(short, 65534, 65534)  # nobody's
        refused = _cli("start", pgdata=pgdata, port=free_port())
        if not ROOT:  # only root can give a folder away; one of ours that others may write is closed instead
            assert refused.returncode == 0 and stat.S_IMODE(short.stat().st_mode) == 0o700, refused.stderr
            return
        assert refused.returncode == 1, refused.stderr
        line = refused.stderr.strip()
        assert line == (f"error: the embedded Postgres's socket folder {short} cannot be used safely ({short} belongs"
                        f" to user id 65534, not to this user): it is in {short.parent} because the socket path in"
                        f" {pgdata} would be too long. Remove {short} if no one of yours made it, or set ECOMM_PG_DATA"
                        " to a shorter path (the socket then sits in the data folder)"), line
        assert short.stat().st_uid == 65534 and stat.S_IMODE(short.stat().st_mode) == 0o777, "left as found"
        assert not list(short.iterdir())


def test_a_link_at_the_socket_folder_s_name_is_refused_and_its_target_left_alone(place: Path) -> None:
    pgdata, target = _long(place), place / "theirs"
    target.mkdir(mode=0o755)
    short = _socket_folder(pgdata)
    with _planted(short):
        short.symlink_to(target)
        refused = _cli("start", pgdata=pgdata, port=free_port())
        assert refused.returncode == 1 and f"{short} is a link, not a folder this user made" in refused.stderr, \
            refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert target.stat().st_uid == os.getuid() and stat.S_IMODE(target.stat().st_mode) == 0o755


def test_the_socket_folder_in_tmp_is_private_and_removed_on_stop(place: Path) -> None:
    pgdata = _long(place)
    short = _socket_folder(pgdata)
    with _planted(short):
        started = _cli("start", pgdata=pgdata, port=free_port())
        assert started.returncode == 0, started.stderr
        info = os.lstat(short)
        owner = pwd.getpwnam(embedded.SYSTEM_USER).pw_uid if ROOT else os.getuid()
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == owner and stat.S_IMODE(info.st_mode) == 0o700
        assert f"host={short}" in started.stdout
        stopped = _cli("stop", pgdata=pgdata, port=0)
        assert stopped.stdout.strip() == "stopped", stopped.stderr
        assert not short.exists(), "left behind after `pg stop`"


# ------------------------------------------------------------------------------------- data folder path
@pytest.mark.parametrize("name", ["x$(touch PWNED)y", 'say"what', "back`tick`", "a$HOME", "one,two", "back\\slash"])
def test_a_data_path_pg_ctl_s_shell_would_read_is_refused_before_anything_runs(place: Path, name: str) -> None:
    pgdata = place / name / "pg"
    refused = _cli("start", pgdata=pgdata, port=free_port())
    assert refused.returncode == 35, refused.stderr  # a setting's code, as for ECOMM_PG_PORT
    line = refused.stderr.strip()
    assert line.startswith(f"python -m pipeline.serving.pg start: error: ECOMM_PG_DATA {str(pgdata)!r} holds "), line
    assert line.endswith("which the embedded Postgres cannot take in its data folder's path (pg_ctl hands it to"
                         " /bin/sh): use a path without them, or a link without them to that folder"), line
    assert not (place / name).exists() and not (place / "PWNED").exists() and not Path("PWNED").exists()


def test_a_link_without_those_characters_is_the_way_to_use_such_a_folder(place: Path) -> None:
    real = place / "cost$(touch PWNED)"
    real.mkdir()
    link = place / "pg"
    link.symlink_to(real)
    started = _cli("start", pgdata=link, port=free_port())
    assert started.returncode == 0, started.stderr
    assert (real / "PG_VERSION").exists() and link.is_symlink()
    assert not (place / "PWNED").exists() and not (real / "PWNED").exists()


# ------------------------------------------------------------------------------ data folder is a link
def test_a_data_folder_that_links_to_an_empty_folder_is_initialised_there(place: Path) -> None:
    """It was refused: "is not empty and holds no Postgres data folder (no PG_VERSION) ... (Not a directory)"."""
    real, link = place / "disk" / "pg", place / "pgdata"
    real.mkdir(parents=True, mode=0o700)
    link.symlink_to(real)
    port = free_port()
    started = _cli("start", pgdata=link, port=port)
    assert started.returncode == 0, started.stderr
    assert link.is_symlink() and (real / "PG_VERSION").exists()
    assert _cli("stop", pgdata=link, port=port).stdout.strip() == "stopped"
    again = _cli("start", pgdata=link, port=port)  # initialised once: the second start serves the same folder
    assert again.returncode == 0 and "initialising" not in again.stderr, again.stderr


# ------------------------------------------------------------------------------ parents, as root
def test_as_root_a_parent_other_users_cannot_traverse_gets_o_x_only_and_a_warning(place: Path) -> None:
    """pgserver's helper chmod'ed every parent up to / to o+rx, silently (/root became listable by everyone). A
    checkout in /root (a container's root) must still start: the folder gets traversal only, and says so."""
    closed = place / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(closed, 0o700)  # whatever the umask
    pgdata = closed / "pgdata"
    port = free_port()
    started = _cli("start", pgdata=pgdata, port=port)
    try:
        assert started.returncode == 0, started.stderr
        if not ROOT:  # the server runs as this user, who may traverse its own folder: nothing to open
            assert stat.S_IMODE(closed.stat().st_mode) == 0o700
            return
        assert stat.S_IMODE(closed.stat().st_mode) == 0o701, "o+x only: its names stay unlisted"
        assert (f"opened {closed} to traversal by other users (mode 0700 -> 0701, nothing in it listable) so that the"
                f" embedded Postgres's user pgserver reaches its data folder {pgdata}") in started.stderr, started.stderr
        assert stat.S_IMODE(place.stat().st_mode) == 0o711, "a folder pgserver could traverse is left as it was"
    finally:
        _cli("stop", pgdata=pgdata, port=port)


# ------------------------------------------------------------------------------------- port
def _time_wait_on(port: int) -> None:
    """A connection that closed first from `port`'s side, without SO_REUSEADDR: TIME-WAIT holds the port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.socket() as client:
            client.bind(("127.0.0.1", port))
            client.connect(listener.getsockname())
            accepted, _ = listener.accept()
            client.close()  # the side that closes first keeps its port in TIME-WAIT
            accepted.close()
    time.sleep(0.1)


def test_a_port_held_only_by_time_wait_says_so_and_what_to_do(tmp_path: Path) -> None:
    """`ss` showed no listener, yet start said "in use": Postgres itself cannot bind it either (it binds as the
    probe does), so the line says why and that a port outside the ephemeral range is not taken this way."""
    port = free_port()
    _time_wait_on(port)
    with pytest.raises(embedded.EmbeddedPortInUse) as caught:
        embedded._pg_ctl_start(tmp_path / "pgdata", port)
    assert str(caught.value) == (
        f"port {port} on 127.0.0.1 is in use (nothing listens on it: closed connections in TIME-WAIT hold it for"
        " about a minute; Linux gives ports 32768-60999 to outgoing connections, so a port outside that range is not"
        " taken this way); set ECOMM_PG_PORT or [postgres] embedded_port to a free port")


def test_a_port_a_closed_server_connection_left_in_time_wait_starts(place: Path) -> None:
    """The listener side closed first (a stopped server, a BI tool connected): Postgres binds it at once."""
    port = free_port()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()
            client.recv(1)
    started = _cli("start", pgdata=place / "pgdata", port=port)
    assert started.returncode == 0, started.stderr


# ------------------------------------------------------------------------------ another user, root's server
# The interpreter may live where only root may look (/root/.pyenv): import first, then become `nobody`.
AS_NOBODY = """
import importlib, os, runpy, sys
for name in ("pipeline.serving.pg", "pipeline.__main__", "pipeline.cli", "pipeline.tasks.freshness",
             "pipeline.tasks.run_audit", "psycopg", "pgserver", "pgserver.utils"):
    importlib.import_module(name)
os.setgroups([]); os.setgid(65534); os.setuid(65534)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def _as_nobody(*args: str, pgdata: Path, port: int) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV}
    env.update(ECOMM_PG_DATA=str(pgdata), ECOMM_PG_PORT=str(port), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-W", "ignore", "-c", AS_NOBODY, *args], cwd="/", env=env,
                          capture_output=True, text=True, timeout=180, check=False)


def test_another_user_of_a_server_root_started_gets_one_line_and_bi_its_dsn(place: Path) -> None:
    """Root's data folder is pgserver's, mode 0700: `pg start`/`dsn`/`status`/`stop` printed PermissionError
    tracebacks and `freshness` said "not running" of a server that runs; `dsn --bi` needs no data folder."""
    pgdata, port = place / "pgdata", free_port()
    if not ROOT:  # only root can start a server in a folder another user cannot open: one of ours, closed to us
        pgdata.mkdir(mode=0o000)
        said = _cli("status", pgdata=pgdata, port=port)
        assert said.returncode == 1 and "cannot use it" in said.stderr and "Traceback" not in said.stderr, said.stderr
        return
    assert _cli("start", pgdata=pgdata, port=port).returncode == 0
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV}
    env.update(ECOMM_PG_DATA=str(pgdata), ECOMM_PG_PORT=str(port))
    migrated = subprocess.run([sys.executable, "-m", "pipeline", "migrate"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
    assert migrated.returncode == 0, migrated.stderr  # bi_reader is made by the migrations
    line = (f"the embedded Postgres's data folder {pgdata} belongs to pgserver (mode 0700) and user nobody cannot use"
            " it: run this as root (started by root, the server runs as pgserver), or set ECOMM_PG_DATA to a folder of"
            " your own (or ECOMM_PG_DSN to another Postgres)")
    for command in ("start", "dsn", "status", "stop"):
        refused = _as_nobody("pipeline.serving.pg", command, pgdata=pgdata, port=port)
        assert (refused.returncode, refused.stderr.strip()) == (1, f"error: {line}"), refused.stderr
    fresh = _as_nobody("pipeline", "freshness", pgdata=pgdata, port=port)
    assert (fresh.returncode, fresh.stdout + fresh.stderr.strip()) == (3, f"UNKNOWN: {line}"), fresh.stdout
    bi = _as_nobody("pipeline.serving.pg", "dsn", "--bi", pgdata=pgdata, port=port)
    assert (bi.returncode, bi.stdout.strip()) == (0, f"postgresql://bi_reader@127.0.0.1:{port}/ecomm"), bi.stderr
    assert embedded_running(pgdata), "another user's commands left root's server as it was"


def embedded_running(pgdata: Path) -> bool:
    return (pgdata / "postmaster.pid").exists()
