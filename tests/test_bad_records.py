"""audit.bad_records: values Postgres cannot store never block a date (real files, lake and Postgres).

A tiny date whose files hold NUL characters (JSON `\\u0000`, a raw 0x00 byte in the CSV, in a catalog
record, in an unused extra field of a valid order) and an id too long for a Postgres index is landed,
staged, built and published for real: the valid rows are published, the bad ones are quarantined and
sit in Postgres's audit.bad_records with the NUL written as the six characters \\u0000.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pipeline.ingest import landing
from pipeline.serving import publish
from pipeline.transform import staging, warehouse

D = dt.date(2025, 12, 15)
NUL = "\u0000"


def order(order_id: str, **fields: object) -> dict:
    return {"order_id": order_id, "user_id": "USER_0001", "product_id": "PROD_0001", "quantity": 1,
            "price": 9.99, "timestamp": f"{D}T10:00:00", "status": "paid", **fields}


def write_incoming(root: Path) -> None:
    orders = [
        order("ORD_1", user_id=f"USER{NUL}0002"),  # NUL in an id (JSON escape): quarantined
        order("ORD_2", note=f"gift{NUL}wrap"),  # NUL in an unused extra field: a valid order
        order("ORD_3", user_id="U" * 3000),  # too long for a btree index: quarantined
        order("ORD_4", status=f"paid{NUL}"),  # NUL in the status: quarantined
        order("ORD_5"),
    ]
    (root / "orders" / str(D)).mkdir(parents=True)
    (root / "orders" / str(D) / "orders.json").write_text(json.dumps(orders), encoding="utf-8")
    (root / "events" / str(D)).mkdir(parents=True)
    (root / "events" / str(D) / "events.csv").write_bytes(
        b"event_id,user_id,product_id,event_type,event_ts,campaign\n"
        b"E1,USER_\x000001,PROD_0001,view_product,2025-12-15T10:00:00,\n"  # a raw NUL byte: quarantined
        b"E2,USER_0001,PROD_0001,view_product,2025-12-15T10:00:00,sp\x00ring\n"  # in an extra column: valid
        b"E3\x00,USER_0001,,page_view,2025-12-15T10:00:00,\n")
    (root / "products").mkdir()
    (root / "products" / f"products_{D}.json").write_text(json.dumps([
        {"product_id": "PROD_0001", "product_name": "Lamp", "category": "Home", "current_price": 19.99},
        {"product_id": "PROD_0002", "product_name": f"Sh{NUL}ade", "category": "Home", "current_price": 5},
    ]), encoding="utf-8")
    (root / "users").mkdir()
    (root / "users" / f"users_{D}.json").write_text(json.dumps([
        {"user_id": "USER_0001", "city": "Oslo", "country": "Norway"},
        {"user_id": "USER_0003", "city": f"Ber{NUL}gen", "country": "Norway"},
    ]), encoding="utf-8")


def test_a_date_with_unstorable_values_publishes_its_valid_rows_and_quarantines_the_rest(
        fresh_db, serving_lake, tmp_path, monkeypatch) -> None:
    incoming = tmp_path / "incoming"
    write_incoming(incoming)
    monkeypatch.setenv("ECOMM_DATA_DIR", str(incoming))
    monkeypatch.delenv("ECOMM_PRODUCTS_URL", raising=False)
    monkeypatch.delenv("ECOMM_USERS_URL", raising=False)
    landing.land_orders(D)
    landing.land_events(D)
    for kind in landing.CATALOGS:
        landing.land_catalog(kind, D)
    for source in staging.SOURCES:
        staging.stage(source, D)
    for table in warehouse.TABLES:
        warehouse.build(table, D)

    publish.publish(D)  # before the fix: invalid byte sequence for encoding "UTF8": 0x00

    with fresh_db.connect() as conn:
        assert conn.execute("select order_id from warehouse.fact_orders order by 1").fetchall() == [
            ("ORD_2",), ("ORD_5",)]
        assert conn.execute("select event_id from warehouse.fact_events order by 1").fetchall() == [("E2",)]
        assert conn.execute(
            "select product_id from warehouse.dim_product where not is_inferred order by 1").fetchall() == [
            ("PROD_0001",)]
        bad = conn.execute(
            "select source_table, row_number, reason_code, record_id, failing_value, message, raw_record"
            " from quarantine.bad_records where load_date = %s order by 1, 2", [D]).fetchall()
    assert [row[:5] for row in bad] == [
        ("stg_events", 1, "invalid_user_id", "E1", "USER_\\u00000001"),
        ("stg_events", 3, "invalid_event_id", "E3\\u0000", "E3\\u0000"),
        ("stg_orders", 1, "invalid_user_id", "ORD_1", "USER\\u00000002"),
        ("stg_orders", 3, "invalid_user_id", "ORD_3", "U" * 200 + "… (3,000 characters)"),
        ("stg_orders", 4, "invalid_status", "ORD_4", "paid\\u0000"),
        ("stg_products", 2, "invalid_text", "PROD_0002", "Sh\\u0000ade"),
        ("stg_users", 2, "invalid_text", "USER_0003", "Ber\\u0000gen"),
    ]
    events_raw = json.loads(bad[0][6])
    assert events_raw["user_id"] == f"USER_{NUL}0001"  # the raw record keeps the value, JSON-escaped
    assert "(longer than 256 characters)" in bad[3][5]
    assert json.loads(bad[3][6])["user_id"] == "U" * 3000, "the raw record keeps the value whole"
