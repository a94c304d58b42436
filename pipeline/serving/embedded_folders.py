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
    """After a stop: remove the socket folder postmaster.pid named, when it is one a start made (a real folder named
    ecomm-pg-*, `owners`' uid; in whichever temp folder the start had: cron's TMPDIR is not a login shell's) and
    empty (rmdir only)."""
    if not used or Path(used) == pgdata:
        return
    folder = Path(used)
    if not folder.is_absolute() or not folder.name.startswith(SOCKET_PREFIX):
        return
    with contextlib.suppress(OSError):
        info = os.lstat(folder)
        if stat.S_ISDIR(info.st_mode) and info.st_uid in owners:
            os.rmdir(folder)  # OSError if not empty: left as it is


def clear_dead_socket_dir(pgdata: Path, owners: set[int]) -> None:
    """The socket folder of a postmaster that died (kill -9, a crash, the machine's power): its dead pid's socket and
    lock files go, then the folder (`remove_socket_dir`). Each start makes a new folder, so a crash left one behind."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return
    if len(lines) < 5 or not lines[0].strip().isdigit() or not lines[4].strip():
        return
    pid, folder = lines[0].strip(), Path(lines[4].strip().split(",")[0])
    if folder == pgdata or not folder.name.startswith(SOCKET_PREFIX) or _alive(int(pid)):
        return
    for lock in folder.glob(".s.PGSQL.*.lock"):
        with contextlib.suppress(OSError, IndexError):
            if lock.read_text().splitlines()[0].strip() == pid:
                (folder / lock.name.removesuffix(".lock")).unlink(missing_ok=True)
                lock.unlink()
    remove_socket_dir(pgdata, str(folder), owners)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


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
