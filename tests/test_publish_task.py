"""The Publish task reconciles Postgres with the lake even when another run published the date first.

Two runs of a date (a backfill overlapping a single-date run, two schedulers) both find Publish
incomplete while scheduling; the first to take the date's lock publishes, the second then finds
the date published and writes nothing. If the first run's reconciliation failed after its commit,
the second run must not report the date as done without reconciling it.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pipeline import tasks
from pipeline.quality import serving_reconciliation
from pipeline.serving import publish
from tests.support.serving import event, order, write_facts

D = dt.date(2025, 12, 14)


@pytest.fixture()
def published_elsewhere(fresh_db, serving_lake):
    """The second run's Publish task, scheduled while the date was not published; then the first run publishes."""
    write_facts(D, [order("ORD_1", D), order("ORD_2", D, revenue=Decimal("5.50"))], [event("EVT_1", D)])
    second = tasks.Publish(date=D)
    assert not second.complete(), "scheduled before the first run's commit"
    tasks.Publish(date=D, force=True).run()  # the first run: publishes and reconciles
    assert publish.is_published(D)
    return fresh_db, second


def test_a_date_published_meanwhile_is_reconciled_not_republished(published_elsewhere) -> None:
    target, second = published_elsewhere
    with target.connect() as conn:
        marker = conn.execute("select published_at, run_id from audit.publish_log").fetchall()
    second.run()
    assert second.rows_out == 0, "nothing written a second time"
    with target.connect() as conn:
        assert conn.execute("select published_at, run_id from audit.publish_log").fetchall() == marker


def test_a_date_published_meanwhile_that_does_not_match_the_lake_fails(published_elsewhere) -> None:
    target, second = published_elsewhere
    # the first run's reconciliation found Postgres different from the lake after its commit (here:
    # a published row changed), and that run failed; the second run must not succeed without checking
    with target.connect() as conn:
        conn.execute("update warehouse.fact_orders_all set revenue = revenue + 1 where order_id = 'ORD_1'")
    with pytest.raises(serving_reconciliation.ServingMismatch, match=r"fact_orders_all revenue for 2025-12-14"):
        second.run()


def test_a_date_whose_reconciliation_failed_after_its_commit_is_not_complete(fresh_db, serving_lake) -> None:
    """A later run of the date must not take it for done: the failed reconciliation left no completion mark."""
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    publish.publish(D)  # committed; its run then failed (or was killed) before its reconciliation passed
    assert publish.is_published(D)
    assert not tasks.Publish(date=D).complete(), "published but never reconciled"
    with fresh_db.connect() as conn:
        conn.execute("update warehouse.fact_orders_all set revenue = revenue + 1 where order_id = 'ORD_1'")
    with pytest.raises(serving_reconciliation.ServingMismatch):
        tasks.Publish(date=D).run()
    assert not tasks.Publish(date=D).complete(), "a failed reconciliation is no completion mark"
    with fresh_db.connect() as conn:
        conn.execute("update warehouse.fact_orders_all set revenue = revenue - 1 where order_id = 'ORD_1'")
    tasks.Publish(date=D).run()
    assert tasks.Publish(date=D).complete(), "reconciled: done"
    with fresh_db.connect() as conn:
        reconciled = conn.execute("select reconciled_at from audit.publish_log").fetchone()[0]
    assert reconciled is not None
    publish.publish(D, force=True)  # a republish needs its own reconciliation
    assert not tasks.Publish(date=D).complete()


def test_the_reconciliation_leaves_no_transaction_open(fresh_db, serving_lake) -> None:
    """soda-core never closes its Postgres connection; an idle transaction would hold locks the next publish needs."""
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    publish.publish(D)
    serving_reconciliation.reconcile_serving(D)
    with fresh_db.connect() as conn:
        open_sessions = conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"
            " and backend_type = 'client backend'").fetchone()[0]
    assert open_sessions == 0
