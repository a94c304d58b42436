"""daily_metrics: one row per run date with counts through the layers, revenue and quality figures."""
from __future__ import annotations

import datetime as dt

import pytest

from pipeline.transform import warehouse
from tests.support import rows as r

MONDAY = dt.date(2025, 12, 8)
D = r.DAY


@pytest.fixture(autouse=True)
def lake_dir(tmp_path, monkeypatch):
    return r.use_lake(tmp_path, monkeypatch)


def test_counts_revenue_and_unknown_product_share():
    r.stage_day(MONDAY, products=[r.product(product_id="PROD_0001")])
    paid = r.order(order_id="ORD_1", quantity=2, price=10.00, status="paid")
    r.stage_day(D, orders=[
        paid,
        paid,  # exact duplicate
        r.order(order_id="ORD_2", quantity=1, price=5.00, status="cancelled"),
        r.order(order_id="ORD_3", quantity="three"),  # quarantined
        r.order(order_id="ORD_4", quantity=3, price=1.50, status="refunded", product_id="PROD_0099"),
    ], events=[
        r.event(event_id="EVT_1", event_type="page_view", product_id=None),
        r.event(event_id="EVT_2", product_id="PROD_0099"),
        r.event(event_id="EVT_3", event_type="hover"),  # quarantined
        r.event(event_id="EVT_1", event_type="page_view", product_id=None),  # exact duplicate
    ])
    r.build_day(D)
    (row,) = r.read("warehouse", "daily_metrics", D)
    assert row == {
        "run_date": D,
        "raw_orders_count": 5, "staging_orders_count": 3, "fact_orders_count": 3,
        "raw_events_count": 4, "staging_events_count": 2, "fact_events_count": 2,
        "quarantined_orders_count": 1, "quarantined_events_count": 1,
        "duplicate_orders_count": 1, "duplicate_events_count": 1,
        "gross_revenue": r.money("29.50"),  # 2 x 10.00 + 1 x 5.00 + 3 x 1.50
        "net_revenue": r.money("20.00"),  # paid only
        "orders_count": 3, "events_count": 2,
        # rows naming a product: 3 order lines + 1 event; unknown: ORD_4 and EVT_2
        "unknown_product_share": 0.5,
        "dq_failed_count": 0, "runtime_seconds": None,
        "products_snapshot_date": MONDAY, "users_snapshot_date": None,  # the catalogs the build read
        "products_snapshot_dates": [MONDAY],  # every products snapshot its product history read
        "load_date": D,
    }


def test_an_empty_day_has_zero_revenue_and_no_share():
    r.stage_day(D, orders=[], events=[])
    r.build_day(D)
    (row,) = r.current("daily_metrics")
    assert (row["fact_orders_count"], row["gross_revenue"], row["net_revenue"], row["unknown_product_share"]) == (
        0, r.money("0"), r.money("0"), None)


def test_metrics_need_the_day_to_be_staged_first():
    r.write_orders(D, [r.order()])
    r.write_events(D, [r.event()])
    with pytest.raises(warehouse.InputPartitionMissing):
        warehouse.build("daily_metrics", D)


def test_a_re_delivered_order_counts_on_each_load_date_but_once_by_order_date(fresh_db):
    """daily_metrics is a load-date metric: two orders placed on D and delivered again on D+1 (one of
    them refunded by then) count on both load dates, 800.00 gross over the run dates for 400.00 of
    sales. The queries and the daily report give sales by order date from the current facts, and the
    serving schema says what daily_metrics is."""
    import psycopg

    from pipeline.lake import views
    from pipeline.report import data, page
    from pipeline.serving import publish

    day_one, day_two = D, D + dt.timedelta(days=1)
    placed = f"{day_one}T12:00:00"
    orders = [r.order(order_id="ORD_1", quantity=2, price=100.00, timestamp=placed),
              r.order(order_id="ORD_2", quantity=1, price=200.00, timestamp=placed)]
    r.stage_day(day_one, orders=orders, events=[r.event()])
    r.stage_day(day_two, orders=[orders[0], {**orders[1], "status": "refunded"}], events=[])
    for day in (day_one, day_two):
        r.build_day(day)

    # the lake: each load date counts both orders; the current facts hold each order once
    metrics = [r.read("warehouse", "daily_metrics", day)[0] for day in (day_one, day_two)]
    assert [(m["orders_count"], m["gross_revenue"]) for m in metrics] == [(2, r.money("400.00"))] * 2
    assert sum(m["gross_revenue"] for m in metrics) == r.money("800.00")
    facts = r.current("fact_orders", "order_id")
    assert [(f["order_id"], f["load_date"], f["date_id"]) for f in facts] == [
        ("ORD_1", day_two, 20251214), ("ORD_2", day_two, 20251214)]
    assert sum(f["revenue"] for f in facts) == r.money("400.00")
    with views.open_lake() as con:  # the users' queries, unchanged, on the lake
        kpis = con.execute(views.query_text("daily_kpis")).fetchall()
        moving = con.execute(views.query_text("daily_revenue_moving_average")).fetchall()
    assert [(row[0], row[1], row[2], row[3]) for row in kpis] == [
        (day_one, 2, r.money("400.00"), r.money("200.00"))]  # 1 event on D too; nothing was sold on D+1
    assert [(row[0], row[1], row[2]) for row in moving] == [(day_one, 2, r.money("400.00"))]

    # Postgres: the same, and the daily report's sales figures are by order date
    for day in (day_one, day_two):
        publish.publish(day)
    with psycopg.connect(fresh_db.dsn) as conn:
        assert conn.execute("select sum(gross_revenue), sum(orders_count) from warehouse.daily_metrics").fetchone() == (
            r.money("800.00"), 4)
        assert conn.execute("select sum(revenue), count(*) from warehouse.fact_orders").fetchone() == (
            r.money("400.00"), 2)
        first, second = data.fetch(conn, day_one), data.fetch(conn, day_two)
        comments = dict(conn.execute(
            "select attname, col_description(attrelid, attnum) from pg_attribute"
            " where attrelid = 'warehouse.daily_metrics'::regclass and attnum > 0").fetchall())
        comments[""] = conn.execute("select obj_description('warehouse.daily_metrics'::regclass)").fetchone()[0]
    assert (first.kpis["order_count"], first.kpis["gross_revenue"], first.kpis["net_revenue"]) == (
        2, r.money("400.00"), r.money("200.00"))  # ORD_2 is refunded now: the current facts say so
    assert second.kpis is None  # no sales on D+1, although its files brought 400.00 of orders
    assert sum(row["gross_revenue"] for row in second.trend) == r.money("400.00")
    assert second.metrics["gross_revenue"] == r.money("400.00")  # shown as rows per layer of the load date
    html = page.render(second)
    assert 'data-kpi="gross_revenue" data-value=""' in html and "Rows per layer (load date 2025-12-15)" in html
    # what a BI user reads about the table and its additive-looking columns
    assert "A load-date metric, not sales by day" in comments[""]
    assert "summing revenue or counts over run_date overstates them" in comments[""]
    for column in ("gross_revenue", "net_revenue", "orders_count", "events_count", "fact_orders_count",
                   "fact_events_count"):
        assert "not additive over run_date" in comments[column].lower(), column


def test_the_moving_average_starts_at_the_first_complete_day_not_a_late_order_before_it(fresh_db):
    """One late order dated 10 days before the lake's first load date counted the 9 days between as days
    without sales: the first days' 7-day averages were their revenue / 7 instead of NULL."""
    import psycopg

    from pipeline.lake import views
    from pipeline.serving import publish

    late = D - dt.timedelta(days=10)
    r.stage_day(D, orders=[r.order(order_id="ORD_1", quantity=1, price=70.00, timestamp=f"{D}T12:00:00"),
                           r.order(order_id="ORD_0", quantity=1, price=7.00, timestamp=f"{late}T12:00:00")],
                events=[r.event()])
    r.build_day(D)
    publish.publish(D)
    # the late order's day is before the first complete day: not in the window (marts.reporting_window)
    expected = [(D, 1, r.money("70.00"), None)]
    with views.open_lake() as con:
        on_lake = con.execute(views.query_text("daily_revenue_moving_average")).fetchall()
    with psycopg.connect(fresh_db.dsn) as conn:
        on_postgres = conn.execute(views.query_text("daily_revenue_moving_average")).fetchall()
    for moving in (on_lake, on_postgres):
        assert [(row[0], row[1], row[2], row[4]) for row in moving] == expected
