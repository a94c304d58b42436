"""Marts: built per load date in DuckDB, kept exact in Postgres by each date's publish transaction.

Each mart must equal its model over the CURRENT facts (the row-level answer), whatever the arrival
order of the load dates: a late event on a day that already counted its user, a re-delivered order
(new status, new order date), a republish, dates published backward, shuffled and twice. The lake's
mart views (pipeline.lake.views) must give the same rows.
"""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import psycopg
import pytest

from pipeline.lake import views
from pipeline.serving import mart_deltas
from pipeline.serving import marts as serving_marts
from pipeline.serving import publish
from pipeline.transform import marts as models
from tests.support.serving import PRODUCT_SCHEMA, event, order, write_facts, write_rows

D1, D2, D3, D4 = (dt.date(2025, 12, 15) + dt.timedelta(days=i) for i in range(4))  # D1 is a Monday
TABLES = (*models.CONTRIBUTIONS, *models.DERIVED, *models.VIEWS)
MARTS_ONLY = ("complete_days", *TABLES)


def rows(conn, select: str) -> list[tuple]:
    return sorted((tuple(r) for r in conn.execute(f"select * from ({select}) as q").fetchall()), key=repr)


def served(conn, table: str) -> list[tuple]:
    return rows(conn, f"select * from marts.{table}")


def row_level(table: str) -> str:
    """The mart's model over the current facts, with each contribution it reads computed row by row too."""
    body = models.current_sql(table)
    if table not in models.CONTRIBUTIONS:
        for name in (*models.VIEWS, *models.CONTRIBUTIONS):  # a view's text may read a contribution
            body = body.replace(f"from marts.{name}\n", f"from ({models.current_sql(name)}) as row_level_{name}\n")
        assert "from marts." not in body.replace("from marts.complete_days", ""), body
    return body


def assert_exact(conn: psycopg.Connection) -> None:
    """Every mart Postgres serves equals the row-level answer over its current facts."""
    for table in TABLES:
        assert served(conn, table) == rows(conn, row_level(table)), table
    published = [d for (d,) in conn.execute("select load_date from audit.publish_log order by 1")]
    assert [d for (d,) in served(conn, "complete_days")] == published


def snapshot(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    return {table: served(conn, table) for table in MARTS_ONLY}


# ------------------------------------------------------------------------------------ given rows
def test_a_late_event_for_a_user_the_day_already_counted(fresh_db, serving_lake) -> None:
    write_facts(D1, [], [event("E1", D1, user_id="U1"), event("E2", D1, user_id="U2", event_type="purchase")])
    write_facts(D2, [], [event("E3", D1, user_id="U1", event_type="page_view", load_date=D2),  # late, for D1
                         event("E4", D2, user_id="U1")])
    for day in (D1, D2):
        publish.publish(day)
    with psycopg.connect(fresh_db.dsn) as conn:
        assert_exact(conn)
        assert served(conn, "funnel_daily") == [(D1, 2, 1, 1, 0, 0, 1), (D2, 1, 0, 1, 0, 0, 0)]
        assert rows(conn, "select kpi_date, event_count, active_users, purchasing_users from marts.daily_kpis") == [
            (D1, 3, 2, 1), (D2, 1, 1, 0)]
        assert served(conn, "user_activity_daily") == [
            (D1, "U1", 2, 1, 1, 0, 0, 0), (D1, "U2", 1, 0, 0, 0, 0, 1), (D2, "U1", 1, 0, 1, 0, 0, 0)]


def test_an_order_redelivered_with_a_new_status_and_day(fresh_db, serving_lake) -> None:
    write_facts(D1, [order("O1", D1, user_id="U1"), order("O2", D1, user_id="U1", product_id="P2")], [])
    # O1 again on D3, cancelled and moved to D2 (latest load wins): D1 loses it, D2 gains it
    write_facts(D3, [order("O1", D2, user_id="U1", status="cancelled", net_revenue=Decimal("0.00"), load_date=D3)], [])
    publish.publish(D1)
    publish.publish(D3)
    with psycopg.connect(fresh_db.dsn) as conn:
        assert_exact(conn)
        assert rows(conn, "select kpi_date, order_count, paid_order_count, cancelled_order_count, gross_revenue,"
                          " net_revenue, cancelled_revenue from marts.daily_kpis") == [
            (D1, 1, 1, 0, Decimal("20.00"), Decimal("20.00"), Decimal("0.00")),
            (D2, 1, 0, 1, Decimal("20.00"), Decimal("0.00"), Decimal("20.00"))]
        assert served(conn, "customers") == [
            ("U1", D1, D2, D1, 2, 1, 4, Decimal("40.00"), Decimal("20.00"))]
        assert rows(conn, "select product_id, order_count, net_revenue from marts.product_sales") == [
            ("P2", 1, Decimal("20.00")), ("PROD_0001", 1, Decimal("0.00"))]
        # the re-delivery was the customer's only order of D2's week? no: same week as D1 (Monday D1)
        assert served(conn, "cohort_retention") == [(D1, 0, 1)]
    # the re-delivery published first, the original after: the latest load date still wins
    with psycopg.connect(fresh_db.dsn) as conn:
        before = snapshot(conn)
    publish.publish(D1)
    with psycopg.connect(fresh_db.dsn) as conn:
        assert snapshot(conn) == before


def test_a_customer_whose_first_order_moves_changes_cohort(fresh_db, serving_lake) -> None:
    later = D1 + dt.timedelta(days=14)
    write_facts(D1, [order("O1", D1, user_id="U1")], [])
    write_facts(later, [order("O2", later, user_id="U1"),
                        order("O1", later, user_id="U1", status="refunded", net_revenue=Decimal("0.00"),
                              load_date=later)], [])
    publish.publish(D1)
    with psycopg.connect(fresh_db.dsn) as conn:
        assert served(conn, "cohort_retention") == [(D1, 0, 1)]
    publish.publish(later)
    with psycopg.connect(fresh_db.dsn) as conn:
        assert_exact(conn)
        assert served(conn, "cohort_retention") == [(later, 0, 1)]
        assert rows(conn, "select user_id, first_order_date, last_order_date, cohort_week, order_count"
                          " from marts.customers") == [("U1", later, later, later, 2)]
        assert rows(conn, "select kpi_date, order_count from marts.daily_kpis") == [(later, 2)]


def _three_days() -> None:
    write_facts(D1, [order("O1", D1, user_id="U1"), order("O2", D1, user_id="U2")],
                [event("E1", D1, user_id="U1"), event("E2", D1, user_id="U2", event_type="add_to_cart")])
    write_facts(D2, [order("O2", D2, user_id="U2", status="refunded", net_revenue=Decimal("0.00"), load_date=D2),
                     order("O3", D2, user_id="U1", quantity=1, revenue=Decimal("10.00"), net_revenue=Decimal("10.00"))],
                [event("E1", D1, user_id="U1", load_date=D2),  # resent: the first load date keeps it
                 event("E3", D1, user_id="U1", event_type="checkout", load_date=D2)])
    write_facts(D3, [order("O3", D3, user_id="U1", status="cancelled", net_revenue=Decimal("0.00"), load_date=D3)],
                [event("E4", D2, user_id="U2", event_type="purchase", load_date=D3)])


@pytest.mark.parametrize("order_of_dates", [(D1, D2, D3), (D3, D2, D1), (D1, D2, D3, D2, D1, D3), (D2, D3, D1)],
                         ids=["forward", "backward", "twice", "shuffled"])
def test_the_marts_do_not_depend_on_the_publish_order(fresh_db, serving_lake, order_of_dates) -> None:
    _three_days()
    for day in order_of_dates:
        publish.publish(day)
        with psycopg.connect(fresh_db.dsn) as conn:
            assert_exact(conn)
    with psycopg.connect(fresh_db.dsn) as conn:
        assert rows(conn, "select kpi_date, order_count, net_revenue, event_count, active_users from marts.daily_kpis"
                    ) == [(D1, 1, Decimal("20.00"), 3, 2), (D2, 1, Decimal("0.00"), 1, 1), (D3, 1, Decimal("0.00"), 0, 0)]
        assert served(conn, "funnel_daily") == [(D1, 2, 0, 1, 1, 1, 0), (D2, 1, 0, 0, 0, 0, 1)]


def test_a_republished_date_takes_back_its_old_rows(fresh_db, serving_lake) -> None:
    write_facts(D1, [order("O1", D1, user_id="U1"), order("O2", D1, user_id="U2")],
                [event("E1", D1, user_id="U1"), event("E2", D1, user_id="U2")])
    publish.publish(D1)
    # the date rebuilt from a corrected file: O2 and E2 gone, O1 pending, a new user
    write_facts(D1, [order("O1", D1, user_id="U1", status="pending", net_revenue=Decimal("0.00"))],
                [event("E1", D1, user_id="U1"), event("E5", D1, user_id="U3", event_type="purchase")])
    publish.publish(D1)
    with psycopg.connect(fresh_db.dsn) as conn:
        assert_exact(conn)
        assert rows(conn, "select kpi_date, order_count, pending_order_count, net_revenue, active_users,"
                          " purchasing_users from marts.daily_kpis") == [(D1, 1, 1, Decimal("0.00"), 2, 1)]
        assert rows(conn, "select user_id from marts.customers") == [("U1",)]


def test_a_lake_without_mart_partitions_publishes_the_same_marts(fresh_db, serving_lake) -> None:
    """A lake built before the marts existed: the publish computes the date's contribution from its facts."""
    import shutil

    _three_days()
    shutil.rmtree(serving_lake / "marts")
    for day in (D2, D1, D3):
        publish.publish(day)
    with psycopg.connect(fresh_db.dsn) as conn:
        assert_exact(conn)
        assert rows(conn, "select kpi_date, order_count, event_count, active_users from marts.daily_kpis") == [
            (D1, 1, 3, 2), (D2, 1, 1, 1), (D3, 1, 0, 0)]
        assert [d for (d,) in served(conn, "complete_days")] == [D1, D2, D3]


def test_a_database_published_before_the_marts_is_filled_by_its_next_publish(fresh_db, serving_lake) -> None:
    _three_days()
    publish.publish(D1)
    publish.publish(D2)
    with psycopg.connect(fresh_db.dsn) as conn:  # what a database migrated from before the marts holds
        for table in ("complete_days", *models.CONTRIBUTIONS, *models.DERIVED):
            conn.execute(f"delete from marts.{table}")
    summary = publish.publish(D3)
    assert summary["marts_rebuilt"]["complete_days"] == 2, summary
    with psycopg.connect(fresh_db.dsn) as conn:
        assert_exact(conn)
        assert [d for (d,) in served(conn, "complete_days")] == [D1, D2, D3]


# ------------------------------------------------------------------------------ randomised
def _random_day(rnd: random.Random, day: dt.date, days: list[dt.date], version: int) -> tuple[list, list]:
    """A small day: new orders and events, some for earlier days (late), re-deliveries and resends of any id."""
    orders, events = [], []
    for i in range(rnd.randint(0, 6)):
        oid = f"O{rnd.randint(1, 12)}"  # a small id space: re-deliveries happen often
        if any(o["order_id"] == oid for o in orders):
            continue
        on = rnd.choice(days)
        status = rnd.choice(["paid", "paid", "pending", "cancelled", "refunded"])
        quantity = rnd.randint(1, 3)
        price = Decimal(rnd.choice(["9.99", "10.00", "0.01", "123.45"]))
        revenue = quantity * price
        orders.append(order(oid, on, user_id=f"U{rnd.randint(1, 5)}", product_id=f"P{rnd.randint(1, 3)}",
                            status=status, quantity=quantity, unit_price=price, revenue=revenue,
                            net_revenue=revenue if status == "paid" else Decimal("0.00"), load_date=day))
    for i in range(rnd.randint(0, 8)):
        eid = f"E{rnd.randint(1, 20)}"
        if any(e["event_id"] == eid for e in events):
            continue
        on = rnd.choice(days)
        events.append(event(eid, on, user_id=f"U{rnd.randint(1, 5)}", load_date=day,
                            event_type=rnd.choice(["page_view", "view_product", "add_to_cart", "checkout", "purchase"])))
    return orders, events


def _catalog(day: dt.date) -> None:
    """Products P1..P3 (P3 changed category on D3), as the date's dimension partitions."""
    write_rows("warehouse", "dim_product", day, [
        {"product_key": f"k{i}", "product_id": f"P{i}", "product_name": f"Item {i}",
         "category": "Garden" if i == 3 else "Home", "brand": "B", "current_price": Decimal("10.00"),
         "effective_from": D1, "is_inferred": False, "load_date": day} for i in (1, 2, 3)], PRODUCT_SCHEMA)
    write_rows("warehouse", "dim_product_history", day, [
        {"product_key": f"h{i}{v}", "product_id": f"P{i}", "version": v, "product_name": f"Item {i}",
         "category": category, "brand": "B", "current_price": Decimal("10.00"), "effective_from": start,
         "effective_to": end, "is_current": end.year == 9999, "load_date": day}
        for i, v, category, start, end in [(1, 1, "Home", D1, dt.date(9999, 12, 31)),
                                            (2, 1, "Home", D1, dt.date(9999, 12, 31)),
                                            (3, 1, "Home", D1, D3), (3, 2, "Garden", D3, dt.date(9999, 12, 31))]])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_arrivals_keep_every_mart_exact(fresh_db, serving_lake, seed) -> None:
    rnd = random.Random(seed)
    days = [D1 + dt.timedelta(days=i) for i in (0, 1, 3, 8, 16)]  # three ISO weeks: cohorts move too
    for day in days:
        _catalog(day)
    order_of_dates = [rnd.choice(days) for _ in range(7)]
    order_of_dates += [d for d in days if d not in order_of_dates]
    published: set[dt.date] = set()
    for step, day in enumerate(order_of_dates):
        if day not in published or rnd.random() < 0.5:  # a first delivery, or a rebuilt date's new content
            write_facts(day, *_random_day(rnd, day, days, step))
        publish.publish(day, force=True)  # a rebuilt date may have lost every order
        published.add(day)
        with psycopg.connect(fresh_db.dsn) as conn:
            assert_exact(conn)
    with psycopg.connect(fresh_db.dsn) as conn:
        final = snapshot(conn)
        serving_marts.rebuild(conn)  # from scratch, over the same current facts
        assert snapshot(conn) == final
        for table in (*models.CONTRIBUTIONS, *models.DERIVED):  # in key order: a range of days on a few pages
            key = ", ".join(mart_deltas.key_of(conn, table))
            assert (conn.execute(f"select {key} from marts.{table} order by ctid").fetchall()
                    == conn.execute(f"select {key} from marts.{table} order by {key}").fetchall()), table
        conn.rollback()
    lake = views.open_lake()
    for table in TABLES:  # the lake's views give the same rows
        assert sorted(lake.execute(f"select * from marts.{table}").fetchall(), key=repr) == final[table], table
