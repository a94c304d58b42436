"""The embedded server's folders: a data folder path its programs can take, its socket folder, and whether the
server's user can reach them when root starts it.

- pg_ctl starts the server through /bin/sh with `-D "<data folder>"` and `-l "<log>"`: inside those double quotes
  a `"` or backtick, a `$` that begins an expansion (`$(`, `$HOME`, `${`, `$1`, ...) and a backslash before `$`, a
  backtick, `"`, a backslash or the closing quote change the path, and `$(...)` is run. A line break would split
  postmaster.pid's lines. Such a path is refused before initdb or a start runs (EmbeddedDataPathInvalid, a
  setting); other commands (`stop`, `status`, ...) never go through a shell and take any path. A `,` splits
  Postgres's unix_socket_directories: refused only when the socket sits in the data folder.
- The socket sits in the data folder when its path fits in sun_path, else in a new folder `ecomm-pg-XXXXXXXX` under
  the temp folder (tempfile.mkdtemp: 0700, a name nobody can take first), made once per start and read back from
  postmaster.pid by every other command; a stop removes it (rmdir: only an empty folder).
- As root the server runs as the system user `pgserver`, which must traverse every folder above the data folder,
  the socket folder and the bundled binaries. pgserver's own helper made each one readable and traversable by
  every user, up to `/` (/root became listable by everyone, silently). Only a folder `pgserver` cannot traverse
  is changed, and only by o+x (traversal: nothing in it becomes listable), each named in a warning (`open_for`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from pipeline.serving import data_folder
from pipeline.serving.data_folder import EmbeddedDataPathInvalid, EmbeddedServerError

logger = logging.getLogger(__name__)

SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
SOCKET_PREFIX = "ecomm-pg-"
# What dash and bash (`sh -c '... -D "<path>"'`) do not pass unchanged inside double quotes (checked with both):
# `"`, a backtick, `$` before a name, digit, special parameter, `(`, `{` or `[` (bash), `\` before `"$\``, a
# newline or the closing quote; and line breaks, which postmaster.pid's lines cannot hold.
_SHELL_READS = re.compile(r'["`\n\r]|\$[A-Za-z0-9_!"#$(*?@`{\[-]|\\(?:["$\\`\n]|$)')


def launchable(pgdata: Path, port: int, said: str) -> None:
    """Refuse (EmbeddedDataPathInvalid, `said`: the setting it came from) a data folder path that initdb and pg_ctl
    start cannot take as it is: what /bin/sh reads in it, or a `,` when the socket sits in it."""
    found = list(dict.fromkeys(hit.group() for hit in _SHELL_READS.finditer(str(pgdata))))
    if found:
        raise EmbeddedDataPathInvalid(
            f"{said} {str(pgdata)!r} holds {', '.join(map(repr, found))}, which the embedded Postgres cannot take in"
            " its data folder's path (pg_ctl starts it through /bin/sh, which reads them): use a path without them,"
            " or a link without them to that folder")
    if "," in str(pgdata) and _socket_fits(pgdata, port):
        raise EmbeddedDataPathInvalid(
            f"{said} {str(pgdata)!r} holds ',', and the embedded Postgres's socket sits in its data folder: Postgres"
            " reads a ',' in its socket folder (unix_socket_directories) as two folders. Use a path without it, or a"
            " link without it to that folder")


def _socket_fits(pgdata: Path, port: int) -> bool:
    return len(str(pgdata / f".s.PGSQL.{port}")) <= SOCKET_MAX


def socket_dir(pgdata: Path, port: int, entry: Any) -> Path:
    """The data folder if its socket path fits in sun_path, else a new private folder under the temp folder, given to
    `entry` (a passwd entry: the server's user, when root starts it; None: this user's)."""
    if _socket_fits(pgdata, port):
        return pgdata
    where, made = Path(tempfile.gettempdir()), None
    try:
        made = Path(tempfile.mkdtemp(prefix=SOCKET_PREFIX, dir=where))
        _give(made, entry)
        if entry is not None:
            open_for(made, entry, "its socket folder")
    except OSError as err:
        if made is not None:  # a start that cannot use it leaves none behind (cron's retries made one each)
            with contextlib.suppress(OSError):
                os.rmdir(made)
        raise EmbeddedServerError(
            f"could not make the embedded Postgres's socket folder in {where} ({err.strerror or err}): the socket goes"
            f" there because its path in {pgdata} would be too long. Set TMPDIR to a folder this user may write, or"
            " ECOMM_PG_DATA to a shorter path (the socket then sits in the data folder)") from None
    return made


def _give(made: Path, entry: Any) -> None:
    """Mode 0700 for the folder mkdtemp just made and, as root, chown it to the server's user (`entry`; None: this
    user's), through a descriptor of the folder made (a name in a temp folder without the sticky bit could be
    swapped); after that, its name is never used to change it."""
    handle = os.open(made, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if os.fstat(handle).st_uid != os.getuid():
            raise PermissionError(f"{made} was replaced after it was made")
        os.fchmod(handle, 0o700)  # mkdtemp's 0700 less the umask (0177 made it 0600: the server could not enter)
        if entry is not None:
            os.fchown(handle, entry.pw_uid, entry.pw_gid)
    finally:
        os.close(handle)


def remove_socket_dir(pgdata: Path, used: str | None, owners: set[int]) -> None:
    """After a stop: remove the socket folder postmaster.pid named, when it is one a start made (`_made_by_a_start`;
    in whichever temp folder the start had: cron's TMPDIR is not a login shell's) and empty (rmdir only)."""
    if not used or Path(used) == pgdata:
        return
    handle = _made_by_a_start(Path(used), owners)
    if handle is not None:
        os.close(handle)
        with contextlib.suppress(OSError):
            os.rmdir(used)  # OSError if not empty (or no longer a folder): left as it is


def _made_by_a_start(folder: Path, owners: set[int]) -> int | None:
    """A descriptor of `folder` if it can be one a start made (None: it is not, or it is gone): an absolute path with
    no link in it, named ecomm-pg-*, in a folder that is sticky (/tmp) or `owners`', a real folder of `owners`'.
    postmaster.pid, which names it, is the server's user's to write: nothing it names elsewhere is touched."""
    if not folder.is_absolute() or not folder.name.startswith(SOCKET_PREFIX) or os.path.realpath(folder) != str(folder):
        return None
    try:
        parent = os.lstat(folder.parent)
        if not (parent.st_mode & stat.S_ISVTX or parent.st_uid in owners):
            return None
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    if os.fstat(handle).st_uid not in owners:
        os.close(handle)
        return None
    return handle


def clear_dead_socket_dir(pgdata: Path, owners: set[int]) -> None:
    """The socket folder of a postmaster that died (kill -9, a crash, the machine's power): its dead pid's socket and
    lock files go, then the folder (`remove_socket_dir`). Each start makes a new folder, so a crash left one behind.
    Only in a folder a start made, through its descriptor: a lock file of `owners`' naming that pid, and its socket."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return
    if len(lines) < 5 or not lines[0].strip().isdigit() or not lines[4].strip():
        return
    pid, folder = lines[0].strip(), Path(lines[4].strip().split(",")[0])
    if folder == pgdata or data_folder.runs_here(int(pid), pgdata):
        return  # a zombie, or the pid reused by another process, is no server: its folder goes
    clear_socket_dir(folder, owners, pid)


def clear_socket_dir(folder: Path, owners: set[int], pid: str | None = None) -> None:
    """Remove a socket folder a start made (`_made_by_a_start`), with the socket and lock files in it of the dead
    server `pid` (None: any; the folder's one server is known dead), through its descriptor."""
    handle = _made_by_a_start(folder, owners)
    if handle is None:
        return
    try:
        for entry in os.scandir(handle):
            if entry.name.startswith(".s.PGSQL.") and entry.name.endswith(".lock") and _names(handle, entry, pid,
                                                                                                 owners):
                socket_name = entry.name.removesuffix(".lock")
                with contextlib.suppress(OSError):
                    if stat.S_ISSOCK(os.stat(socket_name, dir_fd=handle, follow_symlinks=False).st_mode):
                        os.unlink(socket_name, dir_fd=handle)
                with contextlib.suppress(OSError):
                    os.unlink(entry.name, dir_fd=handle)
    finally:
        os.close(handle)
    with contextlib.suppress(OSError):
        os.rmdir(folder)  # OSError if anything else is in it: left as it is


def _names(folder: int, entry: os.DirEntry, pid: str | None, owners: set[int]) -> bool:
    """Whether the lock file `entry` (in the folder open as `folder`) is a regular file of `owners`' naming `pid`
    (None: any)."""
    try:
        info = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode) or info.st_uid not in owners:
            return False
        if pid is None:
            return True
        handle = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
        with os.fdopen(handle, encoding="ascii", errors="replace") as lock:
            return lock.readline().strip() == pid
    except OSError:
        return False


def _traversable(folder: Path, entry: Any) -> bool:
    info = folder.stat()
    if info.st_uid == entry.pw_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == entry.pw_gid:  # it runs with its own group only (no supplementary groups)
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def open_for(path: Path, entry: Any, what: str) -> None:
    """Let the server's user (`entry`, a passwd entry) traverse the folders above `path`: each it cannot traverse
    gets o+x only (not r: its names stay unlisted) and a warning naming it and its modes."""
    for chain in (path.absolute().parents, Path(os.path.realpath(path)).parents):
        for folder in reversed(chain):
            if not _traversable(folder, entry):
                before = stat.S_IMODE(folder.stat().st_mode)
                os.chmod(folder, before | stat.S_IXOTH)
                logger.warning("opened %s to traversal by other users (mode %04o -> %04o, nothing in it listable) so"
                               " that the embedded Postgres's user %s reaches %s %s; to keep it closed, put the data"
                               " folder elsewhere (ECOMM_PG_DATA) or run as another user", folder, before,
                               before | stat.S_IXOTH, entry.pw_name, what, path)
