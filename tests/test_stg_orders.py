"""stg_orders: raw orders -> typed staging rows, quarantined rows and a reconciliation (real DuckDB/Parquet)."""
from __future__ import annotations

import datetime as dt
import json
import os

import pyarrow.parquet as pq
import pytest

from pipeline import lake
from pipeline.transform import staging
from tests.support import rows as r

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
    # more decimals than DECIMAL(38,10) holds: not rounded into a valid price or quantity
    ({"price": "9.99000000001"}, "invalid_price", "9.99000000001"),
    ({"price": 0.30000000000000004}, "invalid_price", "0.30000000000000004"),
    ({"price": "1e-11"}, "invalid_price", "1e-11"),
    ({"price": "1.5E-10"}, "invalid_price", "1.5E-10"),
    ({"quantity": "2.00000000001"}, "invalid_quantity", "2.00000000001"),
    ({"price": -5.5}, "negative_price", "-5.5"),
    ({"quantity": 2000000000, "price": 99999999.99}, "revenue_out_of_range", "2000000000 x 99999999.99"),
    # a revenue of 18+ integer digits: quarantined, not an overflow that fails the whole staging run
    ({"quantity": 2000000000, "price": 9999999999.99}, "revenue_out_of_range", "2000000000 x 9999999999.99"),
    ({"quantity": 1000, "price": 1000000000000000}, "revenue_out_of_range", "1000 x 1000000000000000"),
    # a price that fits DECIMAL(18,2) by itself: its line would overflow the marts' sums of the date
    ({"price": "9999999999999999.99"}, "revenue_out_of_range", "1 x 9999999999999999.99"),
    ({"quantity": 2, "price": "5000000000.01"}, "revenue_out_of_range", "2 x 5000000000.01"),
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
    assert row["message"].startswith(staging.reason_descriptions()[reason])
    assert json.loads(row["raw_record"]) == record
    assert (row["source_file"], row["row_number"], row["load_date"]) == ("orders.json", 2, D)
    assert row["record_id"] == ((record.get("order_id") or "").strip() or None)
    assert (rec["raw_count"], rec["staged_count"], rec["quarantined_count"], rec["duplicate_count"]) == (2, 1, 1, 0)


def test_exact_numbers_written_long_are_staged_as_their_value():
    staged, bad, _ = stage([r.order(order_id="ORD_1", price="9.9900000000000", quantity="2.000000000000"),
                            r.order(order_id="ORD_2", price="125e-2", quantity="1E1"),
                            r.order(order_id="ORD_3", price="123000000000e-11")])
    assert bad == []
    assert [(row["unit_price"], row["quantity"]) for row in staged] == [
        (r.money("9.99"), 2), (r.money("1.25"), 10), (r.money("1.23"), 1)]


def test_a_line_at_the_revenue_limit_is_staged():
    staged, bad, _ = stage([r.order(quantity=2, price="5000000000.00")])
    assert bad == [] and staged[0]["unit_price"] == r.money("5000000000.00")


def test_the_tolerance_and_the_late_window_are_valid():
    staged, bad, _ = stage([
        r.order(order_id="ORD_1", timestamp="2025-12-15T02:00:00"),  # end of day + 2 h: still in
        r.order(order_id="ORD_2", timestamp="2025-12-12T09:00:00"),  # late: two days back, valid
        r.order(order_id="ORD_3", timestamp="2025-11-14T00:00:00"),  # exactly 30 days back
    ])
    assert bad == []
    assert [row["order_id"] for row in staged] == ["ORD_1", "ORD_2", "ORD_3"]


def test_a_refund_or_cancellation_of_an_earlier_order_has_the_status_change_window():
    """A refund re-delivers an order weeks after it was placed, with the order's own timestamp: quarantined as
    ancient after 30 days, it left the order sold in fact_orders and the marts (the seed's system upserted it)."""
    staged, bad, _ = stage([
        r.order(order_id="ORD_1", timestamp="2025-10-01T10:00:00", status="refunded"),  # 74 days back
        r.order(order_id="ORD_2", timestamp="2025-06-17T00:00:00", status="cancelled"),  # exactly 180 days back
        r.order(order_id="ORD_3", timestamp="2025-06-16T23:59:59", status="refunded"),  # before them: ancient
        r.order(order_id="ORD_4", timestamp="2025-10-01T10:00:00", status="paid"),  # a new order: the late window
        r.order(order_id="ORD_5", timestamp="2025-10-01T10:00:00", status="pending"),
    ])
    assert [(row["order_id"], row["status"]) for row in staged] == [("ORD_1", "refunded"), ("ORD_2", "cancelled")]
    assert [(row["record_id"], row["reason_code"]) for row in bad] == [
        ("ORD_3", "ancient_timestamp"), ("ORD_4", "ancient_timestamp"), ("ORD_5", "ancient_timestamp")]
    assert bad[0]["message"].endswith("(a refunded order older than [model] status_change_window_days: its status"
                                      " change is not applied; widen the window and restate the load date --source"
                                      " orders)"), bad[0]["message"]
    assert bad[1]["message"].endswith("'2025-10-01T10:00:00'")  # a paid order: no status change to speak of
    with r.model_settings(late_window_days=20, status_change_window_days=100):  # the message names the windows set
        staged, bad, _ = stage([r.order(order_id="ORD_1", timestamp="2025-09-01T10:00:00", status="refunded"),
                                r.order(order_id="ORD_2", timestamp="1969-12-31T23:59:59", status="refunded")])
    assert staged == [] and [row["record_id"] for row in bad] == ["ORD_1", "ORD_2"]
    assert bad[0]["message"].startswith("timestamp is before 1970-01-01 or before the late window ([model]"
                                        " late_window_days, 20; a cancelled or refunded order:"
                                        " status_change_window_days, 100) before the load date: "), bad[0]["message"]
    # before 1970 no window reaches it: no advice to widen one
    assert bad[1]["message"].endswith("'1969-12-31T23:59:59'"), bad[1]["message"]


def test_a_status_change_window_narrower_than_the_late_window_is_refused():
    """It was raised to the late window silently: a setting that does not do what it says is refused."""
    with r.model_settings(status_change_window_days=10), pytest.raises(
            staging.SettingInvalid, match=r"^\[model\] status_change_window_days = 10 must be at least"
                                          r" late_window_days \(30\); fix it in luigi.cfg$"):
        stage([r.order(order_id="ORD_1", status="refunded")])
    with r.model_settings(status_change_window_days=30):  # as wide as the late window: accepted
        staged, bad, _ = stage([r.order(order_id="ORD_1", timestamp="2025-11-14T00:00:00", status="refunded"),
                                r.order(order_id="ORD_2", timestamp="2025-11-13T23:59:59", status="refunded")])
    assert [row["order_id"] for row in staged] == ["ORD_1"] and [row["record_id"] for row in bad] == ["ORD_2"]


def test_exact_duplicates_collapse_and_are_counted():
    same = r.order(order_id="ORD_1", quantity=2)
    staged, bad, rec = stage([
        same,
        json.dumps(same, indent=4),  # the same object, other whitespace
        json.dumps(dict(reversed(same.items()))),  # the same fields in another order
        same,
        r.order(order_id="ORD_2", quantity="three"),
        r.order(order_id="ORD_2", quantity="three"),  # a duplicate of a bad row is a duplicate too
    ])
    assert [(row["order_id"], row["_row_number"]) for row in staged] == [("ORD_1", 1)]
    assert [(row["record_id"], row["reason_code"]) for row in bad] == [("ORD_2", "invalid_quantity")]
    assert (rec["raw_count"], rec["staged_count"], rec["quarantined_count"], rec["duplicate_count"]) == (6, 1, 1, 4)
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
    # moved into place in this order (a rename sets the file's ctime): the staging partition, the task's
    # completion marker, appears last, though its rows are written before the reconciliation counts them
    moved = [os.stat(p).st_ctime_ns for p in paths]
    assert moved == sorted(moved)
    first = [open(p, "rb").read() for p in paths]
    staging.stage("orders", D)
    assert [open(p, "rb").read() for p in paths] == first


def test_a_day_without_raw_orders_is_an_error():
    with pytest.raises(staging.RawPartitionMissing, match="land it first"):
        staging.stage("orders", D)


# ------------------------------------------------------------------ strict parsing (issue 13)
BAD_ROW = (1, 2, 4)  # the bad record's row number in positioned(...)[where]


def positioned(bad: dict | str) -> list[list]:
    """The bad record first, in the middle and last among three valid orders (ORD_OK_<n>)."""
    valid = [r.order(order_id=f"ORD_OK_{n}") for n in range(3)]
    return [[bad, *valid], [*valid[:1], bad, *valid[1:]], [*valid, bad]]


def interleaved(bad: list, good: list) -> list:
    """bad[0], good[0], bad[1], good[1], ..., bad[-1]: the first and the last record are bad."""
    assert len(good) == len(bad) - 1
    out = [bad[0]]
    for valid, record in zip(good, bad[1:]):
        out += [valid, record]
    return out


NOT_NUMBERS = [
    ("price", "1_999.00"), ("price", "1,999.00"), ("price", "0x10"), ("price", "inf"), ("price", "NaN"),
    ("price", "1 999.00"), ("price", "+-5"), ("price", "5e"), ("price", "1.2.3"),
    ("quantity", "1_0"), ("quantity", "1,000"), ("quantity", "0x0A"), ("quantity", "Infinity"),
    ("quantity", "\u0663"),  # an Arabic-Indic digit three: not [0-9]
    ("quantity", "1\u00a0000"),
]
# (quantity, price) as sent -> (quantity, unit_price) staged: every documented form still reads
PLAIN_NUMBERS = [
    (("1e1", "+12.5"), (10, "12.50")), (("2.", ".5"), (2, "0.50")), ((3.0, "1.25E1"), (3, "12.50")),
    (("+4", 1e1), (4, "10.00")), (("5", "-0.0"), (5, "0.00")), ((6, "7.10"), (6, "7.10")),
    (("7", "1E-2"), (7, "0.01")),
]


def test_numbers_follow_the_strict_grammar():
    bad = [r.order(order_id=f"ORD_BAD_{n}", **{field: text}) for n, (field, text) in enumerate(NOT_NUMBERS)]
    forms = (PLAIN_NUMBERS * 2)[:len(bad) - 1]
    good = [r.order(order_id=f"ORD_OK_{n}", quantity=q, price=p) for n, ((q, p), _) in enumerate(forms)]
    staged, bad_rows, rec = stage(interleaved(bad, good))
    assert [(row["order_id"], row["quantity"], row["unit_price"]) for row in staged] == [
        (f"ORD_OK_{n}", q, r.money(p)) for n, (_, (q, p)) in enumerate(forms)]
    assert [(row["record_id"], row["reason_code"], row["failing_value"]) for row in bad_rows] == [
        (f"ORD_BAD_{n}", f"invalid_{field}", text) for n, (field, text) in enumerate(NOT_NUMBERS)]
    assert rec["is_balanced"]


NESTED_REPEAT = ('{"order_id": "ORD_NESTED", "user_id": "USER_0001", "product_id": "PROD_0001", "quantity": 1,'
                 ' "price": 1, "timestamp": "2025-12-14T12:00:00", "status": "paid",'
                 ' "coupon": {"code": "A", "code": "B"}}')


@pytest.mark.parametrize("where", [0, 1, 2], ids=["first", "middle", "last"])
def test_a_key_twice_in_one_object_is_quarantined_naming_the_key(where):
    bad = ('{"order_id": "ORD_BAD", "user_id": "USER_0001", "product_id": "PROD_0001", "quantity": 1,'
           ' "price": 1, "timestamp": "2025-12-14T12:00:00", "status": "paid", "price": 999}')
    # a key repeated inside a nested object staging does not read is not ambiguous: that order is valid
    staged, bad_rows, _ = stage([*positioned(bad)[where], NESTED_REPEAT])
    assert [row["order_id"] for row in staged] == ["ORD_OK_0", "ORD_OK_1", "ORD_OK_2", "ORD_NESTED"]
    (row,) = bad_rows
    assert (row["row_number"], row["reason_code"], row["failing_value"], row["record_id"]) == (
        BAD_ROW[where], "duplicate_json_key", "price", "ORD_BAD")
    assert row["message"] == staging.REASON_CODES["duplicate_json_key"] + ": 'price'"
    assert '"price":1' in row["raw_record"] and '"price":999' in row["raw_record"]  # both kept for operators


NOT_IDS = [
    ("order_id", 515151.0, "515151.0", "a JSON number with a fraction or an exponent"),
    ("order_id", 1e5, "100000.0", "a JSON number with a fraction or an exponent"),
    ("order_id", True, "true", "a JSON boolean"),
    ("user_id", {"id": 7}, '{"id":7}', "a JSON object"),
    ("user_id", [7], "[7]", "a JSON array"),
    ("user_id", False, "false", "a JSON boolean"),
    ("user_id", -2.5, "-2.5", "a JSON number with a fraction or an exponent"),
    ("product_id", {"sku": "X"}, '{"sku":"X"}', "a JSON object"),
    ("product_id", 12.0, "12.0", "a JSON number with a fraction or an exponent"),
    # json.dumps writes these non-JSON literals, and DuckDB's JSON reader accepts them (as numbers)
    ("product_id", float("nan"), "NaN", "a JSON NaN or Infinity"),
    ("order_id", float("inf"), "Infinity", "a JSON NaN or Infinity"),
    ("user_id", float("-inf"), "-Infinity", "a JSON NaN or Infinity"),
    ("user_id", "USER\t0001", "USER\\u00090001", "contains a control character"),  # escaped in bad_records
    ("user_id", "USER\u00850001", "USER\\u00850001", "contains a control character"),
    ("order_id", "ORD\nBAD", "ORD\\u000aBAD", "contains a control character"),
    # bad_records quotes the first 200 characters of a longer value (the raw record keeps it whole)
    ("user_id", "U" * 257, "U" * 200 + "… (257 characters)", "longer than 256 characters"),
    ("product_id", "P" * 257, "P" * 200 + "… (257 characters)", "longer than 256 characters"),
]
# valid ids: JSON integers, and strings whatever they look like -> the staged id text (a user or product id of
# digits alone is the catalog's numeric id: test_a_numeric_user_or_product_id_is_the_catalogs_numeric_id)
TEXT_IDS = [
    (-3, "-3"), ("true", "true"), ("{x}", "{x}"), ("515151.5", "515151.5"), ("[1]", "[1]"),
    ("U" * 256, "U" * 256), ("ORD\u00a0X", "ORD\u00a0X"), ("-", "-"), ("1e5", "1e5"), ("0.0", "0.0"),
    ("false ", "false"), ("NaN", "NaN"), ("infinity", "infinity"), ("-Inf", "-Inf"), ("007a", "007a"), ("-42", "-42"),
]


def test_ids_are_json_strings_or_integers_without_control_characters():
    bad = [r.order(**{"order_id": f"ORD_BAD_{n}", field: value}) for n, (field, value, _, _) in enumerate(NOT_IDS)]
    good = [r.order(order_id=f"ORD_OK_{n}", user_id=value, product_id=value) for n, (value, _) in enumerate(TEXT_IDS)]
    staged, bad_rows, _ = stage(interleaved(bad, good))
    assert [(row["user_id"], row["product_id"]) for row in staged] == [(text, text) for _, text in TEXT_IDS]
    assert [(row["reason_code"], row["failing_value"]) for row in bad_rows] == [
        (f"invalid_{field}", text) for field, _, text, _ in NOT_IDS]
    for row, (_, _, _, detail) in zip(bad_rows, NOT_IDS):
        assert row["message"].endswith(f"({detail})"), row["message"]


def test_an_integer_id_and_the_same_digits_as_a_string_are_one_id_but_a_fraction_is_not():
    staged, bad, _ = stage([
        r.order(order_id=515151, user_id=42, product_id=7, quantity=1),
        r.order(order_id="515151", user_id="42", product_id="7", quantity=2, timestamp="2025-12-14T13:00:00"),
        r.order(order_id=515151.0, user_id="42", product_id="7", quantity=3, timestamp="2025-12-14T14:00:00"),
    ])
    assert [(row["order_id"], row["user_id"], row["product_id"], row["quantity"]) for row in staged] == [
        ("515151", "USER_0042", "PROD_0007", 2)]
    assert [(row["failing_value"], row["reason_code"]) for row in bad] == [
        ("515151", "duplicate_id_conflict"), ("515151.0", "invalid_order_id")]


# user_id and product_id as sent -> staged: digits alone are the catalog's numeric id, mapped as the catalog API's
# id is (catalog_id: zero-padded to 4 digits, 5 or more kept whole); any other text is the id as written
NUMERIC_IDS = [
    (89, "USER_0089", "PROD_0089"), ("89", "USER_0089", "PROD_0089"), (" 89 ", "USER_0089", "PROD_0089"),
    ("0089", "USER_0089", "PROD_0089"), (4512, "USER_4512", "PROD_4512"), (0, "USER_0000", "PROD_0000"),
    (515151, "USER_515151", "PROD_515151"),
    (123456789012345678901234567890, "USER_123456789012345678901234567890", "PROD_123456789012345678901234567890"),
    ("-3", "-3", "-3"), ("89.0", "89.0", "89.0"), ("89a", "89a", "89a"),
    ("\uff18\uff19", "\uff18\uff19", "\uff18\uff19"),  # fullwidth digits are not ASCII digits: text
]


def test_a_numeric_user_or_product_id_is_the_catalogs_numeric_id():
    staged, bad, _ = stage([r.order(order_id=f"ORD_{n}", user_id=value, product_id=value)
                            for n, (value, _, _) in enumerate(NUMERIC_IDS)])
    assert bad == []
    assert [(row["user_id"], row["product_id"]) for row in staged] == [(u, p) for _, u, p in NUMERIC_IDS]


def test_ids_are_one_id_in_any_unicode_normalization_form():
    nfc, nfd = "USER_\u00c91", "USER_E\u03011"  # 'É' precomposed, and 'E' with a combining acute accent
    staged, bad, rec = stage([
        r.order(order_id="ORD_\u00c9", user_id=nfc, product_id="PROD_\u00c9", quantity=1),
        r.order(order_id="ORD_E\u0301", user_id=nfd, product_id="PROD_E\u0301", quantity=2,
                timestamp="2025-12-14T13:00:00"),  # the same order, written decomposed: the later version
        r.order(order_id="ORD_2", user_id="\uff35\uff33\uff25\uff32_0001"),  # fullwidth: NFC keeps it (not NFKC)
        r.order(order_id="ORD_3", user_id="USER_0001\u200b"),
    ])
    assert [(row["order_id"], row["user_id"], row["product_id"], row["quantity"]) for row in staged] == [
        ("ORD_\u00c9", nfc, "PROD_\u00c9", 2), ("ORD_2", "\uff35\uff33\uff25\uff32_0001", "PROD_0001", 1),
        ("ORD_3", "USER_0001", "PROD_0001", 1)]
    assert [(row["record_id"], row["reason_code"]) for row in bad] == [("ORD_\u00c9", "duplicate_id_conflict")]
    assert rec["is_balanced"]


def test_the_id_length_limit_is_a_setting():
    long_id = "U" * 400
    with r.model_settings(max_id_length=512):
        staged, bad, _ = stage([r.order(user_id=long_id)])
    assert bad == [] and staged[0]["user_id"] == long_id
    for wrong in (0, 513):
        with r.model_settings(max_id_length=wrong), pytest.raises(staging.SettingInvalid, match="max_id_length"):
            staging.stage("orders", D)


def test_the_id_rules_judge_a_numeric_id_as_sent_and_quote_it_so():
    # max_id_length 8: 12345678 is 8 characters as sent (accepted, though PROD_12345678 is 13); 123456789 is too
    # long, and bad_records quotes it as the sender wrote it, not as staging would have mapped it
    with r.model_settings(max_id_length=8):
        staged, bad, _ = stage([
            r.order(order_id="ORD_1", user_id="USER_1", product_id=12345678),
            r.order(order_id="ORD_2", user_id="USER_1", product_id="123456789"),
            r.order(order_id="ORD_3", user_id=123456789),
        ])
    assert [(row["order_id"], row["product_id"]) for row in staged] == [("ORD_1", "PROD_12345678")]
    assert [(row["reason_code"], row["failing_value"]) for row in bad] == [
        ("invalid_product_id", "123456789"), ("invalid_user_id", "123456789")]
    assert bad[0]["message"].endswith("(longer than 8 characters)")


def test_an_id_with_an_invisible_format_character_inside_is_quarantined():
    # a zero-width space inside a user id, a word joiner inside a product id: each prints like the real id
    staged, bad, _ = stage([
        r.order(order_id="ORD_1", user_id="USER_\u200b0001"),
        r.order(order_id="ORD_2", product_id="PROD_\u20600001"),
        r.order(order_id="ORD_3"),
    ])
    assert [row["order_id"] for row in staged] == ["ORD_3"]
    assert [(row["reason_code"], row["failing_value"]) for row in bad] == [
        ("invalid_user_id", "USER_\u200b0001"), ("invalid_product_id", "PROD_\u20600001")]
    assert bad[0]["message"].endswith("(contains an invisible format character (such as U+200B, U+00AD, U+200E))")


@pytest.mark.parametrize("setting", [{"late_window_days": -5}, {"future_tolerance_hours": -1},
                                     {"status_change_window_days": -1}])
def test_a_negative_time_window_is_refused_not_applied(setting):
    (name,) = setting
    with r.model_settings(**setting), pytest.raises(staging.SettingInvalid, match=rf"\[model\] {name} = -\d+ must be 0"):
        stage([r.order()])


@pytest.mark.parametrize("value", [",", "", "payed", "paid, shipped"])
def test_sold_statuses_must_name_known_statuses(value):
    from pipeline.transform import warehouse

    with r.model_settings(sold_statuses=value), pytest.raises(staging.SettingInvalid, match="sold_statuses"):
        warehouse.model_params(D)
    with r.model_settings(sold_statuses="Paid, refunded"):
        assert warehouse.model_params(D)["sold_statuses"] == ["paid", "refunded"]


WHITESPACE = "\t\n\r\v\f \u0085\u00a0\u1680\u2000\u2005\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"


def test_every_kind_of_unicode_whitespace_is_trimmed_in_every_text_field():
    staged, bad, _ = stage([
        r.order(order_id="\tORD_1", user_id="USER_0001\t", product_id="\u00a0PROD_0001\u3000", status="\tpaid\n",
                quantity="\u2003 2\t", price="\ufeff9.50\r\n", timestamp="\v2025-12-14T12:00:00\f"),
        r.order(order_id=f"{WHITESPACE}ORD_2{WHITESPACE}", user_id=f"{WHITESPACE}USER_0001{WHITESPACE}",
                status=f"{WHITESPACE}PAID{WHITESPACE}"),
        r.order(order_id="ORD_3", user_id=WHITESPACE),  # only whitespace: missing
    ])
    assert [(row["order_id"], row["user_id"], row["product_id"], row["status"]) for row in staged] == [
        ("ORD_1", "USER_0001", "PROD_0001", "paid"), ("ORD_2", "USER_0001", "PROD_0001", "paid")]
    assert (staged[0]["quantity"], staged[0]["unit_price"], staged[0]["order_ts"]) == (2, r.money("9.50"), TS)
    assert [(row["record_id"], row["reason_code"]) for row in bad] == [("ORD_3", "missing_user_id")]


def test_nul_characters_are_quarantined_and_escaped_for_postgres():
    staged, bad, _ = stage([
        r.order(order_id="ORD\u0000A"),
        r.order(order_id="ORD_B", status="paid\u0000"),
        r.order(order_id="ORD_C", price="1\u00000"),
        r.order(order_id="ORD_D", note="free text with a NUL \u0000 is kept in raw only"),  # unused: valid
    ])
    assert [row["order_id"] for row in staged] == ["ORD_D"]
    assert [(row["record_id"], row["reason_code"], row["failing_value"]) for row in bad] == [
        ("ORD\\u0000A", "invalid_order_id", "ORD\\u0000A"),
        ("ORD_B", "invalid_status", "paid\\u0000"),
        ("ORD_C", "invalid_price", "1\\u00000"),
    ]
    for row in bad:
        assert not any("\x00" in (row[c] or "") for c in ("record_id", "message", "failing_value", "raw_record"))
    assert json.loads(bad[0]["raw_record"])["order_id"] == "ORD\u0000A"  # JSON escapes it: nothing lost


VALID_TIMESTAMPS = [
    ("2025-12-14T12:00:00+14:00", dt.datetime(2025, 12, 13, 22)),
    ("2025-12-14T12:00:00-14:00", dt.datetime(2025, 12, 15, 2)),
    ("2025-12-14T12:00:00+0530", dt.datetime(2025, 12, 14, 6, 30)),
    ("2025-12-14T12:00+05", dt.datetime(2025, 12, 14, 7)),
    ("2025-12-14 12:00", dt.datetime(2025, 12, 14, 12)),
    ("2025-12-14T12:00:00.123456789Z", dt.datetime(2025, 12, 14, 12, 0, 0, 123456)),
    # RFC 3339 allows a lower-case 't' and 'z'
    ("2025-12-14t12:00:00", dt.datetime(2025, 12, 14, 12)),
    ("2025-12-14T12:00:00z", dt.datetime(2025, 12, 14, 12)),
    ("2025-12-14t12:00:00.5z", dt.datetime(2025, 12, 14, 12, 0, 0, 500000)),
    ("2025-12-14t12:00+01:00", dt.datetime(2025, 12, 14, 11)),
    ("1765733400000", dt.datetime(2025, 12, 14, 17, 30)),  # epoch milliseconds
    ("1765733400", dt.datetime(2025, 12, 14, 17, 30)),
]


def test_valid_timestamps():
    staged, bad, _ = stage([r.order(order_id=f"ORD_{n}", timestamp=text) for n, (text, _) in enumerate(VALID_TIMESTAMPS)])
    assert bad == []
    assert [row["order_ts"] for row in staged] == [expected for _, expected in VALID_TIMESTAMPS]


NOT_TIMESTAMPS = [
    "2025-12-14T12:00:00+25:00", "2025-12-14T12:00:00+14:30", "2025-12-14T12:00:00-15:00",
    "2025-12-14T12:00:00+05:60", "2025-12-14T24:00:00", "2025-12-14T23:59:60", "2025-12-14T12:60:00",
    "2025-12-14T12:00:00 America/New_York", "2025-12-14T12:00:00 +01:00", "2025-02-30T12:00:00",
    "2025-12-14T12:00:00+1", "176573340000", "17657334000000", "2025-12-14x12:00:00", "epoch", "2025-12-14",
    "2025-12-14T12:00:00.1234567890", "+2025-12-14T12:00:00", "2025-12-14T1:00:00",
]


def test_invalid_offsets_clock_times_and_shapes_are_quarantined():
    bad = [r.order(order_id=f"ORD_BAD_{n}", timestamp=text) for n, text in enumerate(NOT_TIMESTAMPS)]
    forms = (VALID_TIMESTAMPS * 2)[:len(bad) - 1]
    good = [r.order(order_id=f"ORD_OK_{n}", timestamp=text) for n, (text, _) in enumerate(forms)]
    staged, bad_rows, _ = stage(interleaved(bad, good))
    assert [(row["order_id"], row["order_ts"]) for row in staged] == [
        (f"ORD_OK_{n}", expected) for n, (_, expected) in enumerate(forms)]
    assert [(row["record_id"], row["reason_code"], row["failing_value"]) for row in bad_rows] == [
        (f"ORD_BAD_{n}", "invalid_timestamp", text) for n, text in enumerate(NOT_TIMESTAMPS)]


def test_a_date_without_a_time_is_quarantined_saying_so():
    staged, bad, _ = stage([r.order(order_id="ORD_1", timestamp="2025-12-14"),
                            r.order(order_id="ORD_2", timestamp="2025-12-14T00:00:00")])
    assert [(row["order_id"], row["order_ts"]) for row in staged] == [("ORD_2", dt.datetime(2025, 12, 14))]
    (row,) = bad
    assert (row["record_id"], row["reason_code"], row["failing_value"]) == ("ORD_1", "invalid_timestamp", "2025-12-14")
    assert row["message"] == (staging.REASON_CODES["invalid_timestamp"] + ": '2025-12-14' (a date without a time of"
                              " day: the time is required, midnight would be a guess)")


def test_a_timestamp_written_with_the_load_date_is_never_from_the_future():
    staged, bad, _ = stage([
        r.order(order_id="ORD_1", timestamp="2025-12-14T21:30:00-05:00"),  # 02:30 UTC the next day
        r.order(order_id="ORD_2", timestamp="2025-12-14T23:59:59-05:00"),
        r.order(order_id="ORD_3", timestamp="2025-12-14T23:59:59-14:00"),  # 13:59:59 UTC the next day
        r.order(order_id="ORD_4", timestamp="2025-12-15T00:30:00-05:00"),  # the next day, 05:30 UTC: future
        r.order(order_id="ORD_5", timestamp="2025-12-15T02:00:00"),  # end of day + 2 h, UTC: still in
        r.order(order_id="ORD_6", timestamp="1765767600"),  # epoch: 2025-12-15 03:00 UTC, beyond + 2 h
    ])
    assert [(row["order_id"], row["order_ts"]) for row in staged] == [
        ("ORD_1", dt.datetime(2025, 12, 15, 2, 30)), ("ORD_2", dt.datetime(2025, 12, 15, 4, 59, 59)),
        ("ORD_3", dt.datetime(2025, 12, 15, 13, 59, 59)), ("ORD_5", dt.datetime(2025, 12, 15, 2))]
    assert [(row["record_id"], row["reason_code"]) for row in bad] == [
        ("ORD_4", "future_timestamp"), ("ORD_6", "future_timestamp")]


def test_the_business_time_zone_reads_wall_clock_times_and_moves_the_day_boundaries():
    with r.model_settings(business_timezone="America/New_York"):
        staged, bad, _ = stage([
            r.order(order_id="ORD_1", timestamp="2025-12-14T23:30:00"),  # New York wall clock = 04:30 UTC
            r.order(order_id="ORD_2", timestamp="2025-12-15T01:59:59"),  # within the 2 h tolerance
            r.order(order_id="ORD_3", timestamp="2025-12-15T02:00:01"),  # beyond it: future
            r.order(order_id="ORD_4", timestamp="2025-12-14T23:30:00Z"),  # an offset wins over the zone
            r.order(order_id="ORD_5", timestamp="2025-11-14T00:00:00"),  # start of the day 30 days back
            r.order(order_id="ORD_6", timestamp="2025-11-13T23:59:59"),  # before it: ancient
            r.order(order_id="ORD_7", timestamp="2025-12-14T00:00"),  # midnight in New York
        ])
    assert [(row["order_id"], row["order_ts"]) for row in staged] == [
        ("ORD_1", dt.datetime(2025, 12, 15, 4, 30)), ("ORD_2", dt.datetime(2025, 12, 15, 6, 59, 59)),
        ("ORD_4", dt.datetime(2025, 12, 14, 23, 30)), ("ORD_5", dt.datetime(2025, 11, 14, 5)),
        ("ORD_7", dt.datetime(2025, 12, 14, 5))]
    assert [(row["record_id"], row["reason_code"]) for row in bad] == [
        ("ORD_3", "future_timestamp"), ("ORD_6", "ancient_timestamp")]


@pytest.mark.parametrize(("day", "wall_clock", "utc"), [
    # clocks went back at 02:00 EDT: 01:30 happened twice, and is read as the later instant (EST, UTC-5)
    (dt.date(2025, 11, 2), "2025-11-02T01:30:00", dt.datetime(2025, 11, 2, 6, 30)),
    # clocks went forward at 02:00 EST: 02:30 never happened, and is read with the offset before (EST)
    (dt.date(2026, 3, 8), "2026-03-08T02:30:00", dt.datetime(2026, 3, 8, 7, 30)),
])
def test_a_wall_clock_time_a_daylight_saving_change_repeats_or_skips_is_read_as_documented(day, wall_clock, utc):
    with r.model_settings(business_timezone="America/New_York"):
        r.write_orders(day, [r.order(order_id="ORD_1", timestamp=wall_clock)])
        staging.stage("orders", day)
    assert [row["order_ts"] for row in r.read("staging", "stg_orders", day, "_row_number")] == [utc]


def test_an_unknown_business_time_zone_is_refused_with_the_setting_named():
    r.write_orders(D, [r.order()])
    with r.model_settings(business_timezone="Europe/Atlantis"), pytest.raises(
            staging.SettingInvalid, match=r"\[model\] business_timezone = 'Europe/Atlantis'"):
        staging.stage("orders", D)


# ------------------------------------------------------------------------------ grain (issue 13)
@pytest.mark.parametrize("where", [0, 1, 2], ids=["first", "middle", "last"])
def test_a_second_line_of_an_order_is_quarantined_as_multiple_order_lines(where):
    lines = [r.order(order_id="ORD_1", product_id="PROD_0001", quantity=1),
             r.order(order_id="ORD_1", product_id="PROD_0002", quantity=1)]
    others = [r.order(order_id="ORD_2"), r.order(order_id="ORD_3")]
    records = [[*lines, *others], [others[0], *lines, others[1]], [*others, *lines]][where]
    staged, bad, rec = stage(records)
    # one row per order: the later line is kept (same timestamp: the later row, as for conflicts)
    assert [(row["order_id"], row["product_id"]) for row in staged] == sorted(
        [("ORD_1", "PROD_0002"), ("ORD_2", "PROD_0001"), ("ORD_3", "PROD_0001")],
        key=lambda k: [(x["order_id"], x["product_id"]) for x in records].index(k))
    (row,) = bad
    kept = records.index(lines[1]) + 1
    assert (row["row_number"], row["reason_code"], row["record_id"]) == (kept - 1, "multiple_order_lines", "ORD_1")
    assert row["message"] == staging.REASON_CODES["multiple_order_lines"] + f": 'ORD_1' (kept row {kept})"
    assert json.loads(row["raw_record"])["product_id"] == "PROD_0001"
    assert (rec["staged_count"], rec["quarantined_count"]) == (3, 1)


def test_other_lines_and_other_versions_of_an_order_get_their_own_reasons():
    staged, bad, _ = stage([
        r.order(order_id="ORD_1", product_id="PROD_0001", status="pending", timestamp="2025-12-14T10:00:00"),
        r.order(order_id="ORD_1", product_id="PROD_0002", timestamp="2025-12-14T11:00:00"),
        r.order(order_id="ORD_1", product_id="PROD_0001", status="paid", timestamp="2025-12-14T12:00:00"),
    ])
    assert [(row["order_id"], row["product_id"], row["status"]) for row in staged] == [("ORD_1", "PROD_0001", "paid")]
    assert [(row["row_number"], row["reason_code"]) for row in bad] == [
        (1, "duplicate_id_conflict"), (2, "multiple_order_lines")]
