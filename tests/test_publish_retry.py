"""Publish retries only what can heal: a data error fails at once, a transient one is retried and succeeds.

Luigi retries a task whole and cannot tell errors apart, so Publish and the Preloads run once in
Luigi (retry_count = 1) and retry inside the task (pipeline.serving.retry). Tested through the real
task (`tasks.Publish(...).run()`) and a real Luigi run, on real Postgres servers: one stopped and
started again, and a lock held by another writer session.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator

import luigi
import psycopg
import pytest

from pipeline import tasks
from pipeline.quality import gate
from pipeline.quality.results import CheckResult
from pipeline.serving import locks, migrations, preload, publish, retry
from pipeline.tasks import run_audit
from tests.support.postgres import PG_ENV, ThrowawayPostgres
from tests.support.serving import event, order, write_facts, write_rows

D = dt.date(2025, 12, 14)
RETRY_LINE = re.compile(r"^publishing 2025-12-14 failed: (?P<error>.+); this can heal, will retry:"
                        r" attempt (?P<k>\d+) of (?P<n>\d+) at \d\d:\d\d:\d\d \S+ \(in [0-9.]+s\)$")


class OnRetry(logging.Handler):
    """Calls `action` at the first retry line the task logs (e.g. to bring Postgres back)."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.action, self.lines = action, []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if len(self.lines) == 1:
            self.action()


@contextlib.contextmanager
def on_retry(action: Callable[[], None]) -> Iterator[OnRetry]:
    handler = OnRetry(action)
    source = logging.getLogger("pipeline.serving.retry")
    source.addHandler(handler)
    try:
        yield handler
    finally:
        source.removeHandler(handler)


@pytest.fixture
def quick_retries(luigi_settings):
    luigi_settings("publish", attempts=3, retry_backoff_seconds=0.1, retry_backoff_max_seconds=0.1)


def test_publish_and_preloads_run_once_in_luigi() -> None:
    for task in (tasks.Publish, tasks.PreloadFactOrders, tasks.PreloadFactEvents):
        assert task(date=D).retry_count == 1, task


def gate_passed(day: dt.date) -> None:
    """Record a passed quality gate for the date in the lake (what QualityGate leaves behind)."""
    gate.write_results(gate.GateResult(day, [CheckResult("row_count > 0", "fact_orders", "row_count", "pass",
                                                             "1", "ok")], dt.datetime(2025, 12, 15, 1)))


def test_a_data_error_fails_at_once_in_a_luigi_run(fresh_db, serving_lake, quick_retries, luigi_settings) -> None:
    """A NUL in the date's quarantined records (crafted in the lake, bypassing staging): one attempt, exit
    with the table, column and record named. (Luigi's own retry delay is shortened so that, were the
    task retried by Luigi, the test would see it quickly.)"""
    luigi_settings("scheduler", retry_delay=0.1)
    luigi_settings("worker", wait_interval=0.1, wait_jitter=0)
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    write_rows("audit", "bad_records", D, [
        {"record_id": "ORD_7", "reason_code": "invalid_price", "message": "m", "failing_value": "x",
         "raw_record": '{"price": "\x00"}', "source_file": "orders.json", "row_number": 7, "load_date": D}],
        source_table="stg_orders")
    gate_passed(D)
    preload.preload("fact_orders", D)
    preload.preload("fact_events", D)
    result = luigi.build([tasks.Publish(date=D)], local_scheduler=True, detailed_summary=True)
    assert result.status == luigi.execution_summary.LuigiStatusCode.FAILED
    attempts = [r for r in run_audit.executions(D) if r["task_family"] == "Publish"]
    assert [(r["attempt"], r["status"]) for r in attempts] == [(1, "failed")], "a data error is not retried"
    assert attempts[0]["error_message"] == (
        f"PublishError: publishing {D} failed: quarantine.bad_records.raw_record, row 1 of lake"
        f" audit/bad_records/load_date={D}/source_table=stg_orders/data.parquet (source_table 'stg_orders',"
        " row_number 7): invalid byte sequence for encoding \"UTF8\": 0x00; it was rolled back, Postgres is unchanged")
    assert not publish.is_published(D)


def test_a_data_error_in_the_task_is_not_retried(fresh_db, serving_lake, quick_retries, caplog) -> None:
    write_facts(D, [order("ORD_1", D), order("ORD_2", D, user_id="USER\x00")], [event("EVT_1", D)])
    caplog.set_level(logging.INFO)
    with pytest.raises(publish.PublishError, match=r"fact_orders_all\.user_id, row 2 of .* \(order_id 'ORD_2'\)"):
        tasks.Publish(date=D).run()
    assert not [r for r in caplog.records if "will retry" in r.getMessage()]
    assert not publish.is_published(D)


# ---------------------------------------------------------------------------- transient: retried
@pytest.fixture
def own_server(monkeypatch) -> Iterator[ThrowawayPostgres]:
    """A server of this test's own, which it may stop and start."""
    server = ThrowawayPostgres()
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ECOMM_PG_DSN", server.create_database("ecomm"))
    yield server
    server.stop()


def stop(server: ThrowawayPostgres) -> None:
    server._pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.data, user=server.user, timeout=60)


def start(server: ThrowawayPostgres) -> None:
    server._pg_ctl(["-w", "-l", str(server.data / "server.log"), "-o", f"-h '' -k {server.data}", "start"],
                   pgdata=server.data, user=server.user, timeout=60)


def test_postgres_stopped_then_started_is_retried_and_publishes(own_server, serving_lake, quick_retries) -> None:
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    stop(own_server)
    with on_retry(lambda: start(own_server)) as retries:
        tasks.Publish(date=D).run()  # publishes, then reconciles Postgres with the lake
    assert publish.is_published(D)
    assert len(retries.lines) == 1, retries.lines
    line = RETRY_LINE.match(retries.lines[0])
    assert line and (line["k"], line["n"]) == ("2", "3"), retries.lines[0]
    assert "No such file or directory" in line["error"] or "Connection refused" in line["error"]


def test_a_lock_held_by_another_writer_times_out_is_retried_and_publishes(
        own_server, serving_lake, quick_retries, luigi_settings) -> None:
    luigi_settings("publish", pipeline_lock_timeout="200ms")
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    with psycopg.connect(own_server.dsn("ecomm")) as holder:
        migrations.apply_schema(holder)
        locks.hold(holder, locks.date_key(D))  # another pipeline process publishing the date ...
        with on_retry(holder.rollback) as retries:  # ... which ends once the publish has given up once
            summary = retry.call(lambda: publish.publish(D), f"publishing {D}")
    assert summary["fact_orders_rows"] == 1 and publish.is_published(D)
    line = RETRY_LINE.match(retries.lines[0])
    assert line and (line["k"], line["n"]) == ("2", "3"), retries.lines
    assert "pipeline lock 'date:2025-12-14' stayed held by another pipeline process" in line["error"]

