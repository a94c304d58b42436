"""The embedded development PostgreSQL: the server the pipeline starts when no other is configured.

The binaries are PostgreSQL 16's, bundled in the `pgserver` wheel; this module runs them through
pgserver's public command functions (`pgserver.initdb`, `pgserver.pg_ctl`, `pgserver.pg_config`, ...)
and its `pgserver.utils` permission helpers, but keeps the lifecycle itself: pgserver's own
`get_server` listens on a socket only, keeps its lock under XDG_RUNTIME_DIR and stops the server
when the last Python process using it exits, while the pipeline's server outlives its runs and
serves BI tools on 127.0.0.1.

Its data directory lives in the project (`.pgdata` in the checkout, or the current directory for an
installed wheel; `ECOMM_PG_DATA` or [postgres] embedded_dir) and persists between runs. It is
started on demand and listens on a Unix socket (in its data directory when the path fits) and on
127.0.0.1:<port> (`ECOMM_PG_PORT` or [postgres] embedded_port), with trust authentication for local
connections only. A server already running in the data directory on another port is an error naming
both settings (EmbeddedPortMismatch), never adopted silently nor restarted. It is a development
server: no password is ever set by the repository. The database is [postgres] database
(`ECOMM_PG_DATABASE` overrides it), created if missing.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import socket
import stat
import subprocess
import time
import urllib.parse
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from psycopg import sql

from pipeline import resources
from pipeline.serving import data_folder, embedded_folders, system_user
from pipeline.serving.data_folder import (
    LOG_FILE,
    EmbeddedDiskFull,
    EmbeddedPortInUse,
    EmbeddedPortInvalid,
    EmbeddedPortMismatch,
    EmbeddedServerError,
)
from pipeline.serving.settings import postgres as postgres_settings
from pipeline.serving.system_user import SYSTEM_USER, ensure_system_user  # noqa: F401 - the names callers use

logger = logging.getLogger(__name__)

ENV_DATA = "ECOMM_PG_DATA"
ENV_PORT = "ECOMM_PG_PORT"
ENV_DATABASE = "ECOMM_PG_DATABASE"


def pgserver_module() -> ModuleType:
    """The `pgserver` package, imported quietly: its import probes XDG_RUNTIME_DIR, which we never use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every command's full output
    return pgserver


@functools.cache
def bin_dir() -> Path:
    """The folder of the bundled PostgreSQL binaries (pg_config --bindir: pgserver exports no constant)."""
    return Path(pgserver_module().pg_config(["--bindir"]).strip())


def binary(name: str) -> Path:
    """A bundled PostgreSQL program (psql, pg_isready, ...)."""
    return bin_dir() / name


# ---------------------------------------------------------------------------------------- settings
def data_dir() -> Path:
    """The data directory: ECOMM_PG_DATA, else [postgres] embedded_dir (relative: to resources.work_dir())."""
    return data_origin()[0]


def data_origin() -> tuple[Path, str, Path | None]:
    """The data directory, the setting that gave it as said to a person (`ECOMM_PG_DATA='pgdata'`, `[postgres]
    embedded_dir = .pgdata`) and the folder a relative value was resolved against (None: it was absolute): the
    current folder for ECOMM_PG_DATA, resources.work_dir() for embedded_dir."""
    raw = os.environ.get(ENV_DATA, "").strip()
    value = raw or postgres_settings().embedded_dir
    given = f"{ENV_DATA}={raw!r}" if raw else f"[postgres] embedded_dir = {value}"
    path = Path(value).expanduser()
    if path.is_absolute():
        return path, given, None
    base = Path.cwd() if raw else resources.work_dir()
    return base / path, given, base


def data_setting() -> str:
    """Where the data folder's path was given: ECOMM_PG_DATA, else [postgres] embedded_dir."""
    return ENV_DATA if os.environ.get(ENV_DATA, "").strip() else "[postgres] embedded_dir"


def configured_port() -> int:
    """The TCP port (and socket name): ECOMM_PG_PORT, else [postgres] embedded_port."""
    raw = os.environ.get(ENV_PORT, "").strip()
    value = raw or str(postgres_settings().embedded_port)
    if not value.isdigit() or not 0 < int(value) < 65536:
        said = f"{ENV_PORT}={raw!r}" if raw else f"[postgres] embedded_port = {value}"
        raise EmbeddedPortInvalid(f"{said} is not a TCP port (1-65535): set it to a free one")
    return int(value)


def port_agrees(pgdata: Path, running: int) -> None:
    """Refuse a server that runs on another port than the configured one (EmbeddedPortMismatch): it was adopted
    silently, so BI tools and `ECOMM_PG_PORT` pointed at a port nobody listened on. A server is never restarted for
    it: BI sessions and other runs may be using it."""
    configured = configured_port()
    if running != configured:
        port_from = ENV_PORT if os.environ.get(ENV_PORT, "").strip() else "[postgres] embedded_port"
        data_from = data_setting()
        raise EmbeddedPortMismatch(
            f"the embedded Postgres in {pgdata} ({data_from}) runs on port {running}, but {port_from} is {configured}:"
            f" set {port_from} to {running}, or stop it (`python -m pipeline.serving.pg stop`, which ends its sessions)"
            f" so that it starts on {configured}")


def database() -> str:
    """The database the pipeline uses on the embedded server: ECOMM_PG_DATABASE, else [postgres]."""
    return os.environ.get(ENV_DATABASE, "").strip() or postgres_settings().database


# ------------------------------------------------------------------------------ running as root
_is_root = system_user.is_root


def _run_as() -> dict[str, Any]:
    """subprocess.run's arguments for initdb and a start: as root, the system user (made if missing)."""
    return system_user.run_as(system_user.for_start())


_prepared_binaries = False


def _prepare_for_system_user(pgdata: Path) -> None:
    """As root, let the unprivileged `pgserver` user own the data dir and run the binaries."""
    global _prepared_binaries
    if not _is_root():
        return
    pgserver_module()
    from pgserver.utils import ensure_folder_permissions

    entry = system_user.for_start()
    embedded_folders.open_for(pgdata, entry, "its data folder")
    if not _prepared_binaries:
        embedded_folders.open_for(bin_dir(), entry, "the bundled Postgres programs in")
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(bin_dir(), read | execute)
        ensure_folder_permissions(bin_dir().parent / "lib", read)
        _prepared_binaries = True
    if pgdata.stat().st_uid != entry.pw_uid:
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)


# ------------------------------------------------------------------------------- server state
_file_lock = data_folder.file_lock
_postmaster = data_folder.postmaster


def _ready(socket_dir: str, port: int) -> bool:
    # A running server (every run after the first) answers a connection at once: no pg_isready process,
    # no pgserver import (~0.2 s on a `luigi` command's critical path). Anything else: ask pg_isready.
    with contextlib.suppress(psycopg.Error):
        with psycopg.connect(socket_dsn(socket_dir, port, "postgres"), connect_timeout=2):
            return True
    # Run directly, not through pgserver.pg_isready, which logs every "not ready yet" as an error.
    result = subprocess.run(
        [str(binary("pg_isready")), "-q", "-h", socket_dir, "-p", str(port), "-t", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )
    return result.returncode == 0


def _port_free(port: int) -> bool:
    """Whether Postgres could listen on 127.0.0.1:port: bound as Postgres binds, with SO_REUSEADDR, so the
    TIME_WAIT connections a stopped server leaves behind (a BI tool was connected) do not count as in use."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _held_how(port: int) -> str:
    """Why a port no server listens on cannot be bound: another socket holds it (`ss -tan` shows which), and Postgres,
    binding as the probe does, would fail the same way. Only what is known is said."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        return ""
    lent = ""
    with contextlib.suppress(OSError, ValueError):
        low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        lent = (f"; this system lends ports {low}-{high} to outgoing connections, so a port outside that range is not"
                " taken this way")
    return (" (no server listens on it; another socket holds it, e.g. a connection in TIME-WAIT, for about a minute,"
            f" or an outgoing connection using it as its local port{lent})")


def socket_dsn(socket_dir: str, port: int, db: str) -> str:
    """The superuser's DSN to `db` over the server's Unix socket."""
    user = postgres_settings().superuser
    host = urllib.parse.quote(str(socket_dir), safe="/")
    return f"postgresql://{urllib.parse.quote(user)}@/{urllib.parse.quote(db)}?host={host}&port={port}"


# ---------------------------------------------------------------------------------- lifecycle
def _initdb(pgdata: Path) -> None:
    """initdb into `pgdata` (data_folder.initialise renames it into place once this returned)."""
    logger.info("initialising embedded Postgres data directory %s", pgdata)
    try:
        pgserver_module().initdb(
            ["--auth=trust", "--encoding=UTF8", "--locale=C", "-U", postgres_settings().superuser],
            pgdata=pgdata, **_run_as(), timeout=postgres_settings().start_timeout * 2,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        raise EmbeddedServerError(f"initdb failed for {pgdata}: {err}; see the log above") from err


def _owners(pgdata: Path) -> set[int]:
    """Who may own a socket folder of `pgdata`'s server: this user, and the server's (the data folder's owner)."""
    with contextlib.suppress(OSError):  # gone meanwhile: this user's alone
        return {os.getuid(), pgdata.stat().st_uid}
    return {os.getuid()}


def _pg_ctl_start(pgdata: Path, port: int) -> dict[str, Any]:
    if not _port_free(port):
        raise EmbeddedPortInUse(f"port {port} on 127.0.0.1 is in use{_held_how(port)}; set {ENV_PORT} or [postgres]"
                                " embedded_port to a free port")
    entry = system_user.for_start()
    socket_dir = embedded_folders.socket_dir(pgdata, port, entry)  # once per start: postmaster.pid names it after
    try:
        return _launch(pgdata, port, socket_dir, entry)
    except BaseException:  # what the failed start left in the folder it made (the postmaster is stopped) goes too
        if socket_dir != pgdata:
            embedded_folders.clear_socket_dir(socket_dir, {os.getuid(), *([entry.pw_uid] if entry else [])})
        raise


def _launch(pgdata: Path, port: int, socket_dir: Path, entry: Any) -> dict[str, Any]:
    options = f"-h 127.0.0.1 -p {port} -k {shlex.quote(str(socket_dir))} {postgres_settings().server_options}".strip()
    timeout = postgres_settings().start_timeout
    since, before = data_folder.log_size(pgdata), data_folder.pid_in_file(pgdata)
    try:
        pgserver_module().pg_ctl(
            ["-w", "-t", str(timeout), "-l", str(pgdata / LOG_FILE), "-o", options, "start"],
            pgdata=pgdata, **system_user.run_as(entry), timeout=timeout + 10,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        _failed_start(pgdata, since, before, "could not start")
    info = _postmaster(pgdata)
    if info is None or not _ready(str(socket_dir), port):
        _failed_start(pgdata, since, before, "did not come up")
    return info


def _disk_full(pgdata: Path) -> bool:
    """Whether the data folder's disk has (almost) no room left: the log saying so may not have been written there."""
    try:
        disk = os.statvfs(pgdata)
    except OSError:
        return False
    return disk.f_bavail * disk.f_frsize < 1024 * 1024


def _failed_start(pgdata: Path, since: int, before: int | None, what: str) -> None:
    """Stop what a failed start left running (a postmaster may restart forever), then raise: the cause, what to do,
    in the first line (a run's summary shows no other), then the log's last lines."""
    data_folder.kill_postmaster(pgdata, spare=before)
    cause, error = data_folder.log_cause(pgdata, since), EmbeddedServerError
    if data_folder.looks_half_initialised(pgdata):
        todo = f"Its initdb was interrupted: if it holds nothing you need, remove {pgdata} and start again"
    elif "No space left on device" in cause or _disk_full(pgdata):  # not "down": a start fails until there is room
        error, todo = EmbeddedDiskFull, (f"Its disk is full: free space on it (or move {pgdata} to a bigger disk),"
                                         " then start again")
    else:
        todo = f"See {pgdata / LOG_FILE}, fix the cause and start again, or set ECOMM_PG_DSN to use another Postgres"
    raise error(f"embedded Postgres in {pgdata} {what}: {cause}. {todo}\n{data_folder.log_tail(pgdata)}")


def _ensure_database(socket_dir: str, port: int, db: str) -> None:
    with psycopg.connect(socket_dsn(socket_dir, port, "postgres"), autocommit=True) as conn:
        if conn.execute("select 1 from pg_database where datname = %s", [db]).fetchone() is None:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(db)))
            logger.info("created database %s on the embedded server", db)


_known_dsn: dict[Path, str] = {}


def _close(handle: int | None) -> None:
    if handle is not None:
        os.close(handle)


def start(create: bool = True) -> str:
    """Start the embedded server if it is not running (init on first use); return its DSN. `create`: make the
    configured database if missing (False: a command that may refuse checks first, pipeline.tasks.rebuild)."""
    pgdata = data_dir()
    db = database()
    port = configured_port()  # a port that cannot work is said before a data folder is made for it
    if _postmaster(pgdata) is None:  # a path a start cannot take is said before a folder is made for it
        embedded_folders.launchable(pgdata, port, data_setting())
    timeout = postgres_settings().start_timeout
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack, _file_lock(pgdata, timeout=timeout * 2):
        info = _postmaster(pgdata)
        if info is not None and info["port"] and info["socket_dir"]:
            port_agrees(pgdata, info["port"])
            deadline = time.monotonic() + timeout
            while not _ready(info["socket_dir"], info["port"]):
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"a postmaster (pid {info['pid']}) owns {pgdata} but does not accept connections"
                        f" ({data_folder.log_cause(pgdata, max(0, data_folder.log_size(pgdata) - 65536))});"
                        f" stop it with `python -m pipeline.serving.pg stop`\n{data_folder.log_tail(pgdata)}"
                    )
                time.sleep(0.2)
            started = False
        else:
            embedded_folders.launchable(pgdata, port, data_setting())  # again under the lock: a server gone since
            embedded_folders.clear_dead_socket_dir(pgdata, _owners(pgdata))  # a server that died left its folder
            data_folder.clear_stale_locks(pgdata)  # its lock files, naming a pid another process may have now
            _prepare_for_system_user(pgdata)
            # a new folder replaces the one locked above: its own lock is ours until the database is there
            stack.callback(_close, data_folder.initialise(pgdata, _initdb, _prepare_for_system_user))
            info = _pg_ctl_start(pgdata, port)
            started = True
        if create:
            _ensure_database(info["socket_dir"], info["port"], db)
    url = socket_dsn(info["socket_dir"], info["port"], db)
    if started:  # once per start: how to connect, for people and BI tools
        logger.info(
            "embedded Postgres started in %s (pid %s). Connect with: %s | psql: python -m pipeline.serving.pg psql"
            " | TCP for BI tools: postgresql://bi_reader@127.0.0.1:%s/%s",
            pgdata, info["pid"], url, info["port"], db,
        )
    else:
        logger.debug("embedded Postgres already running in %s (pid %s): %s", pgdata, info["pid"], url)
    _known_dsn[pgdata] = url
    return url


def dsn() -> str:
    """The embedded server's socket DSN, starting the server first if needed."""
    pgdata = data_dir()
    known = _known_dsn.get(pgdata)
    if known is not None:
        info = _postmaster(pgdata)
        if info is not None and known == socket_dsn(info["socket_dir"] or "", info["port"] or 0, database()) \
                and info["port"] == configured_port():
            return known
    return start()


def status() -> dict[str, Any] | None:
    """postmaster.pid facts of the embedded server, or None if it is not running."""
    return _postmaster(data_dir())


def stop() -> bool:
    """Stop the embedded server (fast shutdown); False if it was not running."""
    pgdata = data_dir()
    if not pgdata.exists():
        return False
    timeout = postgres_settings().start_timeout
    with _file_lock(pgdata, timeout=timeout * 2):
        info, owners = _postmaster(pgdata), _owners(pgdata)
        if info is None:
            embedded_folders.clear_dead_socket_dir(pgdata, owners)  # a server that died left its socket folder
            return False
        try:
            pgserver_module().pg_ctl(["-w", "-t", str(timeout), "-m", "fast", "stop"], pgdata=pgdata,
                                     **system_user.for_stop(pgdata), timeout=timeout + 10)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            # a postmaster in a crash-and-restart loop (a folder whose initdb never finished) ignores pg_ctl
            if data_folder.kill_postmaster(pgdata) is None:
                raise EmbeddedServerError(f"could not stop the embedded Postgres in {pgdata}: {err}") from err
            if info["socket_dir"] and Path(info["socket_dir"]) != pgdata:  # killed: its socket and lock stayed
                embedded_folders.clear_socket_dir(Path(info["socket_dir"]), owners)
        embedded_folders.remove_socket_dir(pgdata, info["socket_dir"], owners)
    _known_dsn.pop(pgdata, None)
    logger.info("stopped embedded Postgres in %s", pgdata)
    return True
