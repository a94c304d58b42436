"""Whether this process may write a folder lake, and whether an error is the folder refusing it a path: a user's
permissions (another user's folder) or a read-only file system. Words only: `pipeline.lake` raises them as
LakeNotWritable / LakeUnreadable."""
from __future__ import annotations

import errno
import os
import pwd
import sys
from pathlib import Path

from pipeline import config
from pipeline.lake import s3 as lake_store

READ_ONLY_WORDS = "Read-only file system"  # strerror(EROFS), as DuckDB's errors carry it


def duckdb_error(error: BaseException) -> bool:
    duckdb = sys.modules.get("duckdb")  # never imported: no DuckDB error exists (nor is DuckDB loaded for the check)
    return duckdb is not None and isinstance(error, duckdb.Error)


def process_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (a container's)
        return f"uid {os.geteuid()}"


def read_only(error: BaseException) -> bool:
    """Whether an error is a read-only file system's (EROFS: a mount turned read-only mid-run, or made so)."""
    return (isinstance(error, OSError) and error.errno == errno.EROFS) or (
        duckdb_error(error) and READ_ONLY_WORDS in str(error))


def folder_refused(error: BaseException) -> bool:
    """Whether an error is a folder lake refusing this process a path in it (a PermissionError, a read-only file
    system's OSError, or DuckDB's "Permission denied" / "Read-only file system", naming a path under the lake's
    folder): not an incoming file's, nor the data's."""
    where = config.lake_dir()
    if lake_store.is_remote(where):
        return False
    folder = os.path.abspath(where)
    if isinstance(error, PermissionError) or (isinstance(error, OSError) and error.errno == errno.EROFS):
        named = (os.path.abspath(os.fspath(name)) for name in (error.filename, error.filename2) if name)
        return any(os.path.commonpath([folder, path]) == folder for path in named)
    refused = "Permission denied" in str(error) or READ_ONLY_WORDS in str(error)
    return duckdb_error(error) and refused and folder in str(error)


def why_not_writable() -> str | None:
    """Why this process may not write a folder lake (cron running as another user than the lake's owner, a lake on a
    read-only mount), in one line with what to do; None: it may (or the lake is an s3:// one, checked by its first
    write: `root()` checks its bucket). Cheap: a statvfs and an access check."""
    where = config.lake_dir()
    if lake_store.is_remote(where):
        return None
    nearest = Path(where).absolute()
    while not nearest.exists() and nearest != nearest.parent:  # a new lake: made inside its nearest folder
        nearest = nearest.parent
    if os.statvfs(nearest).f_flag & os.ST_RDONLY:  # os.access says no here too, and the owner could not either
        return (f"the lake folder {where} is on a read-only file system ({nearest}): remount it read-write, or name a"
                " writable folder (ECOMM_LAKE_DIR or [paths] lake_dir), then run the date again; nothing was written")
    if not os.access(nearest, os.W_OK | os.X_OK):
        made_in = "" if str(nearest) == os.path.abspath(where) else f" (nor can {nearest}, where it would be made)"
        return (f"the lake folder {where} cannot be written by user {process_user()}{made_in}: run as the lake's"
                " owner, or give this user write access to it (ECOMM_LAKE_DIR or [paths] lake_dir names it), then run"
                " the date again; nothing was written")
    return None
