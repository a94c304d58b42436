"""Shared helpers for the operations tests (tests/test_ops_*.py): real `luigi` CLI runs, real files,
a fresh database per test on the session's embedded Postgres (the `ops` fixture, registered by
tests/conftest.py). No tests here."""
from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from tests.support.paths import REPO, SEED_INCOMING
from tests.support.postgres import PG_ENV, EmbeddedServer
from tests.support.processes import free_port

SEED_DAY = dt.date(2025, 12, 15)


@dataclasses.dataclass
class Ops:
    """One test's world: incoming files, a lake and a fresh database, as a `luigi` run sees them."""

    incoming: Path
    lake: Path
    server: EmbeddedServer
    database: str
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
        return {**base, "ECOMM_DATA_DIR": str(self.incoming), "ECOMM_LAKE_DIR": str(self.lake),
                "ECOMM_PG_DATA": str(self.server.data_dir), "ECOMM_PG_PORT": str(self.server.port),
                "ECOMM_PG_DATABASE": self.database, **self.extra_env}

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.database)

    def luigi(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """`luigi --module pipeline.tasks ARGS` as a user runs it (exit code, stdout, stderr)."""
        return subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", *args],
                              cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def pipeline(self, *args: str) -> subprocess.CompletedProcess:
        """`python -m pipeline ARGS` (summary, demo ...)."""
        return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=300, check=False)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", *args],
                                cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql, params).fetchall()

    def executions(self, day: dt.date = SEED_DAY) -> list[dict[str, Any]]:
        """The lake twin of the run audit for a date (all runs)."""
        pattern = str(self.lake / "audit" / "pipeline_runs" / f"load_date={day}" / "*" / "*" / "data.parquet")
        return [row for path in glob.glob(pattern) for row in pq.read_table(path).to_pylist()]

    def lake_rows(self, layer: str, table: str, day: dt.date = SEED_DAY) -> int:
        files = glob.glob(str(self.lake / layer / table / f"load_date={day}" / "**" / "data.parquet"), recursive=True)
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)

    def generate(self, start: dt.date, days: int, orders: int = 300, events: int = 2000, dirty: float = 0.02) -> None:
        from devtools import generate

        generate.generate(start, days, self.incoming, orders_per_day=orders, events_per_day=events, dirty_rate=dirty)


def copy_seed(incoming: Path) -> None:
    """The seed system's two fixture days, copied so a test may break them."""
    import shutil

    shutil.copytree(SEED_INCOMING, incoming, dirs_exist_ok=True)


@pytest.fixture
def ops(tmp_path: Path, embedded_server: EmbeddedServer) -> Ops:
    """A fresh world for one test, the seed fixture days as its incoming files."""
    incoming = tmp_path / "incoming"
    copy_seed(incoming)
    # luigid of luigi.cfg (127.0.0.1:8082) is a developer's: a test's runs never talk to it (a run's
    # summary asks luigid about the dates); LUIGI_CONFIG_PATH adds to luigi.cfg, option by option
    local_cfg = tmp_path / "luigi-test.cfg"
    local_cfg.write_text(f"[core]\nscheduler_port = {free_port()}\n")
    return Ops(incoming=incoming, lake=tmp_path / "lake", server=embedded_server,
               database=f"ops_{uuid.uuid4().hex[:10]}", extra_env={"LUIGI_CONFIG_PATH": str(local_cfg)})


def assert_published_once(ops: Ops, day: dt.date) -> None:
    """The serving tables hold exactly what one run publishes for the date: the lake's rows, once."""
    assert ops.query("select count(*) from audit.publish_log where load_date = %s", [day]) == [(1,)]
    facts = ops.query("select (select count(*) from warehouse.fact_orders_all where load_date = %(d)s),"
                      " (select count(distinct order_id) from warehouse.fact_orders_all where load_date = %(d)s),"
                      " (select count(*) from warehouse.fact_events_all where load_date = %(d)s),"
                      " (select count(distinct event_id) from warehouse.fact_events_all where load_date = %(d)s)",
                      {"d": day})[0]
    orders, events = ops.lake_rows("warehouse", "fact_orders", day), ops.lake_rows("warehouse", "fact_events", day)
    assert facts == (orders, orders, events, events)
    assert ops.query("select count(*) from warehouse.daily_metrics where run_date = %s", [day]) == [(1,)]
    assert ops.query("select count(*) from audit.bad_records where load_date = %s", [day]) == [
        (ops.lake_rows("audit", "bad_records", day),)]
    dq = pq.read_table(str(ops.lake / "audit" / "dq_results" / f"load_date={day}" / "data.parquet")).to_pylist()
    assert ops.query("select count(*) from audit.dq_failures where run_date = %s", [day]) == [
        (sum(r["outcome"] != "pass" for r in dq),)]


def restate_with_unusable_orders(ops: Ops) -> subprocess.CompletedProcess:
    """Publish the seed day, then restate it with two thirds of its orders unusable (quantity "many"): the gate
    blocks the new file (exit 30) and Postgres keeps the published version."""
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0
    path = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    orders = json.loads(path.read_text())
    for i, order in enumerate(orders):
        if i % 3:
            order["quantity"] = "many"
    path.write_text(json.dumps(orders))
    blocked = ops.pipeline("restate", "--date", str(SEED_DAY))
    assert blocked.returncode == 30, blocked.stdout[-3000:] + blocked.stderr[-2000:]
    return blocked
