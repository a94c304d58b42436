"""fact_orders: staged orders -> order-line facts; the current view keeps an order's latest load date."""
from __future__ import annotations

import datetime as dt

import pytest

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.transform import warehouse
from tests.support import rows as r

MONDAY = dt.date(2025, 12, 8)
D = r.DAY  # Sunday 2025-12-14


@pytest.fixture(autouse=True)
def lake_dir(tmp_path, monkeypatch):
    return r.use_lake(tmp_path, monkeypatch)


def facts(load_date: dt.date = D) -> list[dict]:
    return r.read("warehouse", "fact_orders", load_date, "order_id")


def test_revenue_is_exact_and_net_revenue_counts_sold_statuses():
    r.stage_day(MONDAY, products=[r.product(product_id="PROD_0001")])
    r.stage_day(D, orders=[
        r.order(order_id="ORD_1", quantity=3, price=19.99, status="paid"),
        r.order(order_id="ORD_2", quantity=2, price=0.10, status="cancelled"),
        r.order(order_id="ORD_3", quantity=7, price=33.33, status="pending"),
    ])
    assert r.build("fact_orders", D) == 3
    assert facts()[0] == {
        "order_id": "ORD_1", "user_id": "USER_0001", "product_id": "PROD_0001", "date_id": 20251214,
        "order_ts": dt.datetime(2025, 12, 14, 12), "quantity": 3, "unit_price": r.money("19.99"),
        "revenue": r.money("59.97"), "status": "paid", "net_revenue": r.money("59.97"),
        "is_known_product": True, "load_date": D,
    }
    assert [(row["revenue"], row["net_revenue"]) for row in facts()[1:]] == [
        (r.money("0.20"), r.money("0")), (r.money("233.31"), r.money("0"))]


def test_the_sold_statuses_are_a_bound_parameter():
    r.stage_day(D, orders=[r.order(order_id="ORD_1", status="paid"), r.order(order_id="ORD_2", status="pending")])
    r.build("dim_product_history", D)  # the catalog the fact's is_known_product reads
    with sqlrun.connect() as con:
        warehouse.define_macros(con)
        warehouse.register_inputs(con, "fact_orders", D)
        params = {**warehouse.model_params(D), "sold_statuses": ["paid", "pending"]}
        sqlrun.run_model(con, "warehouse", "fact_orders", params, lake.partition_file("warehouse", "fact_orders", D))
    assert [row["net_revenue"] for row in facts()] == [r.money("10.00"), r.money("10.00")]


def test_late_orders_keep_the_load_date_and_get_their_own_date_id():
    r.stage_day(D, orders=[r.order(order_id="ORD_1", timestamp="2025-12-12T23:30:00-02:00")])
    r.build("fact_orders", D)
    (row,) = facts()
    assert (row["order_ts"], row["date_id"], row["load_date"]) == (dt.datetime(2025, 12, 13, 1, 30), 20251213, D)


def test_known_products_come_from_the_latest_snapshot_on_or_before_the_date():
    r.stage_day(MONDAY - dt.timedelta(days=7), products=[r.product(product_id="PROD_0003")])
    r.stage_day(MONDAY, products=[r.product(product_id="PROD_0001")])
    r.stage_day(D + dt.timedelta(days=1), products=[r.product(product_id="PROD_0002")])  # after D: not used
    r.stage_day(D, orders=[r.order(order_id=f"ORD_{n}", product_id=f"PROD_000{n}") for n in (1, 2, 3)])
    r.build("fact_orders", D)
    assert [(row["product_id"], row["is_known_product"]) for row in facts()] == [
        ("PROD_0001", True), ("PROD_0002", False), ("PROD_0003", False)]


def test_a_numeric_product_id_is_the_catalog_apis_product():
    """The products API lists id 89 as PROD_0089: an order's JSON number 89 (or "0089") names that product."""
    r.stage_day(MONDAY, products=[{"id": 89, "title": "Lamp", "price": 5}])
    r.stage_day(D, orders=[r.order(order_id="ORD_1", product_id=89), r.order(order_id="ORD_2", product_id="0089"),
                           r.order(order_id="ORD_3", product_id=90)])
    r.build("fact_orders", D)
    assert [(row["product_id"], row["is_known_product"]) for row in facts()] == [
        ("PROD_0089", True), ("PROD_0089", True), ("PROD_0090", False)]


def test_orders_before_the_first_snapshot_are_unknown_products():
    r.stage_day(D, orders=[r.order()])
    r.build("fact_orders", D)
    assert [row["is_known_product"] for row in facts()] == [False]


@pytest.mark.parametrize("build_order", [(D, D + dt.timedelta(days=1)), (D + dt.timedelta(days=1), D)])
def test_the_current_view_keeps_the_latest_load_date_of_an_order(build_order):
    d2 = D + dt.timedelta(days=1)
    r.stage_day(D, orders=[r.order(order_id="ORD_1", status="pending"), r.order(order_id="ORD_2")])
    r.stage_day(d2, orders=[r.order(order_id="ORD_1", status="paid", timestamp="2025-12-14T12:05:00")])
    for day in build_order:
        r.build("fact_orders", day)
    assert [(row["order_id"], row["status"], row["net_revenue"], row["load_date"], row["date_id"])
            for row in r.current("fact_orders", "order_id")] == [
        ("ORD_1", "paid", r.money("10.00"), d2, 20251214),
        ("ORD_2", "paid", r.money("10.00"), D, 20251214),
    ]
    assert len(facts(D)) == 2 and len(facts(d2)) == 1  # the partitions keep every version


def test_a_rebuild_rewrites_the_same_partition():
    r.stage_day(D, orders=[r.order(order_id=f"ORD_{n}", quantity=1 + n % 4) for n in range(40)])
    r.build("fact_orders", D)
    path = lake.partition_file("warehouse", "fact_orders", D)
    first = open(path, "rb").read()
    r.build("fact_orders", D)
    assert open(path, "rb").read() == first


def test_building_before_staging_is_an_error():
    with pytest.raises(warehouse.InputPartitionMissing, match="staging/stg_orders"):
        r.build("fact_orders", D)


def test_date_id_is_the_business_day_and_dim_date_has_it():
    orders = [r.order(order_id="ORD_1", timestamp="2025-12-14T02:00:00Z"),  # 21:00 the day before in New York
              r.order(order_id="ORD_2", timestamp="2025-12-14T12:00:00")]
    r.stage_day(D, orders=orders, events=[r.event()])
    r.build_day(D, ("fact_orders", "fact_events", "dim_date"))
    assert [row["date_id"] for row in facts()] == [20251214, 20251214]  # UTC, the default
    with r.model_settings(business_timezone="America/New_York"):
        r.stage_day(D, orders=orders, events=[r.event()])
        r.build_day(D, ("fact_orders", "fact_events", "dim_date"))
    assert [(row["order_id"], row["order_ts"], row["date_id"]) for row in facts()] == [
        ("ORD_1", dt.datetime(2025, 12, 14, 2), 20251213),
        ("ORD_2", dt.datetime(2025, 12, 14, 17), 20251214),  # noon in New York, stored in UTC
    ]
    dates = [row["date_id"] for row in r.read("warehouse", "dim_date", D, "date_id")]
    assert dates[-2:] == [20251213, 20251214] and len(dates) == 31, "the late window: dense"


def test_one_row_per_order_other_lines_are_quarantined_not_summed():
    r.stage_day(D, orders=[
        r.order(order_id="ORD_1", product_id="PROD_0001", quantity=1, price=10),
        r.order(order_id="ORD_1", product_id="PROD_0002", quantity=2, price=20),
        r.order(order_id="ORD_2", product_id="PROD_0001", quantity=1, price=5),
    ])
    assert r.build("fact_orders", D) == 2
    assert [(row["order_id"], row["product_id"], row["revenue"]) for row in facts()] == [
        ("ORD_1", "PROD_0002", r.money("40.00")), ("ORD_2", "PROD_0001", r.money("5.00"))]
    assert [(row["record_id"], row["reason_code"]) for row in r.bad_records("stg_orders", D)] == [
        ("ORD_1", "multiple_order_lines")]


def test_an_order_id_sent_as_an_integer_and_as_a_string_is_one_order_across_days():
    d2 = D + dt.timedelta(days=1)
    r.stage_day(D, orders=[r.order(order_id=515151, status="pending")])
    r.stage_day(d2, orders=[r.order(order_id="515151", status="paid"), r.order(order_id=515152.0)])
    for day in (D, d2):
        r.build("fact_orders", day)
    assert [(row["order_id"], row["status"], row["load_date"]) for row in r.current("fact_orders", "order_id")] == [
        ("515151", "paid", d2)]
    assert [(row["failing_value"], row["reason_code"]) for row in r.bad_records("stg_orders", d2)] == [
        ("515152.0", "invalid_order_id")]


def test_the_serving_comments_state_the_grain_and_the_business_day(fresh_db):
    from pipeline.serving import migrations

    with fresh_db.connect() as conn:
        migrations.apply_schema(conn)
        comments = dict(conn.execute(
            "select c.relname, obj_description(c.oid, 'pg_class') from pg_class as c"
            " where c.relname in ('fact_orders', 'fact_orders_all')").fetchall())
        date_id = conn.execute(
            "select col_description('warehouse.fact_orders'::regclass, a.attnum) from pg_attribute as a"
            " where a.attrelid = 'warehouse.fact_orders'::regclass and a.attname = 'date_id'").fetchone()[0]
    assert "Grain: one row per order_id (an order is one line, one product)" in comments["fact_orders"]
    assert "multiple_order_lines" in comments["fact_orders_all"] and "order line" not in comments["fact_orders_all"]
    assert "[model] business_timezone" in date_id
