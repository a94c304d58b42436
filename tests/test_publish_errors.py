"""A publish error names the table, the column and the record, mapped back to the lake row.

The lake partitions here are crafted to hold values Postgres cannot store (a NUL character, an id
longer than a btree index row), bypassing staging, which quarantines such values before they get
this far: the publish is the last line of defence and must say exactly where the value is.
"""
from __future__ import annotations

import datetime as dt
import random
import string

import pytest

from pipeline import config, lake
from pipeline.serving import preload, publish
from tests.support.serving import USER_SCHEMA, event, order, write_facts, write_rows

D = dt.date(2025, 12, 14)
POSITIONS = {"first": 0, "middle": 2, "last": 4}  # of five rows, two per COPY batch


def lake_name(path: str) -> str:
    """A lake path as messages show it: relative to the lake root."""
    return path[len(config.lake_dir()) + 1:]


def published_dates(target) -> list:
    with target.connect() as conn:
        if not conn.execute("select to_regclass('audit.publish_log') is not null").fetchone()[0]:
            return []
        return [d for (d,) in conn.execute("select load_date from audit.publish_log").fetchall()]


@pytest.fixture
def small_batches(luigi_settings):
    luigi_settings("publish", copy_batch_rows=2)  # the bad row may sit in a later batch than the first


@pytest.mark.parametrize("position", POSITIONS)
def test_a_nul_in_a_fact_names_the_column_and_the_order(fresh_db, serving_lake, small_batches, position) -> None:
    index = POSITIONS[position]
    orders = [order(f"ORD_{i}", D) for i in range(1, 6)]
    orders[index]["status"] = "pa\x00id"
    write_facts(D, orders, [event("EVT_1", D)])
    with pytest.raises(publish.PublishError) as caught:
        publish.publish(D)
    path = lake_name(lake.partition_file("warehouse", "fact_orders", D))
    assert str(caught.value) == (
        f"publishing {D} failed: warehouse.fact_orders_all.status, row {index + 1} of lake {path}"
        f" (order_id 'ORD_{index + 1}'): invalid byte sequence for encoding \"UTF8\": 0x00;"
        " it was rolled back, Postgres is unchanged")
    assert published_dates(fresh_db) == []


def test_a_preload_error_names_the_column_and_the_event(fresh_db, serving_lake, small_batches) -> None:
    events = [event(f"EVT_{i}", D) for i in range(1, 6)]
    events[3]["event_type"] = "view\x00"
    write_facts(D, [order("ORD_1", D)], events)
    with pytest.raises(publish.PublishError,
                       match=r"^preloading fact_events of 2025-12-14 failed: warehouse\.fact_events_all\.event_type,"
                             r" row 4 of lake warehouse/fact_events/load_date=2025-12-14/data\.parquet"
                             r" \(event_id 'EVT_4'\): invalid byte sequence .*0x00; it was rolled back"):
        preload.preload("fact_events", D)


def bad_record(row_number: int, **overrides) -> dict:
    row = {"record_id": f"ORD_{row_number}", "reason_code": "invalid_price", "message": "price is not a number",
           "failing_value": "abc", "raw_record": '{"price": "abc"}', "source_file": "orders.json",
           "row_number": row_number, "load_date": D}
    row.update(overrides)
    return row


@pytest.mark.parametrize("position", POSITIONS)
def test_a_nul_in_a_quarantined_record_names_it_by_its_key(fresh_db, serving_lake, small_batches, position) -> None:
    """In an audit table the record is named by its key in the table, not by a value of the rejected record."""
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    write_rows("audit", "bad_records", D, [bad_record(n) for n in (1, 2)], source_table="stg_orders")
    rows = [bad_record(n, record_id=f"EVT_{n}") for n in (11, 12, 13, 14, 15)]
    rows[POSITIONS[position]]["raw_record"] = '{"event_type": "vi\x00ew"}'
    write_rows("audit", "bad_records", D, rows, source_table="stg_events")
    with pytest.raises(publish.PublishError) as caught:
        publish.publish(D)
    path = lake_name(lake.partition_file("audit", "bad_records", D, source_table="stg_events"))
    assert str(caught.value) == (
        f"publishing {D} failed: quarantine.bad_records.raw_record, row {POSITIONS[position] + 1} of lake {path}"
        f" (source_table 'stg_events', row_number {11 + POSITIONS[position]}): invalid byte sequence for encoding"
        " \"UTF8\": 0x00; it was rolled back, Postgres is unchanged")
    assert "EVT_" not in str(caught.value), "no value of the rejected record is quoted"
    assert published_dates(fresh_db) == []


def test_a_nul_in_a_rejected_line_names_its_file_line(fresh_db, serving_lake) -> None:
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    write_rows("audit", "rejected_lines", D, [
        {"source_file": "events.csv", "line_number": 9, "raw_text": "x,y", "error": "TOO FEW COLUMNS: 2"},
        {"source_file": "events.csv", "line_number": 12, "raw_text": "a,\x00", "error": "TOO FEW COLUMNS: 2"},
    ], source_table="events")
    with pytest.raises(publish.PublishError, match=(
            r"failed: quarantine\.rejected_lines\.raw_text, row 2 of lake audit/rejected_lines/load_date=2025-12-14/"
            r"source_table=events/data\.parquet \(source_table 'events', line_number 12\): invalid byte sequence")):
        publish.publish(D)


def long_id() -> str:
    """An id no btree index row can hold (random, so that Postgres cannot compress it small)."""
    rng, chars = random.Random(13), string.ascii_letters + string.digits
    return "USER_" + "".join(rng.choice(chars) for _ in range(3000))


def test_an_id_too_long_for_an_index_names_the_column_and_the_record(fresh_db, serving_lake) -> None:
    write_facts(D, [order("ORD_1", D), order("ORD_2", D, user_id=long_id()), order("ORD_3", D)], [event("EVT_1", D)])
    with pytest.raises(publish.PublishError, match=(
            r"failed: warehouse\.fact_orders_all\.user_id, row 2 of lake warehouse/fact_orders/load_date=2025-12-14/"
            r"data\.parquet \(order_id 'ORD_2'\): index row size \d+ exceeds btree version 4 maximum 2704")):
        publish.publish(D)
    user = {"user_id": long_id(), "first_seen_date": D, "first_order_date": None, "last_seen_date": D,
            "city": None, "country": None, "load_date": D}
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    write_rows("warehouse", "dim_user", D, [dict(user, user_id="USER_1"), user], USER_SCHEMA)
    with pytest.raises(publish.PublishError) as caught:
        publish.publish(D)
    message = str(caught.value)
    assert message.startswith(f"publishing {D} failed: warehouse.dim_user.user_id, row 2 of lake warehouse/dim_user/")
    assert "(user_id 'USER_" in message and "...')" in message, "a long key value is cut"
    assert len(message) < 400
    assert published_dates(fresh_db) == []


def test_a_unique_violation_names_the_key(fresh_db, serving_lake) -> None:
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    write_rows("audit", "bad_records", D, [bad_record(3), bad_record(3, record_id="ORD_X")], source_table="stg_orders")
    with pytest.raises(publish.PublishError, match=(
            r"failed: quarantine\.bad_records, Key \(load_date, source_table, row_number\)=\(2025-12-14, stg_orders, 3\)"
            r" already exists: duplicate key value violates unique constraint \"bad_records_pkey\"")):
        publish.publish(D)
