"""Running the pipeline's SQL in DuckDB: one quoting helper, bound parameters, atomic partitions.

Model files live in `sql/<layer>/<table>.sql`, one SELECT each; Python wraps the SELECT in the
`COPY ... TO` that writes the table's partition. Values are always bound (`$load_date`), never
formatted into the text; the only identifiers that reach SQL text go through `quote_ident`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from pipeline import config, faults, lake, resources
from pipeline.lake import disk, s3, spill
from pipeline.setting_source import fix_where, named

logger = logging.getLogger(__name__)

SQL_DIR = resources.SQL_DIR


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB and Postgres (the one place identifiers enter SQL text)."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"not an identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def sql_text(layer: str, table: str) -> str:
    """The text of `sql/<layer>/<table>.sql`."""
    path = SQL_DIR / layer / f"{lake._check_name(table)}.sql"
    return path.read_text(encoding="utf-8")


def connect(database: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the memory limit and threads from [duckdb], able to reach the lake.

    The first in-memory one of a forked process is the database its parent made before the fork
    (`_take_spare`).
    """
    spare = _take_spare() if database == ":memory:" and not read_only else None
    con = spare if spare is not None else duckdb.connect(database, read_only=read_only)
    if spare is not None:
        con.execute("reset async_threads")  # the pool a new database starts with (see _new_spare)
    if s3.is_remote(config.lake_dir()):
        s3.register_duckdb(con)
    apply_settings(con)
    con.execute("set TimeZone = 'UTC'")
    try:
        con.execute("set enable_progress_bar = false")
    except duckdb.Error:  # inside Jupyter DuckDB ties the progress bar to ipywidgets
        pass
    return con


def apply_settings(con: duckdb.DuckDBPyConnection) -> None:
    """[duckdb] memory_limit, threads and temp_directory on a connection (BadSetting naming a memory_limit DuckDB
    cannot read or would take as no limit, a negative thread count, a spill folder this user cannot write)."""
    limit = config.duckdb().memory_limit
    try:
        con.execute("set memory_limit = $m", {"m": limit})
    except duckdb.Error as err:
        reason = str(err).strip().splitlines()[0].removeprefix("Parser Error: ")
        raise config.BadSetting(f"{named('duckdb', 'memory_limit', limit)} is not valid ({reason}): give a size such as"
                                f" 1GB or 512MB, {fix_where('duckdb', 'memory_limit')}") from None
    if not _PLAIN_SIZE.fullmatch(str(limit).strip()):  # DuckDB takes a negative size, or `none`, as no limit at all
        try:
            shown = con.execute("select current_setting('memory_limit')").fetchone()[0]
        except duckdb.OutOfMemoryException:  # `0MB`, `-0`: not even this query runs
            shown = ""
        if shown in (_NO_LIMIT, ""):
            what = "no limit at all" if shown else "too little memory to run any query"
            where = fix_where("duckdb", "memory_limit")
            raise config.BadSetting(f"{named('duckdb', 'memory_limit', limit)} is not valid (DuckDB takes it as"
                                    f" {what}): give a size such as 1GB or 512MB, {where}")
    con.execute("set threads = $t", {"t": config.duckdb_threads()})
    con.execute("set temp_directory = $d", {"d": spill.ready_folder()})


class DuckDBOutOfMemory(Exception):
    """A task's DuckDB needed more memory than [duckdb] memory_limit allows: a setting to raise, not bad data."""


def out_of_memory(err: duckdb.OutOfMemoryException) -> DuckDBOutOfMemory | spill.DuckDBSpillFull:
    """DuckDB's out-of-memory error as one line naming the setting, its value and what to do (only what would change
    something: `threads = 1` where a task has more); a spill that filled its folder's disk as that."""
    said = (str(err).strip().splitlines() or [""])[0].removeprefix("Out of Memory Error: ")
    limit = config.duckdb().memory_limit
    threads = ", or set [duckdb] threads = 1" if config.duckdb_threads() > 1 else ""  # each thread holds its share
    if spill.OFFLOAD_FAILED in said:  # the spill reached max_temp_directory_size: what its disk had free
        return spill.full(said, f"[duckdb] memory_limit = {limit}", threads)
    return DuckDBOutOfMemory(f"DuckDB ran out of memory under [duckdb] memory_limit = {limit} ({said}): raise it"
                             f"{threads} (docs/performance.md#bigger-days)")


# how DuckDB shows the memory_limit it makes of `-1`, `-5GB` or `none`: 2^64 - 1 bytes, no limit
_NO_LIMIT = "16383.9 PiB"


# a memory_limit of this form DuckDB always reads (luigi.cfg's own is one): no throwaway connection to check it
_PLAIN_SIZE = re.compile(r"[1-9][0-9]{0,5}\s*[KMGT]i?B", re.IGNORECASE)


def check_settings() -> None:
    """Refuse now (BadSetting) a [duckdb] value every task's connection would refuse: applied to a throwaway one."""
    spill.ready_folder()  # the spill folder: made, and written to once (SpillFolderUnusable)
    if _PLAIN_SIZE.fullmatch(str(config.duckdb().memory_limit).strip()):
        config.duckdb_threads()  # a negative count (BadSetting)
        return
    _check_settings(config.duckdb().memory_limit, config.duckdb().threads)


@functools.lru_cache(maxsize=8)
def _check_settings(memory_limit: str, threads: int) -> None:  # the values: once per process (each date asks)
    with duckdb.connect() as con:
        apply_settings(con)


def register_parquet(con: duckdb.DuckDBPyConnection, name: str, files: list[str] | str) -> None:
    """Expose parquet files as a relation called `name` for the model SQL to read."""
    con.register(name, con.read_parquet(files, union_by_name=True))


def bind(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The subset of `params` that `sql` refers to as `$name` (DuckDB rejects unused ones)."""
    used = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", sql))
    return {name: value for name, value in params.items() if name in used}


class SqlUnparsable(ValueError):
    """A model's SQL does not parse, so what it reads cannot be known; fix the SQL file."""


@dataclasses.dataclass(frozen=True)
class References:
    """What a SELECT names: the relations it reads (CTEs excluded, in order of first mention) and types."""

    relations: tuple[str, ...]
    types: frozenset[str]  # every type name it casts to, built-in ones included (varchar, decimal ...)


_parsers: list[tuple[int, duckdb.DuckDBPyConnection]] = []  # at most one: (the pid that opened it, it)
_parser_lock = threading.Lock()


def _parser() -> duckdb.DuckDBPyConnection:
    """This process's connection for parsing SQL (only parses: no lake, no settings).

    One per process: a new DuckDB database per model costs ~25 ms, and Luigi's scheduling asks for
    every model's inputs before the first task starts. It is closed before the process forks (a
    DuckDB database and its threads are not fork-safe; Luigi forks every task), and a process that
    finds one of another pid (forked without the hook) opens its own and leaves that one alone.
    """
    if not _parsers or _parsers[-1][0] != os.getpid():
        _parsers.append((os.getpid(), duckdb.connect()))
    return _parsers[-1][1]


def _close_parser_before_fork() -> None:
    with _parser_lock:
        if _parsers and _parsers[-1][0] == os.getpid():
            _parsers.pop()[1].close()


# An empty in-memory DuckDB database, made by a process before it forks and never used by it: each
# forked process (Luigi runs every task in one) takes its copy for its first `connect()` instead of
# building a database of its own: the built-in catalog's construction is ~40 ms of CPU per task
# process, ~1 s a date (docs/performance.md).
_spare: tuple[int, duckdb.DuckDBPyConnection] | None = None  # (the pid it belongs to, the database)
_spare_lock = threading.Lock()


def _new_spare() -> duckdb.DuckDBPyConnection:
    """A database that starts no thread (a fork copies only the forking thread): one worker, no async I/O pool."""
    return duckdb.connect(config={"threads": 1, "async_threads": 0})


def _spare_before_fork() -> None:
    """Have an untouched database for the child to inherit (made once; one inherited unused is passed on)."""
    global _spare
    with _spare_lock:
        if _spare is None:
            _spare = (os.getpid(), _new_spare())
        elif _spare[0] != os.getpid():
            _spare = (os.getpid(), _spare[1])


def _take_spare() -> duckdb.DuckDBPyConnection | None:
    """The database inherited from the parent process, once (None in the process that made it)."""
    global _spare
    with _spare_lock:
        if _spare is None or _spare[0] == os.getpid():
            return None
        spare, _spare = _spare[1], None
        return spare


if hasattr(os, "register_at_fork"):
    # hooks run in reverse order of registration: the parser is closed before the spare is made
    os.register_at_fork(before=_spare_before_fork)
    os.register_at_fork(before=_close_parser_before_fork)


@functools.lru_cache(maxsize=64)  # Luigi asks every model task's requires() several times per run
def references(select_sql: str) -> References:
    """The relations and types a SELECT names: what the warehouse tasks require is derived from this.

    DuckDB's `get_table_names` would bind the query (it refuses `$name` parameters and needs every
    macro and type to exist), so this walks the parse tree of `json_serialize_sql` instead, which
    only parses. A name is a CTE where a `with` in scope defines it before use.
    """
    with _parser_lock:  # a DuckDB connection is not for concurrent use
        tree = json.loads(_parser().execute("select json_serialize_sql($q)", {"q": select_sql}).fetchone()[0])
    if tree.get("error"):
        raise SqlUnparsable(f"{tree.get('error_message', 'the SQL does not parse')} in:\n{select_sql[:300]}")
    relations: dict[str, None] = {}
    types: set[str] = set()
    _walk(tree, frozenset(), relations, types)
    return References(tuple(relations), frozenset(types))


@functools.lru_cache(maxsize=16)
def output_columns(select_sql: str) -> tuple[str, ...]:
    """The names of the columns a model's SELECT gives, in order, from its parse alone (no lake, no binding).

    A model ends in `select * from final` (the conventions): a `*` over one of its CTEs is that CTE's columns.
    Every other item needs a name (an alias or a column reference); anything else is SqlUnparsable.
    """
    with _parser_lock:
        tree = json.loads(_parser().execute("select json_serialize_sql($q)", {"q": select_sql}).fetchone()[0])
    if tree.get("error"):
        raise SqlUnparsable(f"{tree.get('error_message', 'the SQL does not parse')} in:\n{select_sql[:300]}")
    node = tree["statements"][0]["node"]
    ctes = {entry["key"]: entry["value"]["query_node"] for entry in (node.get("cte_map") or {}).get("map", [])}
    return tuple(_select_names(node, ctes, select_sql[:300]))


def _select_names(node: dict[str, Any], ctes: dict[str, Any], where: str) -> list[str]:
    """The names of a SELECT node's columns (a `*` over a CTE of `ctes`: that CTE's)."""
    if node.get("type") != "SELECT_NODE":
        raise SqlUnparsable(f"not a plain SELECT (a set operation?): name its columns in a final CTE, in:\n{where}")
    source = (node.get("from_table") or {}).get("table_name")
    names: list[str] = []
    for item in node["select_list"]:
        if item["class"] == "STAR" and source in ctes and ctes[source] is not node:
            names += _select_names(ctes[source], ctes, where)
        elif item.get("alias") or item["class"] == "COLUMN_REF":
            names.append(item.get("alias") or item["column_names"][-1])
        else:
            raise SqlUnparsable(f"a select item without a name (alias it) in:\n{where}")
    return names


def _walk(node: Any, ctes: frozenset[str], relations: dict[str, None], types: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, ctes, relations, types)
        return
    if not isinstance(node, dict):
        return
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        for entry in cte_map.get("map", []):
            body = entry["value"]
            recursive = (body.get("query_node") or {}).get("type") == "RECURSIVE_CTE_NODE"
            # a CTE sees the ones defined before it (and itself only when recursive)
            _walk(body, ctes | {entry["key"]} if recursive else ctes, relations, types)
            ctes = ctes | {entry["key"]}
    if node.get("type") == "BASE_TABLE":
        name = ".".join(part for part in (node.get("schema_name"), node.get("table_name")) if part)
        if name not in ctes:
            relations.setdefault(name, None)
    elif node.get("type") == "TYPE" and node.get("type_name"):
        types.add(node["type_name"])
    for key, value in node.items():
        if key != "cte_map":
            _walk(value, ctes, relations, types)


class EmptyResult(Exception):
    """A partition that must hold rows came out empty (it was not written)."""


def copy_to_partition(
    con: duckdb.DuckDBPyConnection, select_sql: str, params: dict[str, Any], final_path: str,
    *, require_rows: bool = False, check: Callable[[int], None] | None = None, metadata: dict[str, str] | None = None,
) -> int:
    """Write the result of `select_sql` to `final_path` atomically; return the row count.

    With `require_rows`, an empty result raises `EmptyResult` and nothing is written. `check` is
    called with the row count before the file is moved into place; whatever it raises leaves
    nothing written. `metadata`: key-value pairs for the file's Parquet footer (read back without the data).
    """
    lake.clean_temp_files(os.path.dirname(final_path))
    tmp = lake.temp_path(final_path)
    try:
        options, bound = "", {**bind(select_sql, params), "target_file": tmp}
        if metadata:
            options, bound["kv_metadata"] = ", kv_metadata $kv_metadata", metadata
        try:
            con.execute(
                f"copy ({select_sql}) to $target_file (format parquet, compression zstd, row_group_size 122880{options})",
                bound,
            )
        except duckdb.Error as err:  # the store refused the write (or a read): the lake's, not the query's
            if (unusable := spill.failure(err)) is not None:  # nor the query's: the folder DuckDB spills to
                raise unusable from err
            if lake.store_error(err) or lake.folder_refused(err):
                raise lake.unreadable(final_path, err, "written") from err
            if disk.no_space(err):  # a full disk, not the query's (nor its input's) fault
                raise disk.full(final_path, err) from err
            raise
        faults.point("lake.write", tmp)
        rows = con.execute("select count(*) from read_parquet($p)", {"p": tmp}).fetchone()[0]
        if require_rows and rows == 0:
            raise EmptyResult(f"no rows for {final_path}")
        if check is not None:
            check(rows)
        lake.promote(tmp, final_path)
    except BaseException:
        lake.remove(tmp)
        try:
            os.rmdir(os.path.dirname(final_path))  # leave no empty partition folder behind (local)
        except OSError:
            pass
        raise
    logger.debug("%s rows -> %s", rows, final_path)
    return rows


def run_model(
    con: duckdb.DuckDBPyConnection, layer: str, table: str, params: dict[str, Any], final_path: str,
    metadata: dict[str, str] | None = None,
) -> int:
    """Run `sql/<layer>/<table>.sql` with bound params and write its partition (`metadata`: its footer's)."""
    return copy_to_partition(con, sql_text(layer, table), params, final_path, metadata=metadata)


def model_path(layer: str, table: str) -> Path:
    """The model file of a table (for tasks that show what they run)."""
    return SQL_DIR / layer / f"{table}.sql"
