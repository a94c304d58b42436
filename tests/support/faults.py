"""Helpers for the fault-injection tests (no tests here): real Luigi CLI runs, lake and serving audits.

- `Runner` runs `luigi --module pipeline.tasks ...` as a subprocess (so SIGKILL kills a real worker)
  against one lake, one incoming folder and one database on the module's embedded Postgres.
- `serving_state(dsn)` summarises every serving table in Postgres: a checksum per table (md5 of its
  ordered rows, computed by Postgres, run-specific columns left out), duplicate rows, leftover
  publish stage tables and whether audit.publish_log agrees with the data.
- `lake_state(root)` does the same for the lake: every data.parquet must be a whole Parquet file,
  no temporary file may be matched by a reader's glob, and each partition gets a content checksum.
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pyarrow.parquet as pq
import pytest

from pipeline import lake
from pipeline.serving import pg
from tests.support.paths import REPO, SEED_INCOMING
from tests.support.postgres import PG_ENV, EmbeddedServer, embedded_in_temp_dir
from tests.support.serving import VOLATILE

D = "2025-12-15"  # a seed-format day with a products snapshot: every source lands
RUN_ENV_DROP = (*PG_ENV, "ECOMM_FAULT", "ECOMM_FAULT_DIR", "ECOMM_FAULT_PAUSE_SECONDS", "ECOMM_PRODUCTS_URL",
                "ECOMM_USERS_URL", "ECOMM_DATA_DIR", "ECOMM_LAKE_DIR", "LUIGI_CONFIG_PATH", "ECOMM_RUN_ID")
# Luigi's retry policy for the tests: the production luigi.cfg (cwd) is read first, this file last.
# Only the delay changes: the retry count stays luigi.cfg's.
TEST_LUIGI_CFG = """\
[scheduler]
retry_delay = 1
[worker]
wait_interval = 0.1
wait_jitter = 0
"""
# Serving columns that legitimately differ between two runs of the same data.
VOLATILE_COLUMNS = VOLATILE | {"runtime_seconds"}
# Run bookkeeping, not served data: attempts differ by design when a run was killed.
RUN_TABLES = {"audit.pipeline_runs"}
# Lake columns that record when and by which run, not what (dq_results' checked_at and run_id name its gate run).
VOLATILE_LAKE_COLUMNS = ("_ingested_at", "checked_at", "ingested_at", "run_id")
RUN_LAKE_TABLES = ("audit/pipeline_runs",)


def clean_env(**extra: str) -> dict[str, str]:
    """The parent environment without any pipeline setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in RUN_ENV_DROP}
    env.update(extra)
    return env


@dataclasses.dataclass
class Runner:
    """Luigi CLI runs against one lake and one database."""

    server: EmbeddedServer
    root: Path
    database: str
    incoming: Path = SEED_INCOMING
    dsn_env: bool = False  # point the pipeline at the server through ECOMM_PG_DSN (never autostarted)
    luigi_cfg: str = TEST_LUIGI_CFG

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def fault_dir(self) -> Path:
        path = self.root / "faults"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.database)

    def env(self, fault: str | None = None, **extra: str) -> dict[str, str]:
        cfg = self.root / "luigi-test.cfg"
        if not cfg.exists():
            cfg.write_text(self.luigi_cfg)
        env = clean_env(ECOMM_DATA_DIR=str(self.incoming), ECOMM_LAKE_DIR=str(self.lake),
                        ECOMM_FAULT_DIR=str(self.fault_dir), LUIGI_CONFIG_PATH=str(cfg))
        if self.dsn_env:
            env["ECOMM_PG_DSN"] = self.dsn
        else:
            env.update(ECOMM_PG_DATA=str(self.server.data_dir), ECOMM_PG_PORT=str(self.server.port),
                       ECOMM_PG_DATABASE=self.database)
        if fault:
            env["ECOMM_FAULT"] = fault
        env.update(extra)
        return env

    def command(self, task: str = "DailyPipeline", *args: str, date: str = D) -> list[str]:
        # --no-lock: Luigi's pid lock refuses a second identical command line on this host; the
        # tests run the same command in parallel on purpose, and other sessions may run it too
        return [sys.executable, "-m", "luigi", "--module", "pipeline.tasks", task, "--date", date,
                "--local-scheduler", "--no-lock", *args]

    def run(self, task: str = "DailyPipeline", *args: str, fault: str | None = None, date: str = D,
            timeout: float = 180, **extra: str) -> subprocess.CompletedProcess:
        """One CLI run; its output (stdout + stderr) is in `.stdout`."""
        return subprocess.run(self.command(task, *args, date=date), check=False, cwd=REPO, env=self.env(fault, **extra),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)

    def start(self, task: str = "DailyPipeline", *args: str, fault: str | None = None, date: str = D,
              log: Path | None = None, **extra: str) -> subprocess.Popen:
        """A CLI run in the background, its output going to `log`."""
        out = open(log or self.root / "run.log", "w")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(self.command(task, *args, date=date), cwd=REPO, env=self.env(fault, **extra),
                                stdout=out, stderr=subprocess.STDOUT, text=True)

    def fired(self) -> list[str]:
        path = self.fault_dir / "fired.log"
        return path.read_text().splitlines() if path.exists() else []


def killed(result: subprocess.CompletedProcess | subprocess.Popen) -> bool:
    """Whether the run's main process (the Luigi worker) died of SIGKILL."""
    return result.returncode == -signal.SIGKILL


@contextlib.contextmanager
def module_server() -> Iterator[EmbeddedServer]:
    """An embedded Postgres of the module's own, in a temporary directory (stopped at the end)."""
    with embedded_in_temp_dir() as server:
        with pytest.MonkeyPatch.context() as mp:
            server.env(mp, "postgres")
            pg.start_embedded()
        yield server


def start_server(server: EmbeddedServer) -> None:
    with pytest.MonkeyPatch.context() as mp:
        server.env(mp, "postgres")
        pg.start_embedded()


def stop_server(server: EmbeddedServer) -> None:
    with pytest.MonkeyPatch.context() as mp:
        server.env(mp, "postgres")
        pg.stop_embedded()


def create_database(server: EmbeddedServer, name: str) -> str:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return server.dsn(name)


# ---------------------------------------------------------------------------------------- serving
TABLES_SQL = """
select n.nspname, c.relname
from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where n.nspname in ('warehouse', 'audit') and c.relkind in ('r', 'p') and not c.relispartition
order by 1, 2
"""
COLUMNS_SQL = """
select a.attname from pg_attribute as a
where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum
"""


@dataclasses.dataclass
class ServingState:
    checksums: dict[str, tuple[int, str]]  # table -> (rows, md5 of the ordered rows)
    duplicates: dict[str, int]  # table -> rows beyond the first of identical rows
    relations: list[str]  # every relation in warehouse/audit (partitions included)
    publish_log: list[tuple]  # (load_date, fact_orders_rows, fact_events_rows)
    fact_rows: list[tuple]  # (load_date, orders rows, events rows) as the fact tables hold them


def serving_state(dsn: str) -> ServingState:
    """Every serving table's checksum and the completion markers, computed in Postgres."""
    checksums, duplicates = {}, {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema, table in conn.execute(TABLES_SQL).fetchall():
            name = f"{schema}.{table}"
            if name in RUN_TABLES:
                continue
            columns = [c for (c,) in conn.execute(COLUMNS_SQL, [name]).fetchall() if c not in VOLATILE_COLUMNS]
            row = "row(" + ", ".join(f't."{c}"' for c in columns) + ")::text"
            count, digest, distinct = conn.execute(
                f"select count(*), md5(coalesce(string_agg(r, E'\\n' order by r), '')), count(distinct r)"
                f' from (select {row} as r from "{schema}"."{table}" as t) as s'
            ).fetchone()
            checksums[name] = (count, digest)
            duplicates[name] = count - distinct
        relations = [r for (r,) in conn.execute(
            "select n.nspname || '.' || c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname in ('warehouse', 'audit', 'preload') and c.relkind in ('r', 'p', 'v') order by 1").fetchall()]
        if conn.execute("select to_regclass('audit.publish_log') is null").fetchone()[0]:
            return ServingState(checksums, duplicates, relations, [], [])  # the schema was never applied
        publish_log = conn.execute(
            "select load_date, fact_orders_rows, fact_events_rows from audit.publish_log order by 1").fetchall()
        fact_rows = conn.execute(
            """select coalesce(o.load_date, e.load_date), coalesce(o.n, 0), coalesce(e.n, 0)
               from (select load_date, count(*) as n from warehouse.fact_orders_all group by 1) as o
               full join (select load_date, count(*) as n from warehouse.fact_events_all group by 1) as e
                   on e.load_date = o.load_date
               order by 1""").fetchall()
    return ServingState(checksums, duplicates, relations, publish_log, fact_rows)


def assert_serving_consistent(state: ServingState) -> None:
    """No duplicate rows, no leftover stage tables, publish_log = what the fact tables hold."""
    assert {t: n for t, n in state.duplicates.items() if n} == {}, "duplicate rows in serving tables"
    assert [r for r in state.relations if r.endswith("_load")] == [], "a publish stage table was left behind"
    assert [r for r in state.relations if r.startswith("preload.") and r != "preload.fact_loads"] == [], \
        "a preload was left behind by a published date"
    assert state.publish_log == state.fact_rows, "audit.publish_log disagrees with the fact tables"


def database_exists(server: EmbeddedServer, name: str) -> bool:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        return conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone() is not None


# ------------------------------------------------------------------------------------------- lake
@dataclasses.dataclass
class LakeState:
    partitions: dict[str, tuple[int, str]]  # relative data.parquet path -> (rows, content checksum)
    manifests: list[str]  # relative _manifest.json paths
    temp_files: list[str]  # relative *.tmp-* paths


def _is_run_table(rel: str) -> bool:
    return any(rel.startswith(prefix + "/") for prefix in RUN_LAKE_TABLES)


def lake_state(root: Path) -> LakeState:
    """Every partition of the lake, checked whole, with a content checksum (volatile columns aside)."""
    partitions = {}
    con = duckdb.connect()
    for path in sorted(glob.glob(str(root / "**" / lake.DATA_FILE), recursive=True)):
        rel = os.path.relpath(path, root)
        if _is_run_table(rel):
            continue
        meta = pq.read_metadata(path)  # raises on a truncated file: a partial partition
        schema = pq.read_schema(path)
        keep = [n for n in schema.names if n not in VOLATILE_LAKE_COLUMNS]
        cols = ", ".join(f'"{n}"' for n in keep)
        digest = con.execute(
            f"select coalesce(bit_xor(hash(row({cols}))), 0)::varchar from read_parquet($p, hive_partitioning = false)",
            {"p": path},
        ).fetchone()[0] if keep else ""
        partitions[rel] = (meta.num_rows, digest)
    con.close()
    manifests = sorted(os.path.relpath(p, root) for p in glob.glob(str(root / "**" / "_manifest.json"), recursive=True))
    temps = sorted(os.path.relpath(p, root) for p in glob.glob(str(root / "**" / "*.tmp-*"), recursive=True))
    return LakeState(partitions, manifests, [t for t in temps if not _is_run_table(t)])


def assert_no_reader_sees_temp_files(root: Path) -> None:
    """The readers' globs (pipeline.lake, DuckDB hive reads) match whole data.parquet files only."""
    for path in glob.glob(str(root / "**" / "*.tmp-*"), recursive=True):
        assert not path.endswith(".parquet"), path
    for layer in lake.LAYERS:
        for table_dir in glob.glob(str(root / layer / "*")):
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("ECOMM_LAKE_DIR", str(root))
                files = lake.table_files(layer, os.path.basename(table_dir))
            assert all(os.path.basename(f) == lake.DATA_FILE for f in files), files
