"""The embedded server's data folder: its lock, its initialisation, and the postmaster that runs in it.

Initialisation counts as done only once it finished: initdb writes a hidden sibling folder
(`.<name>.initdb-<pid>`, on the same file system) that is renamed into place when initdb succeeded,
so a process killed during initdb leaves the data folder empty, never half-written (a half-written
one has `PG_VERSION`, which every later start took for "initialised", and never worked again).

The postmaster of a failed start is stopped here too, by the pid in `postmaster.pid` and only when
that process is a postgres of this data folder: a half-initialised folder can keep one in a
crash-and-restart loop that ignores SIGTERM and that `pg_ctl stop` cannot stop.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.config import BadSetting
from pipeline.lake.pids import process_alive

logger = logging.getLogger(__name__)

LOG_FILE = "server.log"
_TEMP = ".{name}.initdb-"  # + pid: the folder initdb writes before it is renamed into place
_LOG_LEVEL = re.compile(r"\b(PANIC|FATAL|ERROR):\s")
_LOG_INFO = re.compile(r"\b(LOG|INFO|NOTICE|WARNING|DEBUG\d?|DETAIL|HINT|STATEMENT|CONTEXT):\s")


class EmbeddedServerError(RuntimeError):
    """The embedded Postgres server could not be initialised, started or stopped."""


class EmbeddedDiskFull(EmbeddedServerError):
    """The embedded server could not start: the disk of its data folder is full (its recovery writes WAL first)."""


class EmbeddedPortInUse(EmbeddedServerError):
    """Another program (often another deployment's embedded server) listens on the embedded server's port."""


class EmbeddedPortInvalid(EmbeddedServerError, BadSetting):
    """ECOMM_PG_PORT or [postgres] embedded_port is no TCP port (1-65535): a setting to fix."""


class EmbeddedDataPathInvalid(EmbeddedServerError, BadSetting):
    """The data folder's path is one the embedded server cannot start in (characters pg_ctl's shell reads, a `,` in
    its socket folder): a setting to fix."""


class EmbeddedDataFolderNotYours(EmbeddedServerError):
    """The data folder is another user's (root's server runs as `pgserver`, mode 0700): this user cannot use it."""


class EmbeddedPortMismatch(EmbeddedServerError, BadSetting):
    """The server running in the data folder listens on another port than the one configured: a setting to fix."""


# ------------------------------------------------------------------------------------------ owner
def not_yours(pgdata: Path) -> EmbeddedDataFolderNotYours | None:
    """Why this user cannot use the data folder (another user's, private), or None: a start, a stop or a status
    would meet it as a PermissionError, and a status would say "not running" of a server that runs."""
    import pwd  # noqa: PLC0415 - POSIX only

    try:
        info = pgdata.stat()
    except FileNotFoundError:
        return None
    except PermissionError:
        return EmbeddedDataFolderNotYours(f"the embedded Postgres's data folder {pgdata} is in a folder this user"
                                          " cannot open: run as the user who owns it, or set ECOMM_PG_DATA to a"
                                          " folder of your own (or ECOMM_PG_DSN to another Postgres)")
    if os.access(pgdata, os.R_OK | os.W_OK | os.X_OK):
        return None
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = f"user id {info.st_uid}"
    try:
        me = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        me = str(os.getuid())
    run_as = "root (started by root, the server runs as pgserver)" if owner == "pgserver" else owner
    return EmbeddedDataFolderNotYours(
        f"the embedded Postgres's data folder {pgdata} belongs to {owner} (mode {info.st_mode & 0o7777:04o}) and user"
        f" {me} cannot use it: run this as {run_as}, or set ECOMM_PG_DATA to a folder of your own (or ECOMM_PG_DSN to"
        " another Postgres)")


# ------------------------------------------------------------------------------------------- lock
def _lock(path: Path) -> int | None:
    """An open descriptor of `path` holding its flock (None: someone else holds it)."""
    handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None
    return handle


@contextlib.contextmanager
def file_lock(pgdata: Path, timeout: float) -> Iterator[None]:
    """An inter-process lock on the data directory itself, so two processes never race a start.

    flock on the directory, not on a file beside it: a lock file next to `.pgdata` would sit in the
    repository root (`..pgdata.lock`). The directory is created first (initdb's result replaces it).
    A lock won on a directory that initialisation has since replaced is no lock: it is taken again.
    """
    refused = not_yours(pgdata)
    if refused is not None:
        raise refused
    deadline = time.monotonic() + timeout
    while True:
        pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle = _lock(pgdata)
        if handle is not None:
            held, now = os.fstat(handle), os.stat(pgdata)
            if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                break
            os.close(handle)  # the folder was replaced by an initialised one while we waited
            continue
        if time.monotonic() > deadline:
            raise EmbeddedServerError(
                f"timed out waiting for the lock on {pgdata}; another process is starting or stopping the server")
        time.sleep(0.1)
    try:
        yield
    finally:
        os.close(handle)  # releases the flock


# ------------------------------------------------------------------------------------ initdb
def _temp_folders(pgdata: Path) -> list[Path]:
    prefix = _TEMP.format(name=pgdata.name)
    return [path for path in pgdata.parent.glob(f"{prefix}*") if path.name[len(prefix):].isdigit()]


def _initdb_incomplete(pgdata: Path) -> bool:
    """Whether initdb began in `pgdata` and did not get to its end: a file of its bootstrap is missing, or one of the
    three databases it makes last (template1, template0, postgres)."""
    if not (pgdata / "PG_VERSION").exists():
        return False
    if not all((pgdata / "global" / name).exists() for name in ("pg_control", "pg_filenode.map")):
        return True
    base = pgdata / "base"
    return not base.is_dir() or sum(child.is_dir() for child in base.iterdir()) < 3


def _never_finished(pgdata: Path) -> bool:
    """Whether `pgdata` is an initdb that never finished and never served: safe to remove and initialise again.

    Conservative: initdb did not finish, no postmaster ever ran in it (`postmaster.opts`, written at every start, so
    nobody ever wrote data into it) and it is no base backup (`backup_label`).
    """
    return _initdb_incomplete(pgdata) and not any(
        (pgdata / name).exists() for name in ("postmaster.opts", "backup_label"))


def looks_half_initialised(pgdata: Path) -> bool:
    """Whether initdb never finished in `pgdata` (a postmaster may have been started on it since)."""
    return _initdb_incomplete(pgdata)


def initialise(pgdata: Path, run_initdb: Callable[[Path], None], prepare: Callable[[Path], None]) -> int | None:
    """Initialise `pgdata` if it is not (call under `file_lock`); the descriptor that locks the new folder, to close
    when the lock is released (None: it was initialised already).

    `run_initdb(folder)` runs initdb into an empty folder; `prepare(folder)` gives it to the server's user.
    A data folder that is a link (to an empty folder) is initialised in the link's target: the link stays.
    """
    pgdata = Path(os.path.realpath(pgdata)) if pgdata.is_symlink() else pgdata
    for stale in _temp_folders(pgdata):  # a process killed during initdb; none runs now: we hold the lock
        logger.info("removing %s, left by an initialisation that was interrupted", stale)
        shutil.rmtree(stale, ignore_errors=True)
    if _never_finished(pgdata):  # written by a version that initialised in place, killed during initdb
        logger.warning("%s holds an initdb that never finished and never served: initialising it again", pgdata)
        for child in list(pgdata.iterdir()):
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    if (pgdata / "PG_VERSION").exists():
        return None
    temp = pgdata.parent / f"{_TEMP.format(name=pgdata.name)}{os.getpid()}"
    temp.mkdir(mode=0o700)
    handle = _lock(temp)  # new and private: whoever opens the data folder once it is renamed waits for us
    try:
        prepare(temp)
        run_initdb(temp)
        try:
            os.rename(temp, pgdata)  # atomic on one file system; replaces the empty folder the lock created
        except OSError as err:
            raise EmbeddedServerError(
                f"{pgdata} is not empty and holds no Postgres data folder (no PG_VERSION): move its files away,"
                f" or set ECOMM_PG_DATA to another folder ({err.strerror})") from err
    except BaseException:
        os.close(handle)
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return handle


# -------------------------------------------------------------------------------------- postmaster
def postmaster(pgdata: Path) -> dict[str, Any] | None:
    """What postmaster.pid says about a live server (None if there is none or it died)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    except PermissionError:  # another user's folder: whether a server runs there is not this user's to say
        refused = not_yours(pgdata)
        if refused is not None:
            raise refused from None
        return None
    if len(lines) < 5 or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0])
    if not runs_here(pid, pgdata):
        return None
    return {
        "pid": pid,
        "port": int(lines[3]) if lines[3].strip().isdigit() else None,
        "socket_dir": lines[4].strip().split(",")[0] or None,
        "status": lines[7].strip() if len(lines) > 7 else "",
    }


def runs_here(pid: int, pgdata: Path) -> bool:
    """Whether `pid`, named by postmaster.pid, is the server of `pgdata`: alive (not a zombie) and a postgres of this
    folder. A pid a crashed server (kill -9, power loss) left, taken since by another process, is none: it was taken
    for the server, so `stop` had pg_ctl signal that process and `start` waited for it to accept connections. What
    /proc does not say (no /proc, as on macOS; another user's process it hides) is a server: the signal is all."""
    return process_alive(pid) and _serves(pid, pgdata) is not False


def clear_stale_locks(pgdata: Path) -> None:
    """Remove postmaster.pid and the data folder's socket lock files when the pid they name is no server of it (call
    under `file_lock` before a start): Postgres takes any live process of its user for a server and refuses to start
    ("lock file ... already exists"), a reused pid too. Not while anything accepts connections on the socket or port
    postmaster.pid names: a running server /proc misjudged would lose its lock file, and a second one would start.
    A server's processes that outlived it still stop a start: Postgres finds its shared memory in use by the data
    folder's key, not by this file."""
    pid = pid_in_file(pgdata)
    if pid is None or runs_here(pid, pgdata) or _answers(pgdata):
        return
    for lock in _remove_locks(pgdata, pid):
        logger.info("removed %s: its pid %s is no server of %s", lock, pid, pgdata)


def _remove_locks(pgdata: Path, pid: int) -> list[Path]:
    """Remove postmaster.pid and the data folder's socket lock files that name `pid`, a dead server's (a socket folder
    elsewhere is its caller's to clear: embedded_folders.clear_socket_dir); the ones removed."""
    removed = []
    for lock in [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")]:
        with contextlib.suppress(OSError, IndexError):
            if lock.read_text().splitlines()[0].strip() == str(pid):
                lock.unlink()
                removed.append(lock)
    return removed


def _answers(pgdata: Path) -> bool:
    """Whether anything accepts connections on the Unix socket or the TCP address postmaster.pid names."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        port = int(lines[3])
    except (OSError, IndexError, ValueError):
        return False
    folders = [folder for folder in (lines[4] if len(lines) > 4 else "").strip().split(",") if folder]
    for folder in folders:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            probe.connect(f"{folder}/.s.PGSQL.{port}")
            return True
    host = (lines[5] if len(lines) > 5 else "").strip()  # listen_addresses' first: 127.0.0.1 for the embedded one
    if host:
        with contextlib.suppress(OSError), socket.create_connection(
                ({"*": "127.0.0.1", "::": "::1"}.get(host, host), port), timeout=2):
            return True
    return False


def serves(pid: int, pgdata: Path) -> bool:
    """Whether process `pid` is a postgres of this data folder (`postgres -D <pgdata>`, or working in it)."""
    return _serves(pid, pgdata) is True


def _serves(pid: int, pgdata: Path) -> bool | None:
    """serves(), None when /proc does not say: no /proc, or it hides another user's process (hidepid)."""
    if not Path("/proc/self/cmdline").exists() or not Path(f"/proc/{pid}").exists():
        return None
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except PermissionError:
        return None
    except OSError:
        return False
    if not args or Path(args[0]).name != "postgres":
        return False
    with contextlib.suppress(OSError):
        if Path(os.readlink(f"/proc/{pid}/cwd")) == pgdata.resolve():
            return True
    return any(a == "-D" and Path(b).absolute() == pgdata.absolute() for a, b in zip(args, args[1:]))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _dead(pid: int) -> bool:
    return not process_alive(pid)  # a zombie counts as dead: its parent reaps it


def pid_in_file(pgdata: Path) -> int | None:
    """The pid postmaster.pid names, alive or not (None: no such file)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    return None


def kill_postmaster(pgdata: Path, wait: float = 5.0, spare: int | None = None) -> int | None:
    """Stop the postmaster of `pgdata` by its pid, however it is stuck: immediate shutdown (SIGQUIT), then SIGKILL it
    and its children. Only a process that is a postgres of this data folder, and not `spare` (one that ran before a
    start that failed: not that start's to stop); the pid it stopped (None: none)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if not lines or not lines[0].strip().isdigit() or not serves(pid := int(lines[0]), pgdata) or pid == spare:
        return None
    children = _children(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + wait
    while not _dead(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    for stuck in [pid, *children, *_children(pid)]:
        if not _dead(stuck) and (stuck == pid or serves(stuck, pgdata) or stuck in children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(stuck, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while not _dead(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _dead(pid):  # a killed postmaster removes no lock file; dead but unreaped (no init reaps) it still looks alive
        _remove_locks(pgdata, pid)
    logger.warning("stopped the postmaster (pid %s) of %s by signal", pid, pgdata)
    return pid


# ------------------------------------------------------------------------------------------- log
def log_size(pgdata: Path) -> int:
    """The server log's size now: a start's own lines begin there."""
    try:
        return (pgdata / LOG_FILE).stat().st_size
    except OSError:
        return 0


def log_cause(pgdata: Path, since: int = 0) -> str:
    """What the server's log since `since` says went wrong, short: its first `FATAL: ...` (or ERROR, PANIC) line, else
    the last line of a message written before logging began (`... could not open file "global/pg_control": ...`)."""
    try:
        with open(pgdata / LOG_FILE, "rb") as log:
            log.seek(since)
            lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no server log"
    found = next((line[hit.start():] for line in lines if (hit := _LOG_LEVEL.search(line))), None)
    if found is None:
        said = [line for line in lines if not _LOG_INFO.search(line)] or lines
        found = said[-1].removeprefix("but ") if said else "the server log says nothing"
    return re.sub(r"\s+", " ", found.replace(f"{pgdata}/", ""))


def log_tail(pgdata: Path, lines: int = 25) -> str:
    try:
        return "\n".join((pgdata / LOG_FILE).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"
