"""Preloads: a date's facts copied and indexed in Postgres while the gate runs, taken by its publish.

Each test compares with what publishing the same lake without any preload gives (`dump`), so a
preload can only change how long a publish takes, never what it publishes.
"""
from __future__ import annotations

import datetime as dt
import os
import threading

import psycopg
import pytest

from devtools.bench.fixtures import write_day
from pipeline import lake, tasks
from pipeline.serving import binary_copy, preload, publish
from tests.support.serving import dump

D1, D2 = dt.date(2025, 12, 14), dt.date(2025, 12, 15)
FACTS = ("fact_orders", "fact_events")


def preloads(conn: psycopg.Connection) -> list[tuple]:
    """(fact table, load date) of every registered preload, and the tables in schema preload."""
    registered = conn.execute("select fact_table, load_date from preload.fact_loads order by 1, 2").fetchall()
    tables = conn.execute("select c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
                          " where n.nspname = 'preload' and c.relkind = 'r' and c.relname <> 'fact_loads'").fetchall()
    assert len(tables) == len(registered), "a preload table without its row, or the reverse"
    return registered


def test_publish_takes_the_preloads_and_publishes_what_an_inline_load_does(pg_target, serving_lake) -> None:
    write_day(D1, 300, 900, users=50, products=20, known_products=18)
    write_day(D2, 200, 700, users=50, products=20, known_products=19)
    publish.publish(D1)
    publish.publish(D2)
    with pg_target.connect() as conn:
        expected = dump(conn)
    for day in (D1, D2):
        for fact in FACTS:
            assert not preload.is_preloaded(fact, day)
            assert preload.preload(fact, day)["rows"] > 0
            assert preload.is_preloaded(fact, day)
    with pg_target.connect() as conn:
        assert len(preloads(conn)) == 4
        assert dump(conn) == expected, "a preload changes nothing a reader sees"
    results = [publish.publish(D1), publish.publish(D2)]
    assert all(r["fact_orders_preloaded"] and r["fact_events_preloaded"] for r in results)
    with pg_target.connect() as conn:
        assert dump(conn) == expected
        assert preloads(conn) == []
        # the preloaded table became the partition, with the parent's indexes attached to its own
        indexes = conn.execute(
            "select count(*) from pg_inherits as i join pg_class as c on c.oid = i.inhrelid"
            " where c.relname = %s", [f"fact_events_all_{D2:%Y%m%d}_pkey"]).fetchone()
        assert indexes == (1,)
    assert not preload.is_preloaded("fact_orders", D1), "taken by the publish"


def test_a_preload_of_an_older_version_of_the_partition_is_not_used(pg_target, serving_lake) -> None:
    write_day(D1, 300, 900, users=50, products=20, known_products=18)
    preload.preload("fact_orders", D1)
    preload.preload("fact_events", D1)
    # the partition is rebuilt (another run, a fix) after the preload: other rows, a new file
    path = lake.partition_file("warehouse", "fact_orders", D1)
    before = lake.file_version(path)
    write_day(D1, 250, 900, users=50, products=20, known_products=18)
    assert lake.file_version(path) != before
    assert not preload.is_preloaded("fact_orders", D1)
    result = publish.publish(D1)
    assert not result["fact_orders_preloaded"] and result["fact_orders_rows"] == 250
    assert result["preloads_dropped"] >= 1
    with pg_target.connect() as conn:
        assert conn.execute("select count(*) from warehouse.fact_orders").fetchone() == (250,)
        assert preloads(conn) == [], "the stale preload was dropped with the publish"


def test_a_blocked_gate_leaves_the_date_s_preloads_to_its_rerun(pg_target, serving_lake) -> None:
    write_day(D1, 30, 90, users=10, products=5, known_products=5)
    write_day(D2, 30, 90, users=10, products=5, known_products=5)
    for day in (D1, D2):
        preload.preload("fact_orders", day)
    publish.publish_audit_only(D1, [{"check_name": "x", "outcome": "fail"}])
    with pg_target.connect() as conn:
        assert preloads(conn) == [("fact_orders_all", D1), ("fact_orders_all", D2)]
    assert preload.is_preloaded("fact_orders", D1)  # what the rerun's Preload task finds done
    assert publish.publish(D1)["fact_orders_preloaded"], "the rerun that accepts the day publishes the preload"
    assert preload.discard_preloads(D2) == 1
    with pg_target.connect() as conn:
        assert preloads(conn) == []


def test_bi_cannot_read_a_preload_but_reads_the_partition_it_becomes(fresh_db, serving_lake) -> None:
    write_day(D1, 30, 90, users=10, products=5, known_products=5)
    loaded = preload.preload("fact_orders", D1)
    with psycopg.connect(fresh_db.as_user("bi_reader")) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"select count(*) from preload.{loaded['table']}")
    publish.publish(D1)
    with psycopg.connect(fresh_db.as_user("bi_reader")) as conn:
        assert conn.execute(f"select count(*) from warehouse.fact_orders_all_{D1:%Y%m%d}").fetchone() == (30,)


def _rebuild_during_copies(monkeypatch, day: dt.date, times: int) -> list[str]:
    """Replace the date's fact_orders file (as a rebuild's promote does) after each of the first
    `times` COPYs; return the versions each COPY read."""
    copy, read = binary_copy.copy_batches, []

    def copy_then_rebuild(*args, **kwargs):
        path = lake.partition_file("warehouse", "fact_orders", day)
        read.append(lake.file_version(path))
        rows = copy(*args, **kwargs)
        if len(read) <= times:
            os.replace(path, path + ".moved")  # a new file under the name, with the same rows
            os.replace(path + ".moved", path)
            os.utime(path, ns=(len(read), len(read)))
        return rows

    monkeypatch.setattr(binary_copy, "copy_batches", copy_then_rebuild)
    return read


def test_a_preload_reads_again_when_its_partition_is_rebuilt_meanwhile(pg_target, serving_lake, monkeypatch) -> None:
    write_day(D1, 30, 90, users=10, products=5, known_products=5)
    read = _rebuild_during_copies(monkeypatch, D1, times=1)
    assert preload.preload("fact_orders", D1)["rows"] == 30
    path = lake.partition_file("warehouse", "fact_orders", D1)
    assert len(read) == 2 and read[1] == lake.file_version(path) != read[0], "the second copy read the new file"
    assert preload.is_preloaded("fact_orders", D1), "registered with the version it was read from"
    with pg_target.connect() as conn:
        assert preloads(conn) == [("fact_orders_all", D1)], "the first copy was rolled back"
    assert publish.publish(D1)["fact_orders_preloaded"]


def test_a_preload_gives_up_when_its_partition_keeps_being_rebuilt(pg_target, serving_lake, monkeypatch) -> None:
    write_day(D1, 30, 90, users=10, products=5, known_products=5)
    read = _rebuild_during_copies(monkeypatch, D1, times=99)
    with pytest.raises(publish.LakePartitionMissing, match="rebuilt or removed while it was preloaded, 3 times"):
        preload.preload("fact_orders", D1)
    assert len(read) == 3
    with pg_target.connect() as conn:
        assert preloads(conn) == []


def test_the_task_counts_a_stale_preload_the_publish_does_not(pg_target, serving_lake) -> None:
    """A concurrent run rebuilding the partition after this run's preload must not make the
    Preload task incomplete again (its Publish would fail its dependency check); the publish then
    copies inline."""
    write_day(D1, 30, 90, users=10, products=5, known_products=5)
    preload.preload("fact_orders", D1)
    path = lake.partition_file("warehouse", "fact_orders", D1)
    os.replace(path, path + ".moved")
    os.replace(path + ".moved", path)
    os.utime(path, ns=(1, 1))
    assert preload.is_preloaded("fact_orders", D1, current=False)
    assert not preload.is_preloaded("fact_orders", D1)
    assert tasks.PreloadFactOrders(date=D1).complete()
    result = publish.publish(D1)
    assert not result["fact_orders_preloaded"] and result["fact_orders_rows"] == 30


def test_only_facts_can_be_preloaded(serving_lake) -> None:
    with pytest.raises(ValueError, match="not a fact table"):
        preload.preload("dim_user", D1)
    with pytest.raises(publish.LakePartitionMissing):
        preload.preload("fact_orders", dt.date(2020, 1, 1))


def test_a_preload_does_not_wait_for_another_date_s_partition_swap(fresh_db, serving_lake) -> None:
    """A publish swapping its partitions holds the parent exclusively for a moment; another date's preload reading the
    parent's index definitions waited for it (pg_get_indexdef locks the index), timed out and retried 30 s later."""
    write_day(D1, 30, 90, users=10, products=5, known_products=5)
    write_day(D2, 20, 70, users=10, products=5, known_products=5)
    publish.publish(D1)
    done: list[dict] = []
    with psycopg.connect(fresh_db.dsn) as swapping:  # as a publish's swap: the parent and its indexes held
        swapping.execute(f"alter table warehouse.fact_orders_all"
                         f" detach partition warehouse.fact_orders_all_{D1:%Y%m%d}")
        preloading = threading.Thread(target=lambda: done.append(preload.preload("fact_orders", D2)))
        preloading.start()
        preloading.join(20)
        finished = not preloading.is_alive()
        swapping.rollback()
    preloading.join(120)
    assert finished, "the preload waited for the swap of another date's partition"
    assert done and done[0]["rows"] == 20
