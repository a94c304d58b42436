"""Where the embedded Postgres's folders are on a production-like box (pipeline.serving.embedded_folders).

The socket folder's old predictable name in /tmp taken first by another user, or a link placed there; a data folder
path with characters pg_ctl's /bin/sh reads (`$(...)` was run) and paths it passes unchanged; parent folders the
server's user cannot traverse (root made them listable by everyone); a data folder that is a link; a port held only
by TIME-WAIT. Real servers, real folders, the real command line.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
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


def _cli(*args: str, pgdata: Path | str | None, port: int, umask: int | None = None,
         **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV}
    env.update(ECOMM_PG_PORT=str(port or free_port()), **extra)
    if pgdata is not None:
        env.update(ECOMM_PG_DATA=str(pgdata))
    return subprocess.run([sys.executable, "-m", "pipeline.serving.pg", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180, check=False,
                          preexec_fn=None if umask is None else lambda: os.umask(umask))


def _socket_dir_of(pgdata: Path, port: int) -> Path:
    """The socket folder postmaster.pid names, as `pg status` says it."""
    said = _cli("status", pgdata=pgdata, port=port)
    assert said.returncode == 0, said.stderr
    return Path(said.stdout.strip().rsplit("socket dir ", 1)[1])


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
@pytest.mark.parametrize("planted", ["another user's folder", "a link"])
def test_the_old_socket_folder_name_taken_first_does_not_stop_a_start(place: Path, planted: str) -> None:
    """/tmp/ecomm-pg-<hash of the data folder> was predictable (the path shows in ps): anyone could take it first and
    every later start was refused, with a "Remove it" another user cannot do in sticky /tmp. Each start now makes its
    own folder (mkdtemp, 0700), names it in postmaster.pid, and a stop removes it."""
    pgdata, port, target = _long(place), free_port(), place / "theirs"
    target.mkdir(mode=0o755)
    old = _socket_folder(pgdata)
    with _planted(old):
        if planted == "a link":
            old.symlink_to(target)
        else:
            old.mkdir()
            old.chmod(0o777)
            os.chown(old, 65534, 65534)  # nobody's
        started = _cli("start", pgdata=pgdata, port=port)
        assert started.returncode == 0, started.stderr
        used = _socket_dir_of(pgdata, port)
        assert f"host={used}" in started.stdout
        info = os.lstat(used)
        owner = pwd.getpwnam(embedded.SYSTEM_USER).pw_uid if ROOT else os.getuid()
        assert used != old and used.parent == Path(tempfile.gettempdir()) and used.name.startswith("ecomm-pg-")
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == owner and stat.S_IMODE(info.st_mode) == 0o700
        assert _cli("stop", pgdata=pgdata, port=port).stdout.strip() == "stopped"
        assert not used.exists(), "left behind after `pg stop`"
        assert old.is_symlink() if planted == "a link" else old.stat().st_uid == 65534, "what was planted is left"
        assert stat.S_IMODE(target.stat().st_mode) == 0o755 and target.stat().st_uid == os.getuid()


def test_as_root_a_temp_folder_pgserver_cannot_traverse_gets_o_x_for_the_socket(place: Path) -> None:
    """TMPDIR under a folder only root may enter (/root/tmp): the socket folder was made there and pgserver could not
    reach it, so the server never came up. Its parents now get o+x, with a warning, as the data folder's do."""
    closed = place / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(closed, 0o700)
    pgdata, port = _long(place), free_port()
    started = _cli("start", pgdata=pgdata, port=port, TMPDIR=str(closed))
    assert started.returncode == 0, started.stderr
    assert _socket_dir_of(pgdata, port).parent == closed
    assert stat.S_IMODE(closed.stat().st_mode) == 0o701, "o+x only: its names stay unlisted"
    assert (f"opened {closed} to traversal by other users (mode 0700 -> 0701, nothing in it listable) so that the"
            " embedded Postgres's user pgserver reaches its socket folder") in started.stderr, started.stderr


# ------------------------------------------------------------------------------------- data folder path
REFUSED = {"x$(touch PWNED)y": "'$('", 'say"what': "'\"'", "back`tick`": "'`'", "a$HOME": "'$H'",
           "a\\$b": "'\\\\$'"}


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_data_path_pg_ctl_s_shell_would_read_is_refused_before_anything_runs(place: Path, name: str) -> None:
    pgdata = place / name / "pg"
    refused = _cli("start", pgdata=pgdata, port=free_port())
    assert refused.returncode == 35, refused.stderr  # a setting's code, as for ECOMM_PG_PORT
    line = refused.stderr.strip()
    assert line == (f"python -m pipeline.serving.pg start: error: ECOMM_PG_DATA {str(pgdata)!r} holds {REFUSED[name]},"
                    " which the embedded Postgres cannot take in its data folder's path (pg_ctl starts it through"
                    " /bin/sh, which reads them): use a path without them, or a link without them to that folder"), line
    assert not (place / name).exists() and not (place / "PWNED").exists() and not Path("PWNED").exists()


def test_the_embedded_dir_setting_is_checked_as_ecomm_pg_data_is(place: Path) -> None:
    cfg, pgdata = place / "luigi.cfg", place / "x$(touch PWNED)" / "pg"
    cfg.write_text(f"[postgres]\nembedded_dir = {pgdata}\n")
    refused = _cli("start", pgdata=None, port=free_port(), LUIGI_CONFIG_PATH=str(cfg))
    assert refused.returncode == 35, refused.stderr
    assert refused.stderr.startswith(f"python -m pipeline.serving.pg start: error: [postgres] embedded_dir"
                                     f" {str(pgdata)!r} holds '$(', which"), refused.stderr
    assert not pgdata.parent.exists() and not (place / "PWNED").exists()


@pytest.mark.parametrize("name", ["cost$", "back\\slash"])
def test_a_path_sh_passes_unchanged_starts(place: Path, name: str) -> None:
    """`$` before `/` and `\\` before a letter stay as they are inside dash's double quotes: they were refused."""
    pgdata, port = place / name / "pg", free_port()
    started = _cli("start", pgdata=pgdata, port=port)
    assert started.returncode == 0, started.stderr
    assert (pgdata / "postmaster.pid").read_text().splitlines()[1] == str(pgdata), "the server runs in that folder"
    assert _cli("stop", pgdata=pgdata, port=port).stdout.strip() == "stopped"


def test_stop_and_status_take_a_path_a_start_refuses(place: Path) -> None:
    """pg_ctl stop and reading postmaster.pid never go through a shell: they were refused, exit 35, too."""
    pgdata = place / "a$HOME" / "pg"
    status = _cli("status", pgdata=pgdata, port=free_port())
    assert (status.returncode, status.stdout.strip()) == (3, f"not running ({pgdata})"), status.stderr
    stopped = _cli("stop", pgdata=pgdata, port=free_port())
    assert (stopped.returncode, stopped.stdout.strip()) == (0, "not running"), stopped.stderr


def test_a_comma_is_refused_only_when_the_socket_sits_in_the_data_folder(place: Path) -> None:
    """It splits Postgres's socket folder list; a socket in /tmp (a long path) never sees it: that path started."""
    short = place / "one,two" / "pg"
    refused = _cli("start", pgdata=short, port=free_port())
    assert refused.returncode == 35, refused.stderr
    assert refused.stderr.strip() == (
        f"python -m pipeline.serving.pg start: error: ECOMM_PG_DATA {str(short)!r} holds ',', and the embedded"
        " Postgres's socket sits in its data folder: Postgres reads a ',' in its socket folder"
        " (unix_socket_directories) as two folders. Use a path without it, or a link without it to that folder")
    port = free_port()
    started = _cli("start", pgdata=_long(place / "three,four"), port=port)
    assert started.returncode == 0, started.stderr
    assert _cli("stop", pgdata=_long(place / "three,four"), port=port).stdout.strip() == "stopped"


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


def _bound_only(port: int) -> socket.socket:
    """A socket bound to `port` that does not listen (a client about to connect from it)."""
    held = socket.socket()
    held.bind(("127.0.0.1", port))
    return held


@pytest.mark.parametrize("holder", ["TIME-WAIT", "bound, not listening"])
def test_a_port_no_server_listens_on_says_what_is_known(tmp_path: Path, holder: str) -> None:
    """`ss` showed no listener, yet start said "in use": Postgres itself cannot bind it either (it binds as the
    probe does). The line said "nothing listens ... TIME-WAIT" of a socket merely bound too, and a fixed range:
    it says what is known, and the range this system lends to outgoing connections."""
    port = free_port()
    held = None
    if holder == "TIME-WAIT":
        _time_wait_on(port)
    else:
        held = _bound_only(port)
    try:
        with pytest.raises(embedded.EmbeddedPortInUse) as caught:
            embedded._pg_ctl_start(tmp_path / "pgdata", port)
    finally:
        if held is not None:
            held.close()
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    assert str(caught.value) == (
        f"port {port} on 127.0.0.1 is in use (no server listens on it; another socket holds it, e.g. a connection in"
        " TIME-WAIT, for about a minute, or an outgoing connection using it as its local port; this system lends"
        f" ports {low}-{high} to outgoing connections, so a port outside that range is not taken this way); set"
        " ECOMM_PG_PORT or [postgres] embedded_port to a free port")


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


def test_root_stops_another_user_s_server_as_its_owner_with_a_clean_shutdown(place: Path) -> None:
    """`stop` as root ran pg_ctl as pgserver (made with useradd if missing), whatever user the server ran as: pg_ctl
    could not read another user's postmaster.pid, so the postmaster was killed by signal (an immediate shutdown,
    crash recovery at the next start). It runs as the data folder's owner now, and never makes a user."""
    home = place / "nobody"
    home.mkdir(mode=0o700)
    os.chown(home, 65534, 65534)
    pgdata, port = home / "pgdata", free_port()
    started = _as_nobody("pipeline.serving.pg", "start", pgdata=pgdata, port=port)
    assert started.returncode == 0, started.stderr
    stopped = _cli("stop", pgdata=pgdata, port=port)
    assert stopped.stdout.strip() == "stopped", stopped.stderr
    assert "by signal" not in stopped.stderr, stopped.stderr
    assert "database system is shut down" in (pgdata / "server.log").read_text(), "a clean (fast) shutdown"
    assert not (pgdata / "postmaster.pid").exists()


def test_as_root_with_umask_077_a_data_folder_under_new_parents_starts(place: Path) -> None:
    """The parents the pipeline makes for the data folder are 0700 under umask 077: pgserver must still reach it."""
    pgdata, port = place / "new" / "deeper" / "pgdata", free_port()
    started = _cli("start", pgdata=pgdata, port=port, umask=0o077)
    assert started.returncode == 0, started.stderr
    for made in (place / "new", place / "new" / "deeper"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o701, f"{made}: o+x only"
    assert _cli("stop", pgdata=pgdata, port=port).stdout.strip() == "stopped"


def embedded_running(pgdata: Path) -> bool:
    return (pgdata / "postmaster.pid").exists()


# ------------------------------------------------------------------------------------- socket folder leaks
def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def test_a_crashed_server_s_socket_folder_goes_at_the_next_start_and_at_stop(place: Path) -> None:
    """Each start makes its own socket folder: a postmaster killed -9 left its folder (socket and lock inside) and
    nothing read its name again, one folder per crash."""
    pgdata, port = _long(place), free_port()
    assert _cli("start", pgdata=pgdata, port=port).returncode == 0
    first = _socket_dir_of(pgdata, port)
    os.kill(_postmaster_pid(pgdata), signal.SIGKILL)
    _wait_gone(first / f".s.PGSQL.{port}.lock", pgdata)
    again = _cli("start", pgdata=pgdata, port=port)
    assert again.returncode == 0, again.stderr
    second = _socket_dir_of(pgdata, port)
    assert second != first and not first.exists(), "the dead server's socket folder was left"
    os.kill(_postmaster_pid(pgdata), signal.SIGKILL)
    _wait_gone(second / f".s.PGSQL.{port}.lock", pgdata)
    assert _cli("stop", pgdata=pgdata, port=port).stdout.strip() == "not running"
    assert not second.exists(), "`pg stop` of a dead server left its socket folder"


def _wait_gone(lock: Path, pgdata: Path) -> None:
    """Until the killed postmaster is reaped (its children exit): `status` then says not running."""
    deadline = time.monotonic() + 30
    while _cli("status", pgdata=pgdata, port=0).returncode == 0:
        assert time.monotonic() < deadline, "the killed postmaster still looks alive"
        time.sleep(0.3)
    assert lock.exists(), "a killed postmaster removes nothing: the test would prove nothing"


def test_a_socket_folder_is_removed_by_a_stop_with_another_temp_folder(place: Path) -> None:
    """cron (no TMPDIR) stops what a login shell (pam_tmpdir's /tmp/user/0) started: the folder stayed."""
    tmp = place / "shell-tmp"
    tmp.mkdir(mode=0o711)
    os.chmod(tmp, 0o711)
    pgdata, port = _long(place), free_port()
    assert _cli("start", pgdata=pgdata, port=port, TMPDIR=str(tmp)).returncode == 0
    used = _socket_dir_of(pgdata, port)
    assert used.parent == tmp
    assert _cli("stop", pgdata=pgdata, port=port).stdout.strip() == "stopped"
    assert not used.exists()


def test_under_umask_0177_the_socket_folder_is_0700_and_the_server_starts(place: Path) -> None:
    """mkdtemp's 0700 less the umask was 0600: as root the start failed saying the folder "was replaced", and left
    it; as another user the server could not enter its own socket folder."""
    pgdata, port = _long(place), free_port()
    before = set(Path(tempfile.gettempdir()).glob("ecomm-pg-*"))
    started = _cli("start", pgdata=pgdata, port=port, umask=0o177)
    assert started.returncode == 0, started.stderr
    used = _socket_dir_of(pgdata, port)
    assert stat.S_IMODE(used.stat().st_mode) == 0o700
    assert _cli("stop", pgdata=pgdata, port=port).stdout.strip() == "stopped"
    assert set(Path(tempfile.gettempdir()).glob("ecomm-pg-*")) == before


def _stale_pid_file(pgdata: Path, pid: int, socket_folder: Path) -> None:
    """A postmaster.pid as a dead (or foreign) server left it, naming `socket_folder` on its fifth line."""
    pgdata.mkdir(parents=True, exist_ok=True)
    (pgdata / "PG_VERSION").write_text("16\n")
    (pgdata / "postmaster.pid").write_text(f"{pid}\n{pgdata}\n1700000000\n5\n{socket_folder}\n127.0.0.1\n")


def test_a_postmaster_pid_naming_a_link_touches_nothing_behind_it(place: Path) -> None:
    """postmaster.pid is the server's user's to write: a fifth line naming `ecomm-pg-x`, a link to another folder,
    made stop (and the next start) unlink the socket and lock files there."""
    victim = place / "victim"
    victim.mkdir()
    (victim / ".s.PGSQL.5.lock").write_text("999999\n")
    (victim / ".s.PGSQL.5").write_text("not ours")
    link = place / "ecomm-pg-planted"
    link.symlink_to(victim)
    pgdata = place / "pgdata"
    _stale_pid_file(pgdata, 999999, link)
    assert _cli("stop", pgdata=pgdata, port=free_port()).stdout.strip() == "not running"
    assert sorted(p.name for p in victim.iterdir()) == [".s.PGSQL.5", ".s.PGSQL.5.lock"]
    assert link.is_symlink()

