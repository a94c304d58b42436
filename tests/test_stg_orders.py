"""stg_orders: raw orders -> typed staging rows, quarantined rows and a reconciliation (real DuckDB/Parquet)."""
from __future__ import annotations

import datetime as dt
import json
import os

import pyarrow.parquet as pq
import pytest

from pipeline import lake, staging

try:
    import rows as r
except ImportError:  # tests/ imported as a package
    from tests import rows as r

D = r.DAY
TS = dt.datetime(2025, 12, 14, 12, 0)


@pytest.fixture(autouse=True)
def lake_dir(tmp_path, monkeypatch):
    return r.use_lake(tmp_path, monkeypatch)


def stage(records: list) -> tuple[list[dict], list[dict], dict]:
    r.write_orders(D, records)
    counts = staging.stage("orders", D)
    staged = r.read("staging", "stg_orders", D, "_row_number")
    bad = r.bad_records("stg_orders")
    record = r.reconciliation("stg_orders")
    assert counts == record
    return staged, bad, record


def test_a_valid_order_is_typed():
    staged, bad, rec = stage([r.order(order_id="ORD_9", quantity=3, price=44.85, status="paid")])
    assert staged == [{
        "order_id": "ORD_9", "user_id": "USER_0001", "product_id": "PROD_0001", "quantity": 3,
        "unit_price": r.money("44.85"), "order_ts": TS, "status": "paid", "load_date": D,
        "_source_file": "orders.json", "_row_number": 1,
    }]
    assert bad == []
    assert rec["raw_count"] == rec["staged_count"] == 1 and rec["is_balanced"]


def test_schema_is_the_documented_one():
    stage([r.order()])
    schema = pq.read_schema(lake.partition_file("staging", "stg_orders", D))
    expected = staging.STAGING_SCHEMAS["stg_orders"]
    assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in expected]


def test_normalisations_text_case_numbers_and_timestamps_to_utc():
    staged, bad, _ = stage([
        r.order(order_id="  ORD_1 ", user_id=" USER_0002", status=" PAID ", quantity="10.0", price="12.50"),
        r.order(order_id="ORD_2", timestamp="2025-12-14T17:30:00+01:00"),
        r.order(order_id="ORD_3", timestamp="2025-12-14T17:30:00Z"),
        r.order(order_id="ORD_4", timestamp="2025-12-14 17:30:00"),
        r.order(order_id="ORD_5", timestamp="2025-12-14T17:30:00.250-05:30"),
        r.order(order_id="ORD_6", timestamp="1765733400"),  # epoch seconds = 2025-12-14 17:30:00 UTC
        r.order(order_id="ORD_7", price=0),  # a free item is valid
    ])
    assert bad == []
    by_id = {row["order_id"]: row for row in staged}
    assert by_id["ORD_1"]["user_id"] == "USER_0002"
    assert by_id["ORD_1"]["status"] == "paid"
    assert by_id["ORD_1"]["quantity"] == 10
    assert by_id["ORD_1"]["unit_price"] == r.money("12.50")
    assert by_id["ORD_2"]["order_ts"] == dt.datetime(2025, 12, 14, 16, 30)
    assert by_id["ORD_3"]["order_ts"] == dt.datetime(2025, 12, 14, 17, 30)
    assert by_id["ORD_4"]["order_ts"] == dt.datetime(2025, 12, 14, 17, 30)
    assert by_id["ORD_5"]["order_ts"] == dt.datetime(2025, 12, 14, 23, 0, 0, 250000)
    assert by_id["ORD_6"]["order_ts"] == dt.datetime(2025, 12, 14, 17, 30)
    assert by_id["ORD_7"]["unit_price"] == r.money("0")


@pytest.mark.parametrize(("fields", "reason", "failing_value"), [
    ({"order_id": None}, "missing_order_id", None),
    ({"order_id": "   "}, "missing_order_id", None),
    ({"order_id": r.MISSING}, "missing_order_id", None),
    ({"user_id": ""}, "missing_user_id", None),
    ({"product_id": None}, "missing_product_id", None),
    ({"quantity": "three"}, "invalid_quantity", "three"),
    ({"quantity": 99999999999}, "invalid_quantity", "99999999999"),
    ({"quantity": 2.5}, "invalid_quantity", "2.5"),
    ({"quantity": {"n": 1}}, "invalid_quantity", '{"n":1}'),
    ({"quantity": None}, "invalid_quantity", None),
    ({"quantity": 0}, "non_positive_quantity", "0"),
    ({"quantity": -2}, "non_positive_quantity", "-2"),
    ({"price": "abc"}, "invalid_price", "abc"),
    ({"price": 1.234}, "invalid_price", "1.234"),
    ({"price": 1e20}, "invalid_price", "1e+20"),
    ({"price": -5.5}, "negative_price", "-5.5"),
    ({"quantity": 2000000000, "price": 99999999.99}, "revenue_out_of_range", "2000000000 x 99999999.99"),
    ({"timestamp": "not-a-date"}, "invalid_timestamp", "not-a-date"),
    ({"timestamp": "infinity"}, "invalid_timestamp", "infinity"),
    ({"timestamp": "2025-13-01T00:00:00"}, "invalid_timestamp", "2025-13-01T00:00:00"),
    ({"timestamp": None}, "invalid_timestamp", None),
    ({"timestamp": "2025-12-15T02:00:01"}, "future_timestamp", "2025-12-15T02:00:01"),
    ({"timestamp": "2025-12-17T10:00:00"}, "future_timestamp", "2025-12-17T10:00:00"),
    ({"timestamp": "1969-12-31T23:59:59"}, "ancient_timestamp", "1969-12-31T23:59:59"),
    ({"timestamp": "2025-11-13T23:59:59"}, "ancient_timestamp", "2025-11-13T23:59:59"),
    ({"status": "shipped"}, "invalid_status", "shipped"),
    ({"status": None}, "invalid_status", None),
])
def test_each_rule_quarantines_with_its_reason(fields, reason, failing_value):
    record = r.order(**{"order_id": "ORD_BAD", **fields})
    staged, bad, rec = stage([r.order(order_id="ORD_OK"), record])
    assert [row["order_id"] for row in staged] == ["ORD_OK"]
    assert len(bad) == 1
    (row,) = bad
    assert row["source_table"] == "stg_orders"
    assert row["reason_code"] == reason
    assert row["failing_value"] == failing_value
    assert row["message"].startswith(staging.REASON_CODES[reason])
    assert json.loads(row["raw_record"]) == record
    assert (row["source_file"], row["row_number"], row["load_date"]) == ("orders.json", 2, D)
    assert row["record_id"] == ((record.get("order_id") or "").strip() or None)
    assert (rec["raw_count"], rec["staged_count"], rec["quarantined_count"], rec["duplicate_count"]) == (2, 1, 1, 0)


def test_the_tolerance_and_the_late_window_are_valid():
    staged, bad, _ = stage([
        r.order(order_id="ORD_1", timestamp="2025-12-15T02:00:00"),  # end of day + 2 h: still in
        r.order(order_id="ORD_2", timestamp="2025-12-12T09:00:00"),  # late: two days back, valid
        r.order(order_id="ORD_3", timestamp="2025-11-14T00:00:00"),  # exactly 30 days back
    ])
    assert bad == []
    assert [row["order_id"] for row in staged] == ["ORD_1", "ORD_2", "ORD_3"]


def test_exact_duplicates_collapse_and_are_counted():
    same = r.order(order_id="ORD_1", quantity=2)
    staged, bad, rec = stage([
        same,
        json.dumps(same, indent=4),  # the same object, other whitespace
        same,
        r.order(order_id="ORD_2", quantity="three"),
        r.order(order_id="ORD_2", quantity="three"),  # a duplicate of a bad row is a duplicate too
    ])
    assert [(row["order_id"], row["_row_number"]) for row in staged] == [("ORD_1", 1)]
    assert [(row["record_id"], row["reason_code"]) for row in bad] == [("ORD_2", "invalid_quantity")]
    assert (rec["raw_count"], rec["staged_count"], rec["quarantined_count"], rec["duplicate_count"]) == (5, 1, 1, 3)
    assert rec["is_balanced"]


def test_same_id_conflicts_keep_the_latest_timestamp_then_the_last_row():
    staged, bad, rec = stage([
        r.order(order_id="ORD_1", status="pending", timestamp="2025-12-14T10:00:00"),
        r.order(order_id="ORD_1", status="paid", timestamp="2025-12-14T11:00:00"),  # latest: kept
        r.order(order_id="ORD_1", status="cancelled", timestamp="2025-12-14T09:00:00"),
        r.order(order_id="ORD_2", quantity=1),
        r.order(order_id="ORD_2", quantity=2),  # same timestamp: the later row wins
        r.order(order_id="ORD_3", quantity=1),
        r.order(order_id="ORD_3", quantity="three"),  # a bad row is quarantined for itself
    ])
    assert [(row["order_id"], row["status"], row["quantity"]) for row in staged] == [
        ("ORD_1", "paid", 1), ("ORD_2", "paid", 2), ("ORD_3", "paid", 1)]
    assert [(row["record_id"], row["row_number"], row["reason_code"]) for row in bad] == [
        ("ORD_1", 1, "duplicate_id_conflict"), ("ORD_1", 3, "duplicate_id_conflict"),
        ("ORD_2", 4, "duplicate_id_conflict"), ("ORD_3", 7, "invalid_quantity")]
    assert "kept row 2" in bad[0]["message"] and bad[0]["failing_value"] == "ORD_1"
    assert "kept row 5" in bad[2]["message"]
    assert (rec["staged_count"], rec["quarantined_count"], rec["duplicate_count"]) == (3, 4, 0)


def test_reconciliation_mismatch_is_recorded_then_raised():
    import duckdb

    con = duckdb.connect()
    counts = {"raw_count": 10, "staged_count": 7, "quarantined_count": 1, "duplicate_count": 1,
              "source_records": 12, "rejected_count": 2}
    with pytest.raises(staging.ReconciliationError, match="raw 10 != staged 7"):
        staging.reconcile(con, "stg_orders", D, counts)
    record = r.reconciliation("stg_orders")
    assert record == {"source_table": "stg_orders", "load_date": D, **counts, "is_balanced": False}
    assert staging.reconcile(con, "stg_orders", D, {**counts, "staged_count": 8})["is_balanced"]


@pytest.mark.parametrize("source_records", [11, 13], ids=["a-record-too-many", "a-record-lost"])
def test_file_records_not_landed_or_rejected_are_recorded_then_raised(source_records):
    """The file's records must equal raw + rejected at landing, like raw = staged + quarantined + duplicates."""
    import duckdb

    counts = {"raw_count": 10, "staged_count": 8, "quarantined_count": 1, "duplicate_count": 1,
              "source_records": source_records, "rejected_count": 2}
    with pytest.raises(staging.ReconciliationError, match=f"file's {source_records} records != raw 10 \\+ rejected 2"):
        staging.reconcile(duckdb.connect(), "stg_orders", D, counts)
    assert r.reconciliation("stg_orders") == {"source_table": "stg_orders", "load_date": D, **counts,
                                              "is_balanced": False}


def test_staging_is_written_last_and_reruns_identically():
    r.write_orders(D, [r.order(order_id=f"ORD_{i}", quantity=1 + i % 3) for i in range(50)] + [r.order(quantity=0)])
    staging.stage("orders", D)
    paths = [lake.partition_file("audit", "bad_records", D, source_table="stg_orders"),
             lake.partition_file("audit", "reconciliation", D, source_table="stg_orders"),
             lake.partition_file("staging", "stg_orders", D)]
    mtimes = [os.stat(p).st_mtime_ns for p in paths]
    assert mtimes == sorted(mtimes)
    first = [open(p, "rb").read() for p in paths]
    staging.stage("orders", D)
    assert [open(p, "rb").read() for p in paths] == first


def test_a_day_without_raw_orders_is_an_error():
    with pytest.raises(staging.RawPartitionMissing, match="land it first"):
        staging.stage("orders", D)
