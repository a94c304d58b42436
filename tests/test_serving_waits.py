"""Waits of the pipeline's Postgres writers that a BI session or another pipeline process causes: said, bounded, fair.

- a wait for a pipeline lock (the publish lock, a date's) longer than a few seconds is logged at WARNING, once,
  naming the session that holds it;
- a compaction waiting for a BI session holds no lock between its attempts, so a publish goes first;
- a lock message names each session once, however many partitions it has locked;
- a BI transaction that locks the facts first sees one state of them and the marts (the documented recipe).
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time

import psycopg
import pytest

from pipeline.serving import compaction, locks, migrations, pg, publish
from tests.support.serving import event, order, write_facts
from tests.test_compact_serving import BEFORE, D1, D2, D3, D4, _publish, _write_days


@pytest.fixture
def published(fresh_db, serving_lake):
    """November (D1-D3, closed) and D4 published and reconciled."""
    _write_days()
    _publish(D1, D2, D3, D4)
    return fresh_db


def _release_later(conn: psycopg.Connection, seconds: float) -> threading.Thread:
    def commit() -> None:
        time.sleep(seconds)
        conn.commit()

    thread = threading.Thread(target=commit)
    thread.start()
    return thread


def test_a_long_wait_for_the_publish_lock_is_a_warning_naming_its_holder(fresh_db, caplog) -> None:
    with pg.connect() as setup:
        migrations.ensure_schema(setup)
    holder = psycopg.connect(fresh_db.dsn, application_name="compact-serving-test")
    pid = holder.info.backend_pid
    try:
        locks.hold(holder, locks.PUBLISH_KEY)  # its transaction stays open until the thread commits it
        releasing = _release_later(holder, 4.5)
        caplog.set_level(logging.INFO, logger="pipeline.serving.locks")
        began = time.monotonic()
        with pg.connect() as conn, conn.transaction():
            locks.hold(conn, locks.PUBLISH_KEY)
        waited = time.monotonic() - began
        releasing.join()
    finally:
        holder.close()
    assert waited >= 4, waited
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if w.startswith("waiting for the pipeline lock 'publish'")]) == 1, warnings
    said = warnings[0]
    assert f"pid {pid} (" in said and "application 'compact-serving-test'" in said, said
    held = re.search(r"in a transaction for (\d+)s", said)
    assert held and int(held[1]) >= 3 and "pipeline_lock_timeout" in said, said
    assert any(w.startswith("got the pipeline lock 'publish' after waiting") for w in warnings), warnings


def test_a_compaction_waiting_for_bi_lets_a_publish_take_the_publish_lock(published, luigi_settings) -> None:
    """Between its attempts the compaction holds no lock: the publish lock is free within a backoff, not minutes."""
    luigi_settings("publish", lock_timeout="200ms", lock_attempts=8, lock_backoff_seconds=1, lock_backoff_max_seconds=1)
    bi = psycopg.connect(published.dsn, application_name="tableau")
    bi.execute("select count(*) from warehouse.fact_orders")  # its transaction stays open: ACCESS SHARE held
    lines: list[str] = []
    tally: dict[str, int] = {}
    compacting = threading.Thread(target=lambda: tally.update(compaction.compact(before=BEFORE, out=lines.append)))
    compacting.start()
    try:
        time.sleep(1.5)  # the compaction is in its attempts now, waiting for bi's ACCESS SHARE
        began = time.monotonic()
        with pg.connect() as conn, conn.transaction():
            locks.hold(conn, locks.PUBLISH_KEY)
            took = time.monotonic() - began
    finally:
        bi.rollback()  # bi ends its transaction: the compaction's next attempt goes through
        compacting.join(60)
        bi.close()
    assert took < 2.5, f"the publish lock was held across the compaction's back-offs ({took:.1f}s)"
    assert tally.get("done") == 1, lines


def test_a_lock_message_names_each_session_once(published) -> None:
    bi = psycopg.connect(published.dsn, application_name="tableau")
    pid = bi.info.backend_pid
    try:
        bi.execute("select count(*) from warehouse.fact_orders_all")
        with pg.connect() as conn:
            said = locks.holders(conn, ["warehouse.fact_orders_all", "warehouse.fact_events_all"])
    finally:
        bi.close()
    assert said.count("pid ") == 1, said
    assert said == (f"pid {pid} (postgres, idle in transaction, application 'tableau') holding AccessShareLock"
                    " on warehouse.fact_orders_all and 4 of its partitions"), said


def test_a_lock_message_before_migration_052_reads_pg_stat_activity(published) -> None:
    """A migration waiting for a lock before 052 is applied (an upgrade) still names the session and its state."""
    bi = psycopg.connect(published.dsn, application_name="tableau")
    pid = bi.info.backend_pid
    try:
        bi.execute("select count(*) from warehouse.fact_orders_all")
        with pg.connect() as conn:
            conn.execute("drop function pipeline_lock.sessions()")  # rolled back with this connection's transaction
            said = locks.holders(conn, ["warehouse.fact_orders_all"])
            conn.rollback()
    finally:
        bi.close()
    assert said.startswith(f"pid {pid} (postgres, idle in transaction, application 'tableau') holding"), said


def test_a_repeatable_read_transaction_that_locks_the_facts_first_sees_one_state(published, luigi_settings) -> None:
    """docs/serving.md#what-a-bi-reader-sees-of-a-publish: bi_reader's recipe holds a publish off until it ends."""
    luigi_settings("publish", lock_timeout="200ms", lock_attempts=60, lock_backoff_seconds=0.1,
                   lock_backoff_max_seconds=0.2)
    day = dt.date(2025, 12, 3)
    write_facts(day, [order("O9", day, user_id="U1")], [event("E9", day, user_id="U1")])
    counts = ("select (select count(*) from warehouse.fact_orders), (select count(*) from audit.publish_log),"
              " (select count(*) from warehouse.fact_events)")
    errors: list[BaseException] = []
    with psycopg.connect(published.as_user("bi_reader")) as bi:
        bi.execute("begin isolation level repeatable read")
        bi.execute("lock table warehouse.fact_orders, warehouse.fact_events in access share mode")
        before = bi.execute(counts).fetchone()
        publishing = threading.Thread(target=lambda: _publishing(day, errors))
        publishing.start()
        time.sleep(1.5)  # the publish waits for bi's lock meanwhile
        assert bi.execute(counts).fetchone() == before and publishing.is_alive()
        bi.commit()
        publishing.join(60)
        assert not errors, errors
        after = bi.execute(counts).fetchone()
    assert after == (before[0] + 1, before[1] + 1, before[2] + 1), (before, after)


def _publishing(day: dt.date, errors: list[BaseException]) -> None:
    try:
        publish.publish(day)
    except BaseException as err:  # noqa: BLE001 - reported by the test
        errors.append(err)
