"""fact_events: staged events -> event facts; the current view keeps an event's first load date."""
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


def test_events_become_facts_with_known_products_and_their_own_day():
    r.stage_day(MONDAY, products=[r.product(product_id="PROD_0001")])
    r.stage_day(D, events=[
        r.event(event_id="EVT_1", event_type="PURCHASE"),
        r.event(event_id="EVT_2", event_type="page_view", product_id=None),
        r.event(event_id="EVT_3", product_id="PROD_9999"),
        r.event(event_id="EVT_4", event_ts="2025-12-13T23:59:00"),
    ])
    assert r.build("fact_events", D) == 4
    rows = r.read("warehouse", "fact_events", D, "event_id")
    assert rows[0] == {
        "event_id": "EVT_1", "user_id": "USER_0001", "product_id": "PROD_0001", "event_type": "purchase",
        "event_ts": dt.datetime(2025, 12, 14, 12), "date_id": 20251214, "is_known_product": True, "load_date": D,
    }
    # a page view names no product, so nothing is missing from the catalog: known
    assert [(row["event_id"], row["is_known_product"], row["date_id"]) for row in rows[1:]] == [
        ("EVT_2", True, 20251214), ("EVT_3", False, 20251214), ("EVT_4", True, 20251213)]


def test_a_numeric_product_id_is_the_catalog_apis_product():
    """The events CSV's product_id 89 is the product the API lists as id 89 (PROD_0089), as an order's is."""
    r.stage_day(MONDAY, products=[{"id": 89, "title": "Lamp", "price": 5}])
    r.stage_day(D, events=[r.event(event_id="EVT_1", product_id="89"), r.event(event_id="EVT_2", product_id="90")])
    r.build("fact_events", D)
    assert [(row["product_id"], row["is_known_product"]) for row in r.read("warehouse", "fact_events", D, "event_id")
            ] == [("PROD_0089", True), ("PROD_0090", False)]


@pytest.mark.parametrize("build_order", ["forward", "backward"])
def test_the_current_view_keeps_the_first_load_date_of_an_event(build_order):
    d2 = D + dt.timedelta(days=1)
    r.stage_day(D, events=[r.event(event_id="EVT_1", event_type="add_to_cart"), r.event(event_id="EVT_2")])
    r.stage_day(d2, events=[
        r.event(event_id="EVT_1", event_type="checkout", event_ts="2025-12-15T08:00:00"),  # a resend
        r.event(event_id="EVT_3", event_ts="2025-12-15T09:00:00"),
    ])
    for day in ([D, d2] if build_order == "forward" else [d2, D]):
        r.build("fact_events", day)
    assert [(row["event_id"], row["event_type"], row["load_date"]) for row in r.current("fact_events", "event_id")] == [
        ("EVT_1", "add_to_cart", D), ("EVT_2", "view_product", D), ("EVT_3", "view_product", d2)]
