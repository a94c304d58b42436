"""daily_metrics: one row per run date with counts through the layers, revenue and quality figures."""
from __future__ import annotations

import datetime as dt

import pytest

from pipeline import warehouse

try:
    import rows as r
except ImportError:  # tests/ imported as a package
    from tests import rows as r

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
        "dq_failed_count": 0, "runtime_seconds": None, "load_date": D,
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
