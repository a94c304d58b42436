"""stg_products: weekly product snapshots in file or DummyJSON API shape -> one staging shape."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.transform import staging
from tests.support import rows as r

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
        (3, "duplicate_id_conflict"), (5, "missing_product_id"), (6, "invalid_product_id"),
        (7, "invalid_price"), (8, "negative_price"), (9, "invalid_price")]
    assert json.loads(bad[0]["raw_record"])["current_price"] == 5


def test_a_date_without_a_snapshot_stages_nothing():
    assert staging.stage("products", MONDAY) is None


def test_strict_parsing_of_catalog_records():
    r.write_products(MONDAY, [
        '{"product_id": "PROD_0001", "product_name": "Lamp", "current_price": 5, "current_price": 500}',
        r.product(product_id="PROD_0002", current_price="1_999.00"),
        r.product(product_id=12.5),
        r.product(product_id={"sku": 1}),
        r.product(product_id="PROD\u00000005"),
        r.product(product_id="PROD_0006", product_name="Lamp\u0000shade"),
        r.product(product_id="PROD_0007", category="C" * 257),
        r.product(product_id="\tPROD_0008\u00a0", category="\u3000Home\t"),
        r.product(product_id=9),  # a JSON integer id is the catalog's numeric id, as the API's id 9 is
        {"id": 10.5, "title": "API id with a fraction", "price": 1},
        {"id": 11, "title": "API id", "price": 1},
        r.product(product_id="PROD_0012", brand="Acme\u0000"),
    ])
    counts = staging.stage("products", MONDAY)
    staged = r.read("staging", "stg_products", MONDAY, "_row_number")
    assert [(row["product_id"], row["category"]) for row in staged] == [
        ("PROD_0008", "Home"), ("PROD_0009", "Home"), ("PROD_0011", None)]
    bad = r.bad_records("stg_products", MONDAY)
    assert [(row["row_number"], row["reason_code"], row["failing_value"]) for row in bad] == [
        (1, "duplicate_json_key", "current_price"),
        (2, "invalid_price", "1_999.00"),
        (3, "invalid_product_id", "12.5"),
        (4, "invalid_product_id", '{"sku":1}'),
        (5, "invalid_product_id", "PROD\\u00000005"),
        (6, "invalid_text", "Lamp\\u0000shade"),
        (7, "invalid_text", "C" * 200 + "… (257 characters)"),
        (10, "invalid_product_id", "10.5"),
        (12, "invalid_text", "Acme\\u0000"),
    ]
    assert bad[5]["message"].endswith("(product_name contains a NUL character)")
    assert bad[6]["message"].endswith("(category longer than 256 characters)")
    assert counts["is_balanced"] and counts["staged_count"] == 3


def test_nan_and_infinity_in_any_spelling_are_not_ids():
    """DuckDB's JSON reader takes NaN, Infinity and inf in any case as numbers: none is an id, not even a text one."""
    spellings = ["NaN", "nan", "NAN", "Infinity", "infinity", "INFINITY", "inf", "Inf", "-inf", "-Infinity", "-NaN"]
    r.write_products(MONDAY, [
        *[json.dumps(r.product()).replace('"PROD_0001"', spelling) for spelling in spellings],
        r.product(product_id="NaN"), r.product(product_id="inf"),  # JSON strings: text ids like any other
    ])
    counts = staging.stage("products", MONDAY)
    assert [row["product_id"] for row in r.read("staging", "stg_products", MONDAY, "_row_number")] == ["NaN", "inf"]
    bad = r.bad_records("stg_products", MONDAY)
    assert [(row["reason_code"], row["failing_value"]) for row in bad] == [
        ("invalid_product_id", spelling) for spelling in spellings]
    assert all(row["message"].endswith("(a JSON NaN or Infinity)") for row in bad), bad[0]["message"]
    assert counts["is_balanced"]


TEXT_NOT_TEXT = [  # (field, JSON value as written, failing value, detail)
    ("category", '{"slug": "beauty", "name": "Beauty"}', '{"slug":"beauty","name":"Beauty"}',
     "category is a JSON object"),
    ("category", '["mens-watches"]', '["mens-watches"]', "category is a JSON array"),
    ("brand", '{"name": "Essence"}', '{"name":"Essence"}', "brand is a JSON object"),
    ("brand", "false", "false", "brand is a JSON boolean"),
    ("product_name", "1984", "1984", "product_name is a JSON number"),
    ("category", "-2.5", "-2.5", "category is a JSON number"),
    ("category", "NaN", "NaN", "category is a JSON NaN or Infinity"),
]


@pytest.mark.parametrize("source_kind", ["file", "api"])
def test_a_text_field_that_is_not_a_json_string_is_quarantined_naming_it(source_kind):
    """An object or a list would be published as its JSON text ({"slug":...} as a category), a boolean or a
    number as DuckDB prints it; text that merely looks like one ("{x}", "1984") is text."""
    def record(n: int, field: str, value: str) -> str:
        if source_kind == "api":
            fields = {"id": n, "title": "Lamp", "category": "Home", "brand": "BrandA", "price": 5}
            field = {"product_name": "title"}.get(field, field)
        else:
            fields = r.product(product_id=f"PROD_{n:04d}", current_price=5)
        return json.dumps(fields).replace(json.dumps(fields[field]), value, 1)

    good = {"file": r.product(product_id="PROD_0100", product_name="1984", category="{x}", brand="[b]"),
            "api": {"id": 100, "title": "1984", "category": "{x}", "brand": "[b]", "price": 5}}[source_kind]
    r.write_products(MONDAY, [record(n, field, value) for n, (field, value, _, _) in enumerate(TEXT_NOT_TEXT, 1)]
                     + [good], source_kind=source_kind)
    counts = staging.stage("products", MONDAY)
    staged = r.read("staging", "stg_products", MONDAY, "_row_number")
    assert [(row["product_name"], row["category"], row["brand"]) for row in staged] == [("1984", "{x}", "[b]")]
    bad = r.bad_records("stg_products", MONDAY)
    assert [(row["reason_code"], row["failing_value"]) for row in bad] == [
        ("invalid_text", failing) for _, _, failing, _ in TEXT_NOT_TEXT]
    assert [row["message"].rsplit("(", 1)[-1] for row in bad] == [f"{detail})" for *_, detail in TEXT_NOT_TEXT]
    assert counts["is_balanced"]
