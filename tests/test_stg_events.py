"""stg_events: raw clickstream rows -> typed staging rows, quarantined rows and a reconciliation."""
from __future__ import annotations

import datetime as dt
import json
import re

import pyarrow.parquet as pq
import pytest

from pipeline import lake
from pipeline.ingest import readers
from pipeline.transform import staging
from tests.support import rows as r
from tests.support.paths import REPO

D = r.DAY


@pytest.fixture(autouse=True)
def lake_dir(tmp_path, monkeypatch):
    return r.use_lake(tmp_path, monkeypatch)


def stage(records: list[dict], extra_columns: tuple[str, ...] = ()) -> tuple[list[dict], list[dict], dict]:
    r.write_events(D, records, extra_columns)
    counts = staging.stage("events", D)
    record = r.reconciliation("stg_events")
    assert counts == record and record["is_balanced"]
    return r.read("staging", "stg_events", D, "_row_number"), r.bad_records("stg_events"), record


def test_a_valid_event_is_typed_and_page_views_need_no_product():
    staged, bad, _ = stage([
        r.event(event_id="EVT_1", event_type="add_to_cart"),
        r.event(event_id="EVT_2", event_type="page_view", product_id=None),
    ])
    assert bad == []
    assert staged == [
        {"event_id": "EVT_1", "user_id": "USER_0001", "product_id": "PROD_0001", "event_type": "add_to_cart",
         "event_ts": dt.datetime(2025, 12, 14, 12), "load_date": D, "_source_file": "events.csv",
         "_row_number": 1},
        {"event_id": "EVT_2", "user_id": "USER_0001", "product_id": None, "event_type": "page_view",
         "event_ts": dt.datetime(2025, 12, 14, 12), "load_date": D, "_source_file": "events.csv",
         "_row_number": 2},
    ]
    schema = pq.read_schema(lake.partition_file("staging", "stg_events", D))
    assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in staging.STAGING_SCHEMAS["stg_events"]]


def test_event_types_are_lower_cased_and_timestamps_normalised_to_utc():
    staged, bad, _ = stage([
        r.event(event_id="EVT_1", event_type="PAGE_VIEW", product_id=""),
        r.event(event_id="EVT_2", event_type=" Purchase ", event_ts="2025-12-14T00:30:00+02:00"),
        r.event(event_id="EVT_3", event_ts="2025-12-14 08:15:00Z"),
        r.event(event_id="EVT_4", event_ts="1765700000"),
    ])
    assert bad == []
    assert [(row["event_id"], row["event_type"], row["product_id"], row["event_ts"]) for row in staged] == [
        ("EVT_1", "page_view", None, dt.datetime(2025, 12, 14, 12)),
        # half past midnight at UTC+2 is the previous evening in UTC: a late event, valid
        ("EVT_2", "purchase", "PROD_0001", dt.datetime(2025, 12, 13, 22, 30)),
        ("EVT_3", "view_product", "PROD_0001", dt.datetime(2025, 12, 14, 8, 15)),
        ("EVT_4", "view_product", "PROD_0001", dt.datetime(2025, 12, 14, 8, 13, 20)),
    ]


@pytest.mark.parametrize(("fields", "reason", "failing_value"), [
    ({"event_id": None}, "missing_event_id", None),
    ({"event_id": " "}, "missing_event_id", None),
    ({"user_id": None}, "missing_user_id", None),
    ({"event_type": "hover"}, "unknown_event_type", "hover"),
    ({"event_type": None}, "unknown_event_type", None),
    ({"event_type": "checkout", "product_id": None}, "missing_product_id", None),
    ({"event_ts": "not-a-date"}, "invalid_timestamp", "not-a-date"),
    ({"event_ts": "2025-12-16T00:00:00"}, "future_timestamp", "2025-12-16T00:00:00"),
    ({"event_ts": "1969-07-20T20:17:00"}, "ancient_timestamp", "1969-07-20T20:17:00"),
    ({"event_ts": "2025-10-01T00:00:00"}, "ancient_timestamp", "2025-10-01T00:00:00"),
])
def test_each_rule_quarantines_with_its_reason(fields, reason, failing_value):
    record = r.event(**{"event_id": "EVT_BAD", **fields})
    staged, bad, rec = stage([r.event(event_id="EVT_OK"), record])
    assert [row["event_id"] for row in staged] == ["EVT_OK"]
    (row,) = bad
    assert (row["source_table"], row["reason_code"], row["failing_value"]) == ("stg_events", reason, failing_value)
    assert row["message"].startswith(staging.reason_descriptions()[reason])
    assert json.loads(row["raw_record"]) == {name: record.get(name) for name in r.EVENT_FIELDS}
    assert (row["source_file"], row["row_number"], row["load_date"]) == ("events.csv", 2, D)
    assert (rec["raw_count"], rec["staged_count"], rec["quarantined_count"], rec["duplicate_count"]) == (2, 1, 1, 0)


def test_late_events_within_the_window_are_staged():
    staged, bad, _ = stage([
        r.event(event_id="EVT_1", event_ts="2025-12-13T23:59:59"),
        r.event(event_id="EVT_2", event_ts="2025-11-20T08:00:00"),
    ])
    assert bad == [] and [row["event_id"] for row in staged] == ["EVT_1", "EVT_2"]


def test_exact_duplicates_collapse_but_a_differing_extra_column_is_a_conflict():
    staged, bad, rec = stage([
        r.event(event_id="EVT_1", session="a"),
        r.event(event_id="EVT_1", session="a"),  # identical in every column: a duplicate
        r.event(event_id="EVT_2", session="a"),
        r.event(event_id="EVT_2", session="b"),  # same id, an extra column differs: a conflict
        r.event(event_id=None, session="x"),
        r.event(event_id=None, session="x"),  # duplicates of a bad row are duplicates
    ], extra_columns=("session",))
    assert [(row["event_id"], row["_row_number"]) for row in staged] == [("EVT_1", 1), ("EVT_2", 4)]
    assert [(row["row_number"], row["reason_code"]) for row in bad] == [
        (3, "duplicate_id_conflict"), (5, "missing_event_id")]
    assert json.loads(bad[0]["raw_record"])["session"] == "a"
    assert (rec["raw_count"], rec["staged_count"], rec["quarantined_count"], rec["duplicate_count"]) == (6, 2, 2, 2)


def test_same_id_conflicts_keep_the_latest_timestamp():
    staged, bad, _ = stage([
        r.event(event_id="EVT_1", event_type="add_to_cart", event_ts="2025-12-14T10:00:05"),
        r.event(event_id="EVT_1", event_type="view_product", event_ts="2025-12-14T10:00:00"),
    ])
    assert [(row["event_id"], row["event_type"]) for row in staged] == [("EVT_1", "add_to_cart")]
    assert [(row["row_number"], row["reason_code"], row["failing_value"]) for row in bad] == [
        (2, "duplicate_id_conflict", "EVT_1")]
    assert bad[0]["message"].endswith("(kept row 1)")


# ------------------------------------------------------------------ strict parsing (issue 13)
def test_ids_with_control_characters_or_too_long_are_quarantined_first_middle_and_last():
    staged, bad, rec = stage([
        r.event(event_id="EVT_1", user_id="US\x00ER_1"),  # a raw 0x00 byte from the CSV
        r.event(event_id="EVT_2"),
        r.event(event_id="EVT\t3"),
        r.event(event_id="EVT_4"),
        r.event(event_id="EVT_5", product_id="P" * 257),
        r.event(event_id="EVT_6"),
        r.event(event_id="EVT_7", user_id="USER\r\n0001"),
    ])
    assert [row["event_id"] for row in staged] == ["EVT_2", "EVT_4", "EVT_6"]
    assert [(row["row_number"], row["reason_code"], row["failing_value"]) for row in bad] == [
        (1, "invalid_user_id", "US\\u0000ER_1"), (3, "invalid_event_id", "EVT\\u00093"),  # as JSON writes them
        (5, "invalid_product_id", "P" * 200 + "… (257 characters)"), (7, "invalid_user_id", "USER\\u000d\\u000a0001")]
    assert bad[0]["message"].endswith("(contains a control character)")
    assert bad[2]["message"].endswith("(longer than 256 characters)")
    assert all("\x00" not in (row["raw_record"] + row["message"]) for row in bad)
    assert rec["is_balanced"]


def test_unicode_whitespace_around_values_is_trimmed_like_a_space():
    staged, bad, _ = stage([
        r.event(event_id="\tEVT_1", user_id="USER_0001\t", event_type="\u00a0page_view\u3000", product_id="\u2028",
                event_ts="\ufeff2025-12-14T12:00:00\r"),
        r.event(event_id="EVT_2\u200b", user_id="\u2003USER_0001", product_id="\vPROD_0001\f"),
    ])
    assert bad == []
    assert [(row["event_id"], row["user_id"], row["product_id"], row["event_type"]) for row in staged] == [
        ("EVT_1", "USER_0001", None, "page_view"), ("EVT_2", "USER_0001", "PROD_0001", "view_product")]


def test_ids_are_in_nfc_and_a_numeric_user_or_product_id_is_the_catalogs():
    staged, bad, _ = stage([
        r.event(event_id="EVT_E\u0301", user_id="USER_E\u03011", product_id="89"),
        r.event(event_id="EVT_2", user_id="4512", product_id=" 0089 ", event_type="purchase"),
        r.event(event_id="EVT_3", user_id="-3", product_id="89.0"),  # not digits alone: text ids
    ])
    assert bad == []
    assert [(row["event_id"], row["user_id"], row["product_id"]) for row in staged] == [
        ("EVT_\u00c9", "USER_\u00c91", "PROD_0089"), ("EVT_2", "USER_4512", "PROD_0089"), ("EVT_3", "-3", "89.0")]


def test_the_id_rules_judge_a_numeric_id_as_sent_and_quote_it_so():
    # max_id_length 8: "12345678" is 8 characters as sent (accepted, though PROD_12345678 is 13); "123456789" is
    # too long, and bad_records quotes it as the sender wrote it, not as staging would have mapped it
    with r.model_settings(max_id_length=8):
        staged, bad, _ = stage([
            r.event(event_id="EVT_1", user_id="USER_1", product_id="12345678"),
            r.event(event_id="EVT_2", user_id="USER_1", product_id="123456789"),
            r.event(event_id="EVT_3", user_id="123456789"),
        ])
    assert [(row["event_id"], row["product_id"]) for row in staged] == [("EVT_1", "PROD_12345678")]
    assert [(row["reason_code"], row["failing_value"]) for row in bad] == [
        ("invalid_product_id", "123456789"), ("invalid_user_id", "123456789")]
    assert bad[0]["message"].endswith("(longer than 8 characters)")


def test_an_id_with_an_invisible_format_character_inside_is_quarantined():
    # each prints like USER_0001 / PROD_0001 / EVT_5, and would be a second user, product or event (direction
    # marks are no whitespace: not trimmed at the ends either)
    hidden = ["USER_\u200b0001", "USER_\u00ad0001", "\u200eUSER_0001\u200e", "PROD_\u20600001", "EVT_\u200f5"]
    staged, bad, rec = stage([
        r.event(event_id="EVT_1", user_id=hidden[0]), r.event(event_id="EVT_2", user_id=hidden[1]),
        r.event(event_id="EVT_3", user_id=hidden[2]), r.event(event_id="EVT_4", product_id=hidden[3]),
        r.event(event_id=hidden[4]), r.event(event_id="EVT_6", user_id="USER_\u00c9"),  # a visible accent: an id
    ])
    assert [row["event_id"] for row in staged] == ["EVT_6"]
    assert [(row["reason_code"], row["failing_value"]) for row in bad] == [
        ("invalid_user_id", hidden[0]), ("invalid_user_id", hidden[1]), ("invalid_user_id", hidden[2]),
        ("invalid_product_id", hidden[3]), ("invalid_event_id", hidden[4])]
    assert all(row["message"].endswith("(contains an invisible format character (such as U+200B, U+00AD, U+200E))")
               for row in bad)
    assert rec["is_balanced"]


def test_lower_case_t_and_z_are_read_and_a_date_alone_is_quarantined():
    staged, bad, _ = stage([
        r.event(event_id="EVT_1", event_ts="2025-12-14t12:00:00z"),
        r.event(event_id="EVT_2", event_ts="2025-12-14"),
        r.event(event_id="EVT_3", event_ts="2025-12-14t13:00:00+01:00"),
    ])
    assert [(row["event_id"], row["event_ts"]) for row in staged] == [
        ("EVT_1", dt.datetime(2025, 12, 14, 12)), ("EVT_3", dt.datetime(2025, 12, 14, 12))]
    assert [(row["record_id"], row["reason_code"], row["failing_value"]) for row in bad] == [
        ("EVT_2", "invalid_timestamp", "2025-12-14")]
    assert bad[0]["message"].endswith("(a date without a time of day: the time is required, midnight would be a guess)")


def test_timestamps_are_strict_and_epoch_milliseconds_are_read():
    staged, bad, _ = stage([
        r.event(event_id="EVT_1", event_ts="2025-12-14T12:00:00+25:00"),
        r.event(event_id="EVT_2", event_ts="1765733400000"),
        r.event(event_id="EVT_3", event_ts="2025-12-14T24:00:00"),
        r.event(event_id="EVT_4", event_ts="2025-12-14T22:00:00-08:00"),  # 06:00 UTC the next day, not future
    ])
    assert [(row["event_id"], row["event_ts"]) for row in staged] == [
        ("EVT_2", dt.datetime(2025, 12, 14, 17, 30)), ("EVT_4", dt.datetime(2025, 12, 15, 6))]
    assert [(row["row_number"], row["reason_code"]) for row in bad] == [
        (1, "invalid_timestamp"), (3, "invalid_timestamp")]


def test_the_business_time_zone_applies_to_events_too():
    with r.model_settings(business_timezone="Asia/Tokyo"):
        staged, bad, _ = stage([
            r.event(event_id="EVT_1", event_ts="2025-12-14T08:00:00"),  # Tokyo wall clock = 23:00 UTC the day before
            r.event(event_id="EVT_2", event_ts="2025-12-15T01:00:00"),  # 16:00 UTC: within the 2 h tolerance
            r.event(event_id="EVT_3", event_ts="2025-12-15T02:00:01"),  # beyond it
        ])
    assert [(row["event_id"], row["event_ts"]) for row in staged] == [
        ("EVT_1", dt.datetime(2025, 12, 13, 23)), ("EVT_2", dt.datetime(2025, 12, 14, 16))]
    assert [(row["row_number"], row["reason_code"]) for row in bad] == [(3, "future_timestamp")]


def staging_column_names() -> list[str]:
    """Every name the staging SQL gives a column (`... as name`), comments aside, but the file's own and the
    names the landing renames (pipeline.ingest.readers: a leading "_", RESERVED_COLUMNS)."""
    names: set[str] = set()
    for path in (REPO / "sql" / "staging").glob("*.sql"):
        code = re.sub(r"--[^\n]*", "", path.read_text())
        names |= {name.lower() for name in re.findall(r'\bas\s+"?([A-Za-z_][A-Za-z0-9_]*)"?', code, re.IGNORECASE)}
    return sorted(name for name in names - set(r.EVENT_FIELDS)
                  if not name.startswith("_") and name not in readers.RESERVED_COLUMNS)


def test_an_extra_column_named_like_a_staging_column_changes_nothing():
    """A CSV column named raw_record (or any name the staging SQL uses) is data, not the pipeline's own column:
    an id reused with another user is still a conflict, an identical line still a duplicate."""
    extra = staging_column_names()
    assert "raw_record" in extra and len(extra) > 20
    events = [
        r.event(event_id="EVT_1"),
        r.event(event_id="EVT_1"),  # identical in every column: a duplicate
        r.event(event_id="EVT_2", user_id="USER_0001"),
        r.event(event_id="EVT_2", user_id="USER_0002"),  # same id, another user: a conflict
        r.event(event_id=None),
    ]
    _, _, plain = stage(events)
    staged, bad, record = stage([{**event, **dict.fromkeys(extra, "x")} for event in events], tuple(extra))
    assert [(row["row_number"], row["reason_code"]) for row in bad] == [
        (3, "duplicate_id_conflict"), (5, "missing_event_id")]
    assert [(row["event_id"], row["user_id"]) for row in staged] == [("EVT_1", "USER_0001"), ("EVT_2", "USER_0002")]
    assert record == plain and record["duplicate_count"] == 1
