"""The embedded server's folders: a data folder path its programs can take, its socket folder, and whether the
server's user can reach them when root starts it.

- pg_ctl runs the server through /bin/sh with `-D "<data folder>"` and `-l "<log>"`: a `$`, `"`, backtick or
  backslash in the path broke the start, and `$(...)` in it was run. A `,` splits Postgres's
  unix_socket_directories. Such a path is refused before anything runs (EmbeddedDataPathInvalid, a setting).
- The socket sits in the data folder when its path fits in sun_path, else in `ecomm-pg-<hash>` under /tmp, a
  name anyone may create first: it is made private (pipeline.private_folder) or refused, and removed on stop.
- As root the server runs as the system user `pgserver`, which must traverse every folder above the data folder
  and the bundled binaries. pgserver's own helper made each one readable and traversable by every user, up to
  `/` (/root became listable by everyone, silently). Only a folder `pgserver` cannot traverse is changed, and
  only by o+x (traversal: nothing in it becomes listable), each named in a warning (`open_for`).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from pipeline.private_folder import make_private
from pipeline.serving.data_folder import EmbeddedDataPathInvalid, EmbeddedSocketFolderUnsafe

logger = logging.getLogger(__name__)

SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
SHELL_UNSAFE = {"$": "$", '"': '"', "`": "backtick", "\\": "backslash", ",": ",", "\n": "newline", "\r": "return"}


def checked_data_path(path: Path, said: str) -> Path:
    """`path` if pg_ctl's shell and Postgres's socket list take it as it is, else EmbeddedDataPathInvalid naming
    the characters (`said`: the setting it came from)."""
    found = [name for char, name in SHELL_UNSAFE.items() if char in str(path)]
    if found:
        raise EmbeddedDataPathInvalid(
            f"{said} {str(path)!r} holds {', '.join(repr(name) if len(name) == 1 else name for name in found)}, which"
            " the embedded Postgres cannot take in its data folder's path (pg_ctl hands it to /bin/sh): use a path"
            " without them, or a link without them to that folder")
    return path


def _short_socket_dir(pgdata: Path) -> Path:
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"ecomm-pg-{digest}"


def socket_dir(pgdata: Path, port: int, owner: tuple[int, int] | None) -> Path:
    """The data folder if its socket path fits in sun_path, else a private folder under /tmp, made for `owner`
    (uid, gid: the server's user, when root starts it), or EmbeddedSocketFolderUnsafe if one found there is not safe."""
    if len(str(pgdata / f".s.PGSQL.{port}")) <= SOCKET_MAX:
        return pgdata
    short = _short_socket_dir(pgdata)
    try:
        make_private(str(short), owner)
    except OSError as err:
        raise EmbeddedSocketFolderUnsafe(
            f"the embedded Postgres's socket folder {short} cannot be used safely ({err.strerror or err}): it is in"
            f" {short.parent} because the socket path in {pgdata} would be too long. Remove {short} if no one of"
            " yours made it, or set ECOMM_PG_DATA to a shorter path (the socket then sits in the data folder)"
        ) from None
    return short


def remove_socket_dir(pgdata: Path, used: str | None, owners: set[int]) -> None:
    """After a stop: remove the /tmp socket folder the server used, when it is empty and ours (`owners`' uid)."""
    short = _short_socket_dir(pgdata)
    if used is None or Path(used) != short:
        return
    with contextlib.suppress(OSError):
        info = os.lstat(short)
        if stat.S_ISDIR(info.st_mode) and info.st_uid in owners:
            os.rmdir(short)  # OSError if not empty: left as it is


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
