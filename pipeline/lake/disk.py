"""A full disk under the lake, said as such: not as a bad input file, nor as a query's error.

DuckDB reports a full disk in its own exception text (`IO Error: ... Could not write file "<path>": No space
left on device`, `"errno":"28"`), which a reader's error handling would otherwise take for the input file's
fault (`SourceFileInvalid: ... cannot be read`). `LakeDiskFull` keeps the words "No space left on device" and
errno ENOSPC, so the runbook's "disk full" entry (`pipeline.tasks.runbook`) is the one chosen.
"""
from __future__ import annotations

import errno
import os
import re

from pipeline import config
from pipeline.lake import s3 as lake_store

NO_SPACE = "No space left on device"
# the file DuckDB could not write (its JSON-ish message escapes the quotes around it)
_WRITTEN = re.compile(r'(?:Could not write file|Could not open file|write to file) \\*"(.+?)\\*"')


class LakeDiskFull(OSError):
    """A write found the lake's file system (or the one of DuckDB's temporary files) full: errno ENOSPC."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOSPC


def no_space(error: BaseException) -> bool:
    """Whether an error is a full disk: an OSError ENOSPC, or DuckDB's error saying so."""
    return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or NO_SPACE in str(error)


def mount_point(path: str) -> str:
    """The mount point of the file system holding `path` (or its nearest existing parent folder).

    By device numbers, folder by folder up its path as written (`os.path.ismount` resolves the parent's real path
    first, which across /proc/<pid>/root, another mount namespace's root, names the wrong file system)."""
    folder = os.path.abspath(path)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    while (parent := os.path.dirname(folder)) != folder:
        try:
            if os.stat(folder).st_dev != os.stat(parent).st_dev:
                return folder
        except OSError:
            return folder
        folder = parent
    return folder


def where(path: str) -> str:
    """`the lake's file system (<lake>[, mounted at M])` for a path in a folder lake, else `the file system of M`."""
    mount = mount_point(path)
    lake_dir = config.lake_dir()
    if not lake_store.is_remote(lake_dir):
        lake_dir = os.path.abspath(lake_dir)
        if os.path.commonpath([lake_dir, os.path.abspath(path)]) == lake_dir:
            return f"the lake's file system ({lake_dir}" + (f", mounted at {mount})" if mount != lake_dir else ")")
    return f"the file system of {mount}"


def size(count: int) -> str:
    """A byte count in words: `512 KiB`, `2 MiB`, `1.5 GiB`."""
    for unit, shift in (("GiB", 30), ("MiB", 20)):
        if count >= 1 << shift:
            return f"{count / (1 << shift):.1f}".removesuffix(".0") + f" {unit}"
    return f"{count >> 10} KiB"


def space(path: str) -> tuple[int, int] | None:
    """The bytes free (to an unprivileged user) and in all on the file system holding `path`; None: unknown."""
    try:
        stat = os.statvfs(mount_point(path))
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


def is_full(path: str) -> str:
    """`<where> is full (No space left on device; F free of S now)`: the one wording of a full disk under the lake
    (the failed write's partial file may be gone already, freeing its space)."""
    free_total = space(path)
    left = f"; {size(free_total[0])} free of {size(free_total[1])} now" if free_total else ""
    return f"{where(path)} is full ({NO_SPACE}{left})"


def full(path: str, error: BaseException) -> LakeDiskFull:
    """The LakeDiskFull for `path` that could not be written: which file system is full and what to do.

    The file system is the one of the file the error names (DuckDB may name its temporary file), else `path`'s."""
    named = _WRITTEN.search(str(error))
    target = named.group(1) if named else (getattr(error, "filename", None) or path)
    return LakeDiskFull(
        f"{is_full(target)}: {path} could not be written, nothing was; the input"
        f" files and the data are not at fault. Free space on that disk (old lake/_archive, lake/_logs, the temp"
        f" dir) or give the lake a bigger one, then run the date again")
