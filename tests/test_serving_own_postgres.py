"""A tester's own Postgres through ECOMM_PG_DSN: what its roles, databases and DSNs may hold (real servers)."""
from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from pipeline.quality import serving_reconciliation
from pipeline.serving import pg, publish
from tests.support.serving import event, order, write_facts

DAY = dt.date(2025, 12, 14)


def test_a_database_with_a_non_iso_datestyle_and_another_time_zone_publishes_and_reconciles(
        fresh_db, serving_lake) -> None:
    """`alter role/database ... set datestyle = 'SQL, DMY'`: psycopg reads timestamps only in ISO DateStyle, so
    published_at failed after the publish had committed ("can't parse timestamptz with DateStyle 'SQL, DMY'") and
    the date stayed published but not reconciled. Every pipeline connection asks for ISO (and IntervalStyle
    postgres) itself; the reconciliation's Soda (psycopg2) connection reads only counts."""
    with fresh_db.connect(autocommit=True) as conn:
        conn.execute(f"alter database \"{fresh_db.database}\" set datestyle = 'SQL, DMY'")
        conn.execute(f"alter database \"{fresh_db.database}\" set intervalstyle = 'sql_standard'")
        conn.execute(f"alter database \"{fresh_db.database}\" set timezone = 'Asia/Tokyo'")
    with psycopg.connect(fresh_db.dsn) as conn:  # the setting took: a connection of its own sees it
        assert conn.execute("show datestyle").fetchone() == ("SQL, DMY",)
    write_facts(DAY, [order("ORD_1", DAY)], [event("EVT_1", DAY)])
    before = dt.datetime.now(dt.timezone.utc)
    publish.publish(DAY)
    when = publish.published_at(DAY)
    assert when is not None and before - dt.timedelta(minutes=1) < when <= dt.datetime.now(dt.timezone.utc)
    assert serving_reconciliation.reconcile_serving(DAY).passed == 3
    assert publish.mark_reconciled(DAY, when)
    assert publish.reconciled_dates([DAY]) == {DAY}
    with pg.connect() as conn:
        assert conn.execute("select now() - %s < interval '1 hour', interval '1 day 2 hours'",
                            [when]).fetchone() == (True, dt.timedelta(days=1, hours=2))
        assert conn.execute("show timezone").fetchone() == ("Asia/Tokyo",), "the time zone stays the server's"
