"""Publish under concurrency: readers never see half a date; concurrent publishes serialise safely."""
from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pytest

from devtools.bench.fixtures import write_day
from pipeline.serving import migrations, publish

D1, D2, D3 = dt.date(2025, 12, 14), dt.date(2025, 12, 15), dt.date(2025, 12, 16)

POLL = """
select (select count(*) from warehouse.fact_orders where load_date = %(d)s),
       (select count(*) from warehouse.fact_events_all where load_date = %(d)s),
       (select sum(revenue) from warehouse.fact_orders_all where load_date = %(d)s),
       (select fact_orders_rows from audit.publish_log where load_date = %(d)s)
"""


class Reader(threading.Thread):
    """A BI reader (bi_reader) polling the date's totals as fast as it can."""

    def __init__(self, dsn: str, day: dt.date) -> None:
        super().__init__(daemon=True)
        self.dsn, self.day = dsn, day
        self.seen: list[tuple] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self.stop.is_set():
                    self.seen.append(conn.execute(POLL, {"d": self.day}).fetchone())
        except BaseException as err:  # noqa: BLE001 - the test asserts on it
            self.error = err


def totals(dsn: str, day: dt.date) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute(POLL, {"d": day}).fetchone()


def publish_while_reading(target, day: dt.date) -> Reader:
    reader = Reader(target.as_user("bi_reader"), day)
    reader.start()
    while not reader.seen and reader.error is None:
        time.sleep(0.01)
    publish.publish(day)
    time.sleep(0.2)
    reader.stop.set()
    reader.join(timeout=30)
    assert reader.error is None, reader.error
    return reader


@pytest.mark.slow
def test_a_reader_sees_the_old_or_the_new_date_never_a_mix(pg_target, serving_lake) -> None:
    write_day(D1, 150_000, 300_000, users=5_000, products=200, known_products=190)
    with psycopg.connect(pg_target.dsn) as conn:
        migrations.apply_schema(conn)
    empty = totals(pg_target.dsn, D1)
    reader = publish_while_reading(pg_target, D1)  # first publish
    first = totals(pg_target.dsn, D1)
    assert first[0] == 150_000 and first[3] == 150_000
    assert set(reader.seen) == {empty, first}, set(reader.seen)

    write_day(D1, 120_000, 250_000, users=5_000, products=200, known_products=190)  # a corrected day
    reader = publish_while_reading(pg_target, D1)  # republish: swaps the partitions
    second = totals(pg_target.dsn, D1)
    assert second[0] == 120_000 and second[1] == 250_000
    assert set(reader.seen) == {first, second}, set(reader.seen)
    assert len(reader.seen) >= 10, "the reader kept reading during the publish"


@pytest.mark.slow
def test_concurrent_publishes_of_different_and_same_dates(pg_target, serving_lake) -> None:
    for day, n in ((D1, 20_000), (D2, 30_000), (D3, 25_000)):
        write_day(day, n, 2 * n, users=2_000, products=100, known_products=95)
    errors: list[BaseException] = []

    def run(day: dt.date) -> None:
        try:
            publish.publish(day)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=run, args=(day,)) for day in (D1, D2, D3, D2, D1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    with psycopg.connect(pg_target.dsn) as conn:
        assert conn.execute("select load_date, fact_orders_rows from audit.publish_log order by 1").fetchall() == [
            (D1, 20_000), (D2, 30_000), (D3, 25_000)]
        assert conn.execute("select count(*) from warehouse.fact_orders").fetchone() == (75_000,)
        assert conn.execute("select count(*) from pg_class where relname like '%%_load'").fetchone() == (0,)
