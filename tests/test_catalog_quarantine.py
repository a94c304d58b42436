"""A catalog row quarantined for a bad attribute does not delist its product.

The weekly snapshot still lists the product (its id is valid; only, say, its price is not), so the
product keeps its last valid version in dim_product_history and dim_product, and the date's facts
still find it in the catalog (is_known_product): one bad catalog row must not turn a product's
orders into unknown-product orders, nor fail the quality gate's unknown-product share.
"""
from __future__ import annotations

import datetime as dt

import pytest

from pipeline.transform import staging
from tests.support import rows as r

W1, W2 = dt.date(2025, 12, 1), dt.date(2025, 12, 8)
D = W2 + dt.timedelta(days=1)
END = dt.date(9999, 12, 31)


@pytest.fixture(autouse=True)
def lake_dir(tmp_path, monkeypatch):
    r.use_lake(tmp_path, monkeypatch)
    p = r.product
    r.stage_day(W1, products=[p(product_id="P1", current_price=10), p(product_id="P2", current_price=20),
                              p(product_id="P3", current_price=30)])
    r.stage_day(W2, products=[p(product_id="P1", current_price=11),
                              p(product_id="P2", current_price="n/a"),  # listed, its price unusable
                              p(product_id="P4", current_price=-1),  # new, and no valid version yet
                              {"id": "abc", "title": "no usable id", "price": 1}])  # P3 not listed any more
    ts = f"{D}T12:00:00"
    r.stage_day(D, orders=[r.order(order_id=f"O{n}", product_id=f"P{n}", timestamp=ts) for n in (1, 2, 3, 4)],
                events=[])


def test_a_quarantined_row_keeps_the_products_last_valid_version():
    assert [(b["record_id"], b["reason_code"]) for b in r.bad_records("stg_products", W2)] == [
        ("P2", "invalid_price"), ("P4", "negative_price"), ("abc", "invalid_product_id")]
    r.build_day(D)
    history = [(row["product_id"], row["version"], row["current_price"], row["effective_from"], row["effective_to"],
                row["is_current"])
               for row in r.read("warehouse", "dim_product_history", D, ("product_id", "version"))]
    assert history == [
        ("P1", 1, r.money("10"), W1, W2, False), ("P1", 2, r.money("11"), W2, END, True),
        ("P2", 1, r.money("20"), W1, END, True),  # not ended by W2's quarantined row
        ("P3", 1, r.money("30"), W1, W2, False),  # delisted
    ]
    known = {row["product_id"]: row["is_known_product"] for row in r.read("warehouse", "fact_orders", D)}
    # P4 is listed, but with no valid version it is an inferred member of dim_product: not known either
    assert known == {"P1": True, "P2": True, "P3": False, "P4": False}
    products = {row["product_id"]: (row["is_inferred"], row["current_price"])
                for row in r.read("warehouse", "dim_product", D)}
    assert products == {"P1": (False, r.money("11")), "P2": (False, r.money("20")), "P3": (True, None),
                        "P4": (True, None)}
    (metrics,) = r.read("warehouse", "daily_metrics", D)
    assert metrics["unknown_product_share"] == pytest.approx(2 / 4)  # P3 and P4


def test_the_reasons_that_keep_a_product_listed_are_staging_reason_codes():
    import re

    from pipeline.lake import sqlrun

    macro = re.search(r"macro lists_the_product\(reason_code\) as \((.*?)\);", sqlrun.sql_text("warehouse", "macros"),
                      re.S)
    assert macro is not None
    codes = re.findall(r"'([a-z_]+)'", macro.group(1))
    assert codes and set(codes) <= set(staging.REASON_CODES)
    assert not {"missing_product_id", "invalid_product_id", "duplicate_json_key"} & set(codes), "the id must be valid"
