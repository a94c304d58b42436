"""Luigi forks every task process from its worker: each takes a DuckDB database made before the fork.

A new in-memory DuckDB database costs ~40 ms of CPU (its built-in catalog), once per task process
and ~24 task processes a date. The worker makes one before its first fork and never uses it; each
forked process's first `sqlrun.connect()` is its copy (`pipeline.lake.sqlrun._take_spare`).
"""
from __future__ import annotations

import os
import sys

import duckdb
import psutil

from pipeline import config
from pipeline.lake import sqlrun


def _in_child(check) -> int:
    """Run `check()` in a forked process; its exit code (0: every assertion held)."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            check()
            code = 0
        except BaseException as err:  # noqa: BLE001 - reported through the exit code and stderr
            print(f"in the forked process: {err!r}", file=sys.stderr, flush=True)
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_forked_process_connects_to_the_database_made_before_the_fork() -> None:
    def check() -> None:
        inherited = sqlrun._spare[1]
        con = sqlrun.connect()
        assert con is inherited, "the first connection of a forked process is the inherited database"
        assert con.execute("select current_setting('threads')").fetchone()[0] == config.duckdb_threads()
        with duckdb.connect() as fresh:  # the settings of a database made here, async I/O pool included
            default_async = fresh.execute("select current_setting('async_threads')").fetchone()[0]
        assert con.execute("select current_setting('async_threads')").fetchone()[0] == default_async
        con.execute("create temp table seen as select 42 as answer")
        with sqlrun.connect() as second:
            assert second is not inherited, "the database is taken once; the next connection is new"
        con.close()

    assert _in_child(check) == 0
    assert sqlrun._spare is not None and sqlrun._spare[0] == os.getpid(), "the spare stays the parent's"
    spare = sqlrun._spare[1]
    with sqlrun.connect() as own:
        assert own is not spare, "the process that made it never uses it"

    def untouched() -> None:
        con = sqlrun.connect()
        assert con is spare
        tables = con.execute("select count(*) from duckdb_tables()").fetchone()[0]
        assert tables == 0, "each fork gets the untouched database, not one an earlier task used"

    assert _in_child(untouched) == 0


def test_the_database_made_before_a_fork_runs_no_thread() -> None:
    """A fork copies only the forking thread: a database whose threads stayed behind would hang its child."""
    process = psutil.Process()
    before = process.num_threads()
    con = sqlrun._new_spare()
    try:
        assert process.num_threads() == before
    finally:
        con.close()
