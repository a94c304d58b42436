"""The lake's layout, in one place: every path to a partition is built here.

Layout (hive style, readable by DuckDB, Spark, Trino and pandas alike):

    <lake>/<layer>/<table>/load_date=YYYY-MM-DD[/<key>=<value>]/data.parquet

A partition is one file, `data.parquet`, written under a temporary name beside it and moved into
place with an atomic rename: readers see the old file or the new one, never half a file. Temporary
names end in `.tmp-<pid>` so that no `*.parquet` glob ever matches them.

The root is a local folder or an object store URI (`s3://bucket/prefix`, see `pipeline.lake.s3`):
every file operation on the lake (exists, list, version, move into place, read and write a small
file, and DuckDB's own reads and writes) goes through the functions here, so switching the root
is a configuration change.
"""
from __future__ import annotations

import datetime as dt
import functools
import glob
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - generated at import (~0.2 s CPU); read_rows' casts and most tasks use it:
# imported here, in the process Luigi forks every task from, not once in each task process
import pyarrow.parquet as pq

from pipeline import config, faults, read_once
from pipeline.lake import s3 as lake_store
from pipeline.lake.access import duckdb_error, folder_refused, process_user, read_only, why_not_writable
from pipeline.lake.pids import process_alive

logger = logging.getLogger(__name__)

LAYERS = ("raw", "staging", "warehouse", "marts", "audit")
DATA_FILE = "data.parquet"
MANIFEST_FILE = "_manifest.json"  # a raw partition's completion marker, written last (pipeline.ingest.manifests)
RESTATEMENT_FILE = "restatement.json"  # audit/restatements: one JSON record per date (pipeline.tasks.restate)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class LakeUnreadable(RuntimeError):
    """The lake's store refused a read or did not answer (credentials, endpoint, bucket, network, permissions)."""


class LakeNotWritable(LakeUnreadable):
    """The lake may be read but not written by this process (another user's folder, a read-only mount)."""


class LakeFolderMissing(LakeUnreadable):
    """The lake folder is not there while the serving Postgres publishes dates built from one (`check_built_here`)."""


STORE_ERROR = "AWS Error"  # how pyarrow's S3 client words every error of the store: `AWS Error <CODE> during ...`


def store_error(error: BaseException) -> bool:
    """Whether an error is the object store's client refused or unanswered (pyarrow's `AWS Error <CODE>`): raised
    by pyarrow, or by DuckDB, which reads the lake through that client and raises its text as a `duckdb.Error`."""
    return (isinstance(error, OSError) or duckdb_error(error)) and STORE_ERROR in str(error)


def store_words(error: BaseException) -> str:
    """The store's error in one line: pyarrow's message (DuckDB's carries it in a Python traceback: that line)."""
    lines = str(error).strip().splitlines()
    line = next((line for line in lines if STORE_ERROR in line), " ".join(lines))
    return " ".join(line.removeprefix("OSError: ").split())


def store_refused(error: BaseException) -> bool:
    """Whether an error is the lake's store refusing or not answering, not the data: an S3 client error
    (`store_error`), a folder the process may not read, or a LakeUnreadable said already."""
    return isinstance(error, (PermissionError, LakeUnreadable)) or store_error(error)


def check_writable() -> None:
    """A folder lake this process may not write (`access.why_not_writable`): a LakeNotWritable before anything runs,
    not one failure per task."""
    if refusal := why_not_writable():
        raise LakeNotWritable(refusal)


def folder_missing() -> bool:
    """Whether the lake is a folder that is not there or an s3:// prefix holding no object: new, or the wrong one."""
    where = root()  # an s3:// root's bucket exists (LakeUnreadable otherwise)
    try:
        return lake_store.prefix_empty(where) if lake_store.is_remote(where) else not os.path.isdir(where)
    except OSError as err:
        raise unreadable(where, err) from err


def check_built_here(published: Callable[[], set[dt.date]]) -> None:
    """No lake (`folder_missing`) while the serving Postgres publishes dates (`published()`, asked only then): the wrong
    lake is named. Said before a date counts as published from no lake, or a new one starts beside the real one."""
    if folder_missing() and (dates := published()):
        where = config.lake_dir()
        what, new = ((f"prefix {where} holds no object", "the wrong prefix; fix that (to start a new lake there on"
                      " purpose, put an object under it first)") if lake_store.is_remote(where) else
                     (f"folder {where} does not exist", "the wrong folder, or its disk is not mounted; fix that (to"
                      f" start a new lake there on purpose, create the folder first: mkdir -p {where})"))
        raise LakeFolderMissing(
            f"the lake {what}, but the serving Postgres publishes {len(dates)} date(s) built from a lake (the latest"
            f" {max(dates)}): ECOMM_LAKE_DIR or [paths] lake_dir names {new}; nothing was written")


def unreadable(path: str, error: BaseException, done: str = "read") -> LakeUnreadable:
    """The LakeUnreadable for a lake file the store would not let be `done` (read, written): what to fix, and
    that the lake's data is not at fault (nothing should be removed)."""
    if folder_refused(error) and read_only(error):  # a mount turned read-only mid-run: no user may write there
        return LakeNotWritable(
            f"{path} cannot be {done}: {store_words(error)}; the lake folder is on a read-only file system: remount"
            " it read-write, or name a writable folder (ECOMM_LAKE_DIR or [paths] lake_dir), then run the date again;"
            " the landed data is not at fault")
    if folder_refused(error):
        return (LakeNotWritable if done == "written" else LakeUnreadable)(
            f"{path} cannot be {done}: {store_words(error)}; the lake is a folder user {process_user()} may not"
            f" {'write' if done == 'written' else 'read'} (ECOMM_LAKE_DIR or [paths] lake_dir): run as the lake's"
            " owner, or give this user access to it, then run the date again; the landed data is not at fault")
    return LakeUnreadable(
        f"{path} cannot be {done}: {store_words(error)}; the lake's store refused or did not answer (an s3:// lake:"
        " its credentials, AWS_ENDPOINT_URL, region and bucket; a folder: its permissions): fix that, then run the"
        " date again; the landed data is not at fault")


def root() -> str:
    """The lake's root (`config.lake_dir`); an s3:// root whose bucket does not exist is a LakeUnreadable, said
    before anything is read or written (else each landing would fail on its first write, as if its file were bad).
    Read once in a `read_once.scope` (a setting: ~0.5 ms, a few times a date in the summary of a range)."""
    where = read_once.once(("lake root",), config.lake_dir)
    if not lake_store.is_remote(where):
        return where
    try:
        exists = _bucket_exists(where)
    except OSError as err:
        if store_error(err):
            raise unreadable(where, err) from err
        raise
    if not exists:
        bucket = where.split("://", 1)[1].split("/", 1)[0]
        raise LakeUnreadable(
            f"the lake's bucket {bucket!r} does not exist (the lake is {where}: ECOMM_LAKE_DIR or [paths] lake_dir):"
            " create it, or fix the lake's address (docs/scaling-out.md); nothing was read or written")
    return where


@functools.lru_cache(maxsize=4)
def _bucket_exists(where: str) -> bool:  # one request per process (the task processes inherit a yes)
    return lake_store.bucket_exists(where)


class UnsafeName(ValueError):
    """A table, layer or key name that is not a plain lowercase identifier."""


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UnsafeName(f"refusing lake name {name!r}: only [a-z0-9_] names are allowed")
    return name


def parse_date(value: str | dt.date) -> dt.date:
    """A load date from text, refusing anything that is not exactly YYYY-MM-DD."""
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"not a date (expected YYYY-MM-DD): {value!r}")
    return dt.date.fromisoformat(value)


def table_dir(layer: str, table: str) -> str:
    """The folder holding every partition of a table."""
    if layer not in LAYERS:
        raise UnsafeName(f"unknown lake layer {layer!r}; expected one of {LAYERS}")
    return os.path.join(root(), layer, _check_name(table))


def partition_dir(layer: str, table: str, load_date: dt.date | str, **keys: str) -> str:
    """The folder of one (table, load_date[, keys]) partition."""
    parts = [table_dir(layer, table), f"load_date={parse_date(load_date).isoformat()}"]
    for key, value in keys.items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(value)):
            raise UnsafeName(f"refusing partition value {value!r}")
        parts.append(f"{_check_name(key)}={value}")
    return os.path.join(*parts)


def partition_file(layer: str, table: str, load_date: dt.date | str, **keys: str) -> str:
    """The data file of one partition."""
    return os.path.join(partition_dir(layer, table, load_date, **keys), DATA_FILE)


def table_glob(layer: str, table: str) -> str:
    """A glob matching every partition file of a table (for DuckDB's read_parquet)."""
    return os.path.join(table_dir(layer, table), "**", DATA_FILE)


def table_files(layer: str, table: str) -> list[str]:
    """Every partition file of a table that exists now, sorted by path (so by load_date)."""
    return files_matching(table_glob(layer, table))


def files_matching(pattern: str) -> list[str]:
    """The lake files matching a glob (`*` within a name, `**` any folders), sorted."""
    if lake_store.is_remote(pattern):
        return lake_store.glob(pattern)
    return sorted(glob.glob(pattern, recursive=True))


def exists(path: str) -> bool:
    """Whether a lake file exists."""
    if lake_store.is_remote(path):
        return lake_store.exists(path)
    return os.path.exists(path)


def remove(path: str) -> None:
    """Delete a lake file if it exists."""
    if lake_store.is_remote(path):
        lake_store.remove(path)
        return
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def open_input(path: str) -> pa.NativeFile:
    """A lake file opened for reading bytes (FileNotFoundError if it does not exist).

    An Arrow native file, local or remote, never a Python file object: Arrow's reader threads hold the
    buffers they read, and a buffer that wraps a Python object needs Python's lock to be freed. A
    thread that frees one while the interpreter shuts down (the luigi command prints its summary from
    lake files, then exits) is ended by Python in a way C++ cannot unwind, and the command aborted
    after all its work ("terminate called without an active exception", exit -6; apache/arrow#34314).
    """
    if lake_store.is_remote(path):
        return lake_store.open_input(path)
    return pa.OSFile(path, "rb")


def arrow_location(path: str) -> tuple[object | None, str]:
    """(filesystem, path) for pyarrow's readers and writers (filesystem None = local)."""
    if lake_store.is_remote(path):
        return lake_store.arrow_location(path)
    return None, path


def read_rows(path: str, *, columns: list[str] | None = None, schema: pa.Schema | None = None) -> list[dict]:
    """A small lake Parquet file's rows as dicts: only `columns`, or as `schema` (its columns, in its order
    and types; a column the file lacks is NULL, one it has beyond them is left out).

    Read with pq.ParquetFile, not pq.read_table: that one imports pyarrow.dataset, which imports pandas
    (~0.4 s CPU for the luigi process, or for each task process that reads a run audit file).
    """
    with open_input(path) as handle:
        table = pq.ParquetFile(handle).read(columns=columns, use_threads=False)  # small: threads cost more here
    if schema is not None and not table.schema.equals(schema):  # a file written with it needs no casts
        present = set(table.column_names)
        table = pa.table([table[f.name].cast(f.type) if f.name in present else pa.nulls(len(table), f.type)
                          for f in schema], schema=schema)
    return table.to_pylist()


def write_table(final_path: str, table: pa.Table) -> None:
    """Write a small Arrow table as a lake Parquet file, whole or not at all."""
    tmp = temp_path(final_path)
    filesystem, where = arrow_location(tmp)
    try:
        pq.write_table(table, where, filesystem=filesystem)
    except OSError as err:
        if folder_refused(err):
            raise unreadable(final_path, err, "written") from err
        raise
    promote(tmp, final_path)


def write_atomic(final_path: str, data: bytes) -> None:
    """Write a small lake file (a manifest) whole or not at all."""
    tmp = temp_path(final_path)
    if lake_store.is_remote(final_path):
        lake_store.write(tmp, data)
    else:
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
        except OSError as err:
            if folder_refused(err):
                raise unreadable(final_path, err, "written") from err
            raise
    promote(tmp, final_path)


def file_version(path: str) -> str | None:
    """An id of the file's current version, or None if it does not exist.

    Partition files are never modified in place (`promote` replaces them with a new file), so the
    inode, size and modification time change whenever a partition is rebuilt. On object storage:
    the object's size and modification time.
    """
    if lake_store.is_remote(path):
        return lake_store.version(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def temp_path(final_path: str) -> str:
    """A temporary path beside `final_path` that no reader's glob matches.

    Locally `.tmp-<pid>` (`clean_temp_files` checks whether that writer still runs); on object
    storage, writers on other hosts may share a pid, so the name is unique per write.
    """
    if lake_store.is_remote(final_path):  # object stores have no folders to make
        return f"{final_path}.tmp-{lake_store.writer_token()}"
    try:
        Path(final_path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # refused: another user's folder, a read-only file system
        if folder_refused(err):
            raise unreadable(final_path, err, "written") from err
        raise
    return f"{final_path}.tmp-{os.getpid()}"


def promote(tmp_path: str, final_path: str) -> None:
    """Move a fully written temporary file into place atomically."""
    faults.point("lake.promote", final_path)
    if lake_store.is_remote(final_path):  # a server-side copy: the object appears whole
        lake_store.move(tmp_path, final_path)
        logger.debug("wrote %s", final_path)
        return
    with open(tmp_path, "rb") as handle:  # the bytes reach the disk before the name does
        os.fsync(handle.fileno())
    os.replace(tmp_path, final_path)
    # manifests, restatement records and run audit twins too (partitions: sqlrun.copy_to_partition): one listing
    clean_temp_files(os.path.dirname(final_path))
    logger.debug("wrote %s", final_path)


def writer_alive(tmp_path: str) -> bool:
    """Whether the process named by a temporary file's `.tmp-<pid>` suffix still runs (a zombie does not)."""
    pid = tmp_path.rsplit(".tmp-", 1)[-1]
    return pid.isdigit() and process_alive(int(pid))



def clean_temp_files(folder: str) -> None:
    """Remove temporary files a killed writer left behind in a partition folder.

    The file of a writer that still runs is left alone: two processes may build the same partition
    at once (two runs of one date), and each must be able to finish its own file and rename it.
    On object storage the writer may run on another host, so only old temporary objects go.
    """
    if lake_store.is_remote(folder):
        lake_store.remove_stale_temps(folder)
        return
    for leftover in glob.glob(os.path.join(folder, "*.tmp-*")):
        if writer_alive(leftover):
            continue
        try:
            os.remove(leftover)
        except FileNotFoundError:
            continue
        logger.warning("removed leftover temporary file %s", leftover)
