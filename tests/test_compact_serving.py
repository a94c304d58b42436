"""`python -m pipeline compact-serving`: closed months of the serving facts in one partition each.

A few small dates published for real (re-deliveries and resent events across them), then their
closed month compacted: every served table, view and mart must stay identical, a republish of a
date inside the compacted month (with changed rows) must give exactly what the same sequence gives
without compaction, and a refused, repeated or interrupted compaction must change nothing.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from pipeline.lake import views
from pipeline.quality import serving_reconciliation
from pipeline.serving import compaction, preload, publish
from pipeline.serving.facts import FACTS
from tests.support.paths import REPO
from tests.support.serving import checksums, event, order, write_facts

D1, D2, D3 = dt.date(2025, 11, 3), dt.date(2025, 11, 4), dt.date(2025, 11, 5)  # November: closed
D4 = dt.date(2025, 12, 2)  # December: open, as far as BEFORE is concerned
D5 = dt.date(2025, 11, 20)  # a November date first published after the month was compacted
BEFORE = dt.date(2025, 12, 1)
NOVEMBER = dt.date(2025, 11, 1)
ROW_LEVEL = Path(__file__).parent / "fixtures" / "row_level_queries"


def _write_days() -> None:
    write_facts(D1, [order("O1", D1, user_id="U1"), order("O2", D1, user_id="U2", product_id="P2")],
                [event("E1", D1, user_id="U1"), event("E2", D1, user_id="U2", event_type="purchase")])
    write_facts(D2, [order("O3", D2, user_id="U1", quantity=1, revenue=Decimal("10.00"), net_revenue=Decimal("10.00")),
                     order("O2", D1, user_id="U2", product_id="P2", status="refunded", net_revenue=Decimal("0.00"),
                           load_date=D2)],  # re-delivered: the latest load wins
                [event("E1", D1, user_id="U1", load_date=D2),  # resent: the first load keeps it
                 event("E3", D2, user_id="U3", event_type="add_to_cart")])
    write_facts(D3, [order("O4", D3, user_id="U3")], [event("E4", D2, user_id="U3", event_type="checkout", load_date=D3)])
    write_facts(D4, [order("O5", D4, user_id="U1")], [event("E5", D4, user_id="U1")])


def _publish(*days: dt.date) -> None:
    for day in days:
        publish.publish(day)
        publish.mark_reconciled(day, publish.published_at(day))


def _later_days() -> None:
    """D2 corrected (O3 cancelled, E3 gone, a new event), D4 re-delivering D1's O1 and resending its E2, and D5."""
    write_facts(D2, [order("O3", D2, user_id="U1", quantity=1, revenue=Decimal("10.00"), status="cancelled",
                           net_revenue=Decimal("0.00"))],
                [event("E1", D1, user_id="U1", load_date=D2), event("E6", D2, user_id="U4", event_type="page_view")])
    write_facts(D4, [order("O5", D4, user_id="U1"),
                     order("O1", D1, user_id="U1", status="pending", net_revenue=Decimal("0.00"), load_date=D4)],
                [event("E5", D4, user_id="U1"), event("E2", D1, user_id="U2", event_type="purchase", load_date=D4)])
    write_facts(D5, [order("O6", D5, user_id="U4")], [event("E7", D5, user_id="U4")])


def served(dsn: str) -> dict[str, tuple]:
    """(rows, md5) of every served table and view but the partitions, and the answer of every BI query."""
    out: dict[str, tuple] = {}
    with psycopg.connect(dsn) as conn:
        out.update(checksums(conn, include=("warehouse", "marts", "audit", "quarantine")))
        texts = {f"queries/{name}": views.query_text(name) for name in views.queries()}
        texts.update({f"row level/{p.stem}": p.read_text() for p in sorted(ROW_LEVEL.glob("*.sql"))})
        for label, text in texts.items():
            out[label] = tuple(sorted(map(repr, conn.execute(text).fetchall())))
    return out


def partitions(dsn: str) -> dict[str, list[str]]:
    with psycopg.connect(dsn) as conn:
        return {spec.parent: [name for (name,) in conn.execute(
            "select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid"
            " where i.inhparent = %s::regclass order by 1", [f"warehouse.{spec.parent}"]).fetchall()] for spec in FACTS}


def daily(*days: dt.date) -> dict[str, list[str]]:
    return {spec.parent: sorted(spec.partition(day) for day in days) for spec in FACTS}


@pytest.fixture
def published(fresh_db, serving_lake):
    """D1-D3 (November) and D4 (December) published and reconciled; what is served."""
    _write_days()
    _publish(D1, D2, D3, D4)
    return fresh_db.dsn


def test_compacting_a_closed_month_changes_no_answer(published) -> None:
    before = served(published)
    assert before["marts.daily_kpis"][0] > 0 and before["warehouse.fact_orders"][0] == 5
    assert partitions(published) == daily(D1, D2, D3, D4)
    tally = compaction.compact(before=BEFORE, out=lambda line: None)
    assert tally == {"done": 1, "compacted": 0, "refused": 0, "failed": 0}
    assert partitions(published) == {spec.parent: sorted([spec.month_partition(D1), spec.partition(D4)])
                                     for spec in FACTS}
    assert served(published) == before
    for day in (D1, D2, D3, D4):  # the Soda reconciliation reads the parents by load_date
        assert not serving_reconciliation.reconcile_serving(day).blocked


def _sequence(dsn: str, compact: bool, monkeypatch: pytest.MonkeyPatch, root: Path) -> dict[str, tuple]:
    """The same arrivals into a new database and lake, with the closed month compacted in between or not."""
    root.mkdir()
    monkeypatch.setenv("ECOMM_PG_DSN", dsn)
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(root))
    _write_days()
    _publish(D1, D2, D3, D4)
    if compact:
        assert compaction.compact(before=BEFORE, out=lambda line: None)["done"] == 1
    _later_days()
    preload.preload("fact_orders", D2)  # a preload of a date inside the compacted month is taken as well
    _publish(D2, D4, D5)
    return served(dsn)


def test_a_republish_inside_a_compacted_month_gives_what_it_gives_without(dsn_server, tmp_path, monkeypatch) -> None:
    import uuid

    plain, compacted = (dsn_server.create_database(f"t_{uuid.uuid4().hex[:12]}") for _ in range(2))
    expected = _sequence(plain, False, monkeypatch, tmp_path / "plain")
    got = _sequence(compacted, True, monkeypatch, tmp_path / "compacted")
    assert got == expected
    assert partitions(compacted) == {spec.parent: sorted([spec.month_partition(D1), spec.partition(D4)])
                                     for spec in FACTS}
    with psycopg.connect(compacted) as conn:  # the change is there: O3 cancelled, E3 gone, O1 pending (from D4)
        assert conn.execute("select order_id, status, load_date from warehouse.fact_orders where order_id in"
                            " ('O1', 'O3') order by 1").fetchall() == [("O1", "pending", D4), ("O3", "cancelled", D2)]
        assert conn.execute("select count(*) from warehouse.fact_events where event_id = 'E3'").fetchone() == (0,)
        assert conn.execute("select count(*) from preload.fact_loads").fetchone() == (0,)
    for day in (D2, D4, D5):
        assert not serving_reconciliation.reconcile_serving(day).blocked


def test_a_rerun_is_a_no_op(published) -> None:
    lines: list[str] = []
    assert compaction.compact(before=BEFORE, out=lines.append)["done"] == 1
    assert len(lines) == 1 and lines[0].startswith(
        "2025-11  compacted 3 daily partitions per fact into one: 5 order rows, 5 event rows  "), lines
    print(lines[0])
    with psycopg.connect(published) as conn:
        oids = conn.execute("select array_agg(oid order by oid) from pg_class where relname like 'fact_%_all_m%'"
                            ).fetchone()
    before = served(published)
    lines.clear()
    assert compaction.compact(before=BEFORE, out=lines.append) == {"done": 0, "compacted": 1, "refused": 0,
                                                                   "failed": 0}
    assert lines == ["2025-11  already compacted"]
    assert served(published) == before
    with psycopg.connect(published) as conn:
        assert conn.execute("select array_agg(oid order by oid) from pg_class where relname like 'fact_%_all_m%'"
                            ).fetchone() == oids


def test_an_open_month_or_an_unpublished_or_unreconciled_date_is_refused(published, capsys) -> None:
    lines: list[str] = []
    assert compaction.compact([D4.replace(day=1)], before=BEFORE, out=lines.append)["refused"] == 1
    assert lines == ["2025-12  refused: 2025-12 is not closed: its last day is not before 2025-12-01;"
                     " only months before it are compacted"]
    write_facts(D5, [order("O6", D5)], [])  # in the lake, not published
    lines.clear()
    assert compaction.compact(before=BEFORE, out=lines.append)["refused"] == 1
    assert lines == ["2025-11  refused: 2025-11 has 1 load date(s) in the lake that are not published (2025-11-20);"
                     " run the pipeline for them (or fix what blocks them), then compact"]
    publish.publish(D5)  # published, not reconciled
    lines.clear()
    assert compaction.compact(before=BEFORE, out=lines.append)["refused"] == 1
    assert "2025-11 has 1 published date(s) not reconciled yet (2025-11-20)" in lines[0]
    assert partitions(published) == daily(D1, D2, D3, D4, D5)
    # the command: one line per month, exit 3, no traceback
    assert compaction.main([f"--before={BEFORE}"]) == 3
    out, err = capsys.readouterr()
    assert out.strip().splitlines() == [lines[0]] and "Traceback" not in err
    assert compaction.main(["--month", f"{compaction.this_month():%Y-%m}"]) == 3
    assert "is not closed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        compaction.main(["--month", "2025-13"])
    assert exited.value.code == 2
    assert "'2025-13' is not a month: expected YYYY-MM" in capsys.readouterr().err
    publish.mark_reconciled(D5, publish.published_at(D5))
    assert compaction.main([f"--before={BEFORE}"]) == 0
    assert partitions(published)["fact_orders_all"] == ["fact_orders_all_20251202", "fact_orders_all_m202511"]


def test_the_current_month_is_the_business_zone_s_not_the_host_s(luigi_settings) -> None:
    """compact-serving's default `--before` (and the Publish task's automatic compaction) took the month of the
    host's local date: on a host in UTC with [model] business_timezone America/Los_Angeles, November counted as
    closed from 2026-12-01 00:00 UTC, 8 hours before its last date was over where the business is."""
    utc = dt.timezone.utc
    luigi_settings("model", business_timezone="America/Los_Angeles")
    assert compaction.this_month(dt.datetime(2026, 12, 1, 7, 59, tzinfo=utc)) == dt.date(2026, 11, 1)
    assert compaction.this_month(dt.datetime(2026, 12, 1, 8, 0, tzinfo=utc)) == dt.date(2026, 12, 1)
    luigi_settings("model", business_timezone="Asia/Tokyo")  # east of UTC: the month turns before UTC's
    assert compaction.this_month(dt.datetime(2026, 11, 30, 15, 0, tzinfo=utc)) == dt.date(2026, 12, 1)


def test_two_closed_months_are_compacted_by_one_command(published) -> None:
    """Both months closed and every date published: each compacted (each was refused for the other's dates)."""
    lines: list[str] = []
    assert compaction.compact(before=dt.date(2026, 1, 1), out=lines.append) == {
        "done": 2, "compacted": 0, "refused": 0, "failed": 0}, lines
    assert partitions(published) == {spec.parent: sorted([spec.month_partition(D1), spec.month_partition(D4)])
                                     for spec in FACTS}


def test_an_exception_inside_the_transaction_leaves_the_daily_partitions(published, monkeypatch) -> None:
    from devtools.faults import FaultInjected

    before = served(published)
    monkeypatch.setenv("ECOMM_FAULT", "compact.swap:raise")
    with pytest.raises(FaultInjected):
        compaction.compact(before=BEFORE, out=lambda line: None)
    assert partitions(published) == daily(D1, D2, D3, D4)
    assert served(published) == before
    monkeypatch.delenv("ECOMM_FAULT")
    assert compaction.compact(before=BEFORE, out=lambda line: None)["done"] == 1


def test_a_killed_compaction_leaves_the_daily_partitions(published, tmp_path) -> None:
    before = served(published)
    env = {**os.environ, "ECOMM_FAULT": "compact.swap:pause", "ECOMM_FAULT_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "compact-serving", f"--before={BEFORE}"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    paused = tmp_path / "compact.swap.paused"
    deadline = time.monotonic() + 120
    while not paused.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the compaction never reached compact.swap"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert partitions(published) == daily(D1, D2, D3, D4)
    assert served(published) == before


@pytest.mark.parametrize("enabled", [True, False], ids=["automatic", "turned-off"])
def test_the_publish_task_compacts_a_month_once_the_pipeline_moved_on(fresh_db, serving_lake, luigi_settings,
                                                                       enabled) -> None:
    """[compaction] closed_months: a month is compacted by the Publish task once a load date after_days past its end is published."""
    from pipeline import tasks

    luigi_settings("compaction", closed_months=enabled, after_days=7)
    dec6, dec7 = dt.date(2025, 12, 6), dt.date(2025, 12, 7)
    for day in (D1, D2, dec6, dec7):
        write_facts(day, [order(f"O{day:%d}", day)], [event(f"E{day:%d}", day)])
    for day in (D1, D2, dec6):
        tasks.Publish(date=day, force=True).run()
    assert partitions(fresh_db.dsn) == daily(D1, D2, dec6), "Dec 6 is 6 days past November: not yet"
    tasks.Publish(date=dec7, force=True).run()
    expected = ({spec.parent: sorted([spec.month_partition(D1), spec.partition(dec6), spec.partition(dec7)])
                 for spec in FACTS} if enabled else daily(D1, D2, dec6, dec7))
    assert partitions(fresh_db.dsn) == expected


def test_a_month_waits_for_a_publish_of_one_of_its_dates(published, luigi_settings) -> None:
    """The month's date locks: a publish holding one (here: its transaction, open) keeps the compaction out."""
    from pipeline.serving import pg, transaction

    luigi_settings("publish", pipeline_lock_timeout="300ms")
    lines: list[str] = []
    with pg.connect() as conn, transaction.date_transaction(conn, D2):
        assert compaction.compact(before=BEFORE, out=lines.append)["failed"] == 1
    assert lines[0].startswith("2025-11  failed, rolled back (its daily partitions are unchanged): the pipeline lock"
                               " 'date:2025-11-04' stayed held by another pipeline process"), lines
    assert partitions(published) == daily(D1, D2, D3, D4)
    assert compaction.compact(before=BEFORE, out=lines.append)["done"] == 1
