"""Where DuckDB spills what outgrows [duckdb] memory_limit: [duckdb] temp_directory, made, checked and cleaned.

DuckDB's own default, `.tmp` in the folder the command runs from, failed wherever that folder cannot be
written (a file named `.tmp` there, cron's `cd /srv/ecomm`, the container's /app owned by root) as an
error reading the input file (`SourceFileInvalid: ... cannot be read as CSV (IO Error: Failed to create
directory ...)`), blaming a good file. The folder is now a setting, absolute, checked before any task
runs (BadSetting, exit 35), and a DuckDB error about it names it and the setting (`SpillFolderUnusable`).
"""
from __future__ import annotations

import logging
import os
import re
import stat
import tempfile

import duckdb

from pipeline import config, lake
from pipeline.setting_source import fix_where, given, named, option
from pipeline.lake import disk, pids
from pipeline.private_folder import make_private

logger = logging.getLogger(__name__)

SETTING = "[duckdb] temp_directory"
#: DuckDB's words when a spill would pass max_temp_directory_size (by default 90 % of its disk's free space)
OFFLOAD_FAILED = "failed to offload data block"
# DuckDB names its spill files after the process: duckdb_temp_<pid>_<n>_storage_..., duckdb_temp_<pid>_<n>_owner
_SPILL_FILE = re.compile(r"duckdb_temp_([0-9]+)_")


class SpillFolderUnusable(config.BadSetting):
    """DuckDB cannot spill into [duckdb] temp_directory (not a folder, not writable): the folder's fault, not the data's."""


class DuckDBSpillFull(disk.LakeDiskFull):
    """A task's DuckDB could not spill: the disk of [duckdb] temp_directory is full (errno ENOSPC: the runbook's
    "disk full"); neither the data nor memory_limit alone is at fault."""


def folder() -> str:
    """[duckdb] temp_directory, an absolute folder (BadSetting: more than one line, or relative).

    Empty (the default): `ecomm-duckdb-<uid>` in $TMPDIR (when it is absolute), else in /var/tmp: on disk (/tmp
    is tmpfs, that is memory, on many systems), writable by every user (the image's `ecomm` too) and the same
    from any folder a command runs in. It must be local to the host: the files of processes that no longer run
    are removed by their pid (`_clean_dead`).
    """
    raw = str(config.duckdb().temp_directory)
    if any(c in raw for c in "\n\r\x00"):
        raise config.BadSetting(f"{_named(raw)} is not valid (one line: a folder): fix it {_where()}, or"
                                " remove it for the default")
    if not raw.strip():  # a relative $TMPDIR would depend on the folder the command runs from: not taken
        tmpdir = os.environ.get("TMPDIR", "").strip()
        base = tmpdir if os.path.isabs(tmpdir) else "/var/tmp" if os.path.isdir("/var/tmp") else tempfile.gettempdir()
        return os.path.join(os.path.abspath(base), f"ecomm-duckdb-{os.getuid()}")
    path = os.path.expanduser(raw.strip())
    if not os.path.isabs(path):
        raise config.BadSetting(f"{_named(raw)} is not valid (a relative folder depends on the folder the"
                                f" command runs from): give an absolute one {_where()}, or remove it for the default")
    return path


def _where() -> str:  # on the command line, or in luigi.cfg: where its value was given
    return fix_where("duckdb", "temp_directory")


def _named(raw: str) -> str:  # `--duckdb-temp-directory 'x'` or `[duckdb] temp_directory = 'x'`, as it was given
    return named("duckdb", "temp_directory", raw)


def unusable(path: str, error: BaseException) -> SpillFolderUnusable:
    """The one line for a spill folder DuckDB cannot use: which folder, which setting, why; not the data's fault."""
    said = (str(error).strip().splitlines() or [type(error).__name__])[0]
    setting = option("duckdb", "temp_directory") if given("duckdb", "temp_directory") else SETTING
    return SpillFolderUnusable(
        f"{setting}{' =' * (setting == SETTING)} {path}: DuckDB cannot spill there ({said}); the input files and the"
        f" data are not at fault. Make it a folder user {_user()} may write, or set {setting} to one {_where()}"
        " (empty: the default),"
        " then run the date again")


def _user() -> str:
    try:
        import pwd  # noqa: PLC0415 - POSIX only

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())


def ready_folder() -> str:
    """The spill folder, made if missing (0700) and checked by writing a file there (SpillFolderUnusable if it cannot
    be); the spill files of DuckDB processes that no longer run (a task killed while spilling) are removed."""
    path, default = folder(), not str(config.duckdb().temp_directory).strip()
    try:
        if default:  # in a folder every user may write: made by anyone
            make_private(path)
        else:
            os.makedirs(path, mode=0o700, exist_ok=True)
            if not stat.S_ISDIR(os.stat(path).st_mode):
                raise NotADirectoryError(f"{path} is not a folder")
        handle, probe = tempfile.mkstemp(prefix=".ecomm-probe-", dir=path)
        os.close(handle)
        os.remove(probe)
    except OSError as err:
        raise unusable(path, err) from None
    _clean_dead(path)
    return path


def _clean_dead(path: str) -> None:
    """Remove this user's spill files of processes that no longer run (DuckDB itself removes them only when it next
    spills there); a live one's are left alone, as `lake.clean_temp_files` does with a partition's temporary files.
    Best effort: a file it may not remove (another user's, in a shared folder) stays, and nothing fails for it."""
    removed = 0
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        match = _SPILL_FILE.match(name)
        if match is None or pids.process_alive(int(match[1])):
            continue
        try:
            if os.lstat(os.path.join(path, name)).st_uid == os.getuid():
                os.remove(os.path.join(path, name))
                removed += 1
        except OSError as err:
            logger.debug("could not remove the spill file %s of a process that no longer runs: %s", name, err)
    if removed:
        logger.warning("removed %s spill file(s) of DuckDB processes that no longer run from %s", removed, path)


def failure(error: BaseException) -> SpillFolderUnusable | None:
    """DuckDB's error about its spill folder (it cannot create it or write there) as the folder's; None: another (an
    input file or a lake path below the folder, or beside it with a name it begins, is not the folder)."""
    if not isinstance(error, (duckdb.IOException, duckdb.PermissionException)) or disk.no_space(error):
        return None
    try:
        path = folder().rstrip(os.sep)
    except config.BadSetting:
        return None
    text = str(error)
    named = f'"{path}"' in text or f"{path}{os.sep}duckdb_temp_" in text or f'"{path}{os.sep}"' in text
    return unusable(path, error) if named else None


def full(said: str, limit: str, threads: str) -> DuckDBSpillFull:
    """DuckDB's `failed to offload data block ...` as a full spill disk: which folder, its disk, what to do."""
    path = folder()
    return DuckDBSpillFull(
        f"DuckDB could not spill past {limit} into {path} ({SETTING}): {disk.is_full(path)}"
        f" ({said.rstrip('.')}); the data is not at fault. Free space there, or set {SETTING} to a folder on a bigger"
        f" disk, or raise memory_limit so less spills{threads}; then run the date again"
        " (docs/performance.md#bigger-days)")
