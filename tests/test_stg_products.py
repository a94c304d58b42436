"""stg_products: weekly product snapshots in file or DummyJSON API shape -> one staging shape."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline import staging

try:
    import rows as r
except ImportError:  # tests/ imported as a package
    from tests import rows as r

MONDAY = dt.date(2025, 12, 15)


@pytest.fixture(autouse=True)
def lake_dir(tmp_path, monkeypatch):
    return r.use_lake(tmp_path, monkeypatch)


def test_file_shape_products_are_typed_and_brand_stays_null():
    r.write_products(MONDAY, [
        r.product(product_id="PROD_0001", current_price=19.99),
        r.product(product_id="PROD_0002", brand=None, category=" Toys "),
        r.product(product_id="PROD_0003", brand=r.MISSING),
    ])
    counts = staging.stage("products", MONDAY)
    assert (counts["raw_count"], counts["staged_count"], counts["is_balanced"]) == (3, 3, True)
    staged = r.read("staging", "stg_products", MONDAY, "product_id")
    assert staged[0] == {
        "product_id": "PROD_0001", "product_name": "Lamp", "category": "Home", "brand": "BrandA",
        "current_price": r.money("19.99"), "snapshot_date": MONDAY, "load_date": MONDAY,
        "_source_file": "products_2025-12-15.json", "_row_number": 1,
    }
    assert [(row["brand"], row["category"]) for row in staged[1:]] == [(None, "Toys"), (None, "Home")]


def test_api_shape_products_get_seed_ids():
    api = r.dummyjson("products", 3)
    r.write_products(MONDAY, api + [{"id": 12345, "title": "Big id", "category": "x", "price": 1}],
                     source_kind="api")
    staging.stage("products", MONDAY)
    staged = r.read("staging", "stg_products", MONDAY, "_row_number")
    assert [(row["product_id"], row["product_name"], row["category"], row["current_price"]) for row in staged] == [
        ("PROD_0001", api[0]["title"], api[0]["category"], r.money(str(api[0]["price"]))),
        ("PROD_0002", api[1]["title"], api[1]["category"], r.money(str(api[1]["price"]))),
        ("PROD_0003", api[2]["title"], api[2]["category"], r.money(str(api[2]["price"]))),
        ("PROD_12345", "Big id", "x", r.money("1")),
    ]
    assert [row["brand"] for row in staged[:3]] == [p.get("brand") for p in api]


def test_bad_and_duplicate_products_are_quarantined_or_counted():
    r.write_products(MONDAY, [
        r.product(product_id="PROD_0001"),
        r.product(product_id="PROD_0001"),  # exact duplicate
        r.product(product_id="PROD_0002", current_price=5),
        r.product(product_id="PROD_0002", current_price=6),  # conflict: the later record wins
        r.product(product_id=None),
        {"id": "abc", "title": "no usable id", "price": 1},
        r.product(product_id="PROD_0003", current_price="n/a"),
        r.product(product_id="PROD_0004", current_price=-1),
        r.product(product_id="PROD_0005", current_price=r.MISSING),
    ])
    counts = staging.stage("products", MONDAY)
    assert (counts["raw_count"], counts["staged_count"], counts["quarantined_count"], counts["duplicate_count"]) == (
        9, 2, 6, 1)
    staged = r.read("staging", "stg_products", MONDAY, "product_id")
    assert [(row["product_id"], row["current_price"]) for row in staged] == [
        ("PROD_0001", r.money("19.99")), ("PROD_0002", r.money("6"))]
    bad = r.bad_records("stg_products", MONDAY)
    assert [(row["row_number"], row["reason_code"]) for row in bad] == [
        (3, "duplicate_id_conflict"), (5, "missing_product_id"), (6, "missing_product_id"),
        (7, "invalid_price"), (8, "negative_price"), (9, "invalid_price")]
    assert json.loads(bad[0]["raw_record"])["current_price"] == 5


def test_a_date_without_a_snapshot_stages_nothing():
    assert staging.stage("products", MONDAY) is None
