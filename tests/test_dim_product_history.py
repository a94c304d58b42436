"""dim_product_history: SCD type 2 of the catalog, rebuilt from every weekly snapshot on or before D."""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from pipeline.transform import warehouse
from tests.support import rows as r

W1, W2, W3, W4 = (dt.date(2025, 12, 1) + dt.timedelta(weeks=n) for n in range(4))
END = dt.date(9999, 12, 31)


@pytest.fixture(autouse=True)
def lake_dir(tmp_path, monkeypatch):
    r.use_lake(tmp_path, monkeypatch)
    p = r.product
    r.stage_day(W1, products=[
        p(product_id="P1", current_price=10), p(product_id="P2"), p(product_id="P3"),
        p(product_id="P4"), p(product_id="P5", brand=None),
    ])
    r.stage_day(W2, products=[
        p(product_id="P1", current_price=12), p(product_id="P2"), p(product_id="P4"),
        p(product_id="P5", brand=None),
    ])  # P1's price changes, P3 is missing
    r.stage_day(W3, products=[
        p(product_id="P1", current_price=12, category="Garden"), p(product_id="P2"), p(product_id="P3"),
        p(product_id="P5", brand="Acme"),
    ])  # P1's category changes, P3 is back, P4 is missing, P5 gets a brand
    r.stage_day(W4, products=[p(product_id="P1", current_price=99)])  # after the dates built below


def history(load_date: dt.date) -> list[tuple]:
    assert warehouse.build("dim_product_history", load_date) > 0
    return [(row["product_id"], row["version"], row["category"], row["brand"], row["current_price"],
             row["effective_from"], row["effective_to"], row["is_current"])
            for row in r.read("warehouse", "dim_product_history", load_date, ("product_id", "version"))]


def test_versions_start_on_changes_and_end_when_changed_or_dropped():
    price = r.money
    assert history(W3 + dt.timedelta(days=2)) == [
        ("P1", 1, "Home", "BrandA", price("10"), W1, W2, False),
        ("P1", 2, "Home", "BrandA", price("12"), W2, W3, False),
        ("P1", 3, "Garden", "BrandA", price("12"), W3, END, True),
        ("P2", 1, "Home", "BrandA", price("19.99"), W1, END, True),
        ("P3", 1, "Home", "BrandA", price("19.99"), W1, W2, False),  # missing from W2: ended
        ("P3", 2, "Home", "BrandA", price("19.99"), W3, END, True),  # back in W3: a new version
        ("P4", 1, "Home", "BrandA", price("19.99"), W1, W3, False),  # missing from W3
        ("P5", 1, "Home", "Unknown brand", price("19.99"), W1, W3, False),
        ("P5", 2, "Home", "Acme", price("19.99"), W3, END, True),
    ]


def test_the_history_as_of_an_earlier_date_ignores_later_snapshots():
    assert [row for row in history(W2) if row[0] in ("P1", "P3")] == [
        ("P1", 1, "Home", "BrandA", r.money("10"), W1, W2, False),
        ("P1", 2, "Home", "BrandA", r.money("12"), W2, END, True),
        ("P3", 1, "Home", "BrandA", r.money("19.99"), W1, W2, False),
    ]


def test_product_keys_identify_versions_and_the_view_is_the_latest_partition():
    history(W2)
    history(W3)
    rows = r.current("dim_product_history", "product_id, version")
    assert {row["load_date"] for row in rows} == {W3}
    first = rows[0]
    assert first["product_key"] == hashlib.md5(f"P1|{W1}".encode()).hexdigest()
    assert len({row["product_key"] for row in rows}) == len(rows) == 9
