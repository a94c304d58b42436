"""dim_product: the catalog version current on D, plus inferred members for products D's facts name."""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from pipeline.transform import warehouse
from tests.support import rows as r

MONDAY = dt.date(2025, 12, 15)
WEDNESDAY = dt.date(2025, 12, 17)
SUNDAY = dt.date(2025, 12, 14)


@pytest.fixture(autouse=True)
def lake_dir(tmp_path, monkeypatch):
    return r.use_lake(tmp_path, monkeypatch)


def inferred(product_id: str, load_date: dt.date) -> dict:
    return {
        "product_key": hashlib.md5(f"{product_id}|inferred".encode()).hexdigest(), "product_id": product_id,
        "product_name": "Unknown product", "category": "Unknown", "brand": "Unknown brand",
        "current_price": None, "effective_from": None, "is_inferred": True, "load_date": load_date,
    }


def test_catalog_members_and_inferred_members():
    r.stage_day(MONDAY, products=[
        r.product(product_id="PROD_0001", brand=None, current_price=5),
        r.product(product_id="PROD_0002", product_name="Desk"),
    ])
    r.stage_day(WEDNESDAY, orders=[r.order(order_id="ORD_1"), r.order(order_id="ORD_2", product_id="PROD_0099")],
                events=[r.event(product_id="PROD_0098"), r.event(event_id="EVT_2", event_type="page_view",
                                                                 product_id=None)])
    r.build_day(WEDNESDAY)
    assert r.read("warehouse", "dim_product", WEDNESDAY, "product_id") == [
        {"product_key": hashlib.md5(f"PROD_0001|{MONDAY}".encode()).hexdigest(), "product_id": "PROD_0001",
         "product_name": "Lamp", "category": "Home", "brand": "Unknown brand", "current_price": r.money("5"),
         "effective_from": MONDAY, "is_inferred": False, "load_date": WEDNESDAY},
        {"product_key": hashlib.md5(f"PROD_0002|{MONDAY}".encode()).hexdigest(), "product_id": "PROD_0002",
         "product_name": "Desk", "category": "Home", "brand": "BrandA", "current_price": r.money("19.99"),
         "effective_from": MONDAY, "is_inferred": False, "load_date": WEDNESDAY},
        inferred("PROD_0098", WEDNESDAY),
        inferred("PROD_0099", WEDNESDAY),
    ]
    facts = r.read("warehouse", "fact_orders", WEDNESDAY, "order_id")
    assert [row["is_known_product"] for row in facts] == [True, False]  # agrees with is_inferred


@pytest.mark.parametrize("build_order", ["forward", "backward"])
def test_orders_before_the_first_snapshot_get_inferred_members_until_the_catalog_knows_them(build_order):
    r.stage_day(SUNDAY, orders=[r.order(order_id="ORD_1"), r.order(order_id="ORD_2", product_id="PROD_0099")],
                events=[])
    r.stage_day(MONDAY, products=[r.product(product_id="PROD_0001")], orders=[], events=[])
    for day in ([SUNDAY, MONDAY] if build_order == "forward" else [MONDAY, SUNDAY]):
        r.build_day(day)
    assert r.read("warehouse", "dim_product", SUNDAY, "product_id") == [
        inferred("PROD_0001", SUNDAY), inferred("PROD_0099", SUNDAY)]
    # the current view prefers a catalog version over an inferred member of any date
    assert [(row["product_id"], row["category"], row["is_inferred"], row["load_date"])
            for row in r.current("dim_product", "product_id")] == [
        ("PROD_0001", "Home", False, MONDAY), ("PROD_0099", "Unknown", True, SUNDAY)]


def test_a_landed_but_unstaged_snapshot_stops_the_build():
    r.write_products(MONDAY, [r.product()])
    r.stage_day(WEDNESDAY, orders=[r.order()], events=[])
    with pytest.raises(warehouse.InputPartitionMissing, match="not staged"):
        r.build("fact_orders", WEDNESDAY)
