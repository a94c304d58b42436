"""Days for the quality-gate tests (pipeline.quality.gate), and readers of the gate's results.

- `write_day(orders, events)` writes a small, consistent day D straight into the lake (staging,
  warehouse and audit partitions with the lake contract's schemas, `SCHEMAS`), from row builders
  (`order(i)`, `event(i)`, `clean_orders()`, `clean_events()`); `write()` writes one partition,
  `reject()` a day's rejected lines, `quarantine()` a source's quarantined rows;
- `run_day(incoming, day, ...)` writes a day's incoming files instead and lands, stages, models and
  gates it with the pipeline's own code (`an_order()`, `event_line()` build its records);
  `run_generated_day(incoming, day)` the same for the sample generator's day, catalogs included;
- `by_name(result)` and `outcomes(result, outcome)` read a gate result.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import lake
from pipeline.ingest import landing
from pipeline.quality import gate
from pipeline.transform import staging, warehouse

D = dt.date(2025, 12, 14)
DAY = dt.datetime(2025, 12, 14)
MONEY = pa.decimal128(18, 2)
TS = pa.timestamp("us")

SCHEMAS = {
    ("staging", "stg_orders"): pa.schema([
        ("order_id", pa.string()), ("user_id", pa.string()), ("product_id", pa.string()),
        ("quantity", pa.int32()), ("unit_price", MONEY), ("order_ts", TS), ("status", pa.string()),
        ("load_date", pa.date32()), ("_source_file", pa.string()), ("_row_number", pa.int64()),
    ]),
    ("staging", "stg_events"): pa.schema([
        ("event_id", pa.string()), ("user_id", pa.string()), ("product_id", pa.string()),
        ("event_type", pa.string()), ("event_ts", TS), ("load_date", pa.date32()),
        ("_source_file", pa.string()), ("_row_number", pa.int64()),
    ]),
    ("warehouse", "fact_orders"): pa.schema([
        ("order_id", pa.string()), ("user_id", pa.string()), ("product_id", pa.string()),
        ("date_id", pa.int32()), ("order_ts", TS), ("quantity", pa.int32()), ("unit_price", MONEY),
        ("revenue", MONEY), ("status", pa.string()), ("net_revenue", MONEY),
        ("is_known_product", pa.bool_()), ("load_date", pa.date32()),
    ]),
    ("warehouse", "fact_events"): pa.schema([
        ("event_id", pa.string()), ("user_id", pa.string()), ("product_id", pa.string()),
        ("event_type", pa.string()), ("event_ts", TS), ("date_id", pa.int32()),
        ("is_known_product", pa.bool_()), ("load_date", pa.date32()),
    ]),
    ("warehouse", "dim_user"): pa.schema([
        ("user_id", pa.string()), ("first_seen_date", pa.date32()), ("first_order_date", pa.date32()),
        ("last_seen_date", pa.date32()), ("city", pa.string()), ("country", pa.string()),
        ("load_date", pa.date32()),
    ]),
    ("warehouse", "dim_product"): pa.schema([
        ("product_key", pa.string()), ("product_id", pa.string()), ("product_name", pa.string()),
        ("category", pa.string()), ("brand", pa.string()), ("current_price", MONEY),
        ("effective_from", pa.date32()), ("is_inferred", pa.bool_()), ("load_date", pa.date32()),
    ]),
    ("audit", "reconciliation"): pa.schema([
        ("source_table", pa.string()), ("load_date", pa.date32()), ("raw_count", pa.int64()),
        ("staged_count", pa.int64()), ("quarantined_count", pa.int64()), ("duplicate_count", pa.int64()),
        ("is_balanced", pa.bool_()), ("source_records", pa.int64()), ("rejected_count", pa.int64()),
    ]),
}


# ------------------------------------------------------------------------------------ row builders
def order(i: int, **overrides) -> dict:
    row = {
        "order_id": f"ORD_{i:05d}", "user_id": f"USER_{i % 7:04d}", "product_id": f"PROD_{i % 5:04d}",
        "quantity": 1 + i % 3, "unit_price": Decimal("9.99") + i, "order_ts": DAY + dt.timedelta(minutes=17 * i),
        "status": "paid" if i % 4 else "cancelled",
    }
    return {**row, **overrides}


def event(i: int, **overrides) -> dict:
    kind = ("page_view", "add_to_cart", "purchase")[i % 3]
    row = {
        "event_id": f"EVT_{i:06d}", "user_id": f"USER_{i % 9:04d}",
        "product_id": None if kind == "page_view" else f"PROD_{i % 5:04d}", "event_type": kind,
        "event_ts": DAY + dt.timedelta(minutes=11 * i),
    }
    return {**row, **overrides}


def date_id(ts: dt.datetime) -> int:
    return ts.year * 10000 + ts.month * 100 + ts.day


def write(layer: str, table: str, rows: list[dict], schema: pa.Schema | None = None, **keys: str) -> None:
    schema = schema or SCHEMAS[(layer, table)]
    path = lake.partition_file(layer, table, D, **keys)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def write_day(orders: list[dict], events: list[dict], *, unknown: set[str] = frozenset(),
              recon: dict | None = None, stg_orders_schema: pa.Schema | None = None,
              unlisted_users: set[str] | None = frozenset()) -> None:
    """A consistent day (staging, warehouse, audit) derived from its orders and events.

    Its users catalog is a users snapshot of D listing every user of the day but `unlisted_users`
    (None: no users snapshot at all, the days before the first one).
    """
    lineage = {"load_date": D, "_source_file": "x", "_row_number": 1}
    stg_orders = [{**o, **lineage} for o in orders]
    if stg_orders_schema is not None:
        stg_orders = [{k: v for k, v in o.items() if k in stg_orders_schema.names} for o in stg_orders]
    write("staging", "stg_orders", stg_orders, stg_orders_schema)
    write("staging", "stg_events", [{**e, **lineage} for e in events])
    facts = []
    for o in orders:
        revenue = Decimal(o["quantity"]) * o["unit_price"]
        facts.append({**o, "date_id": date_id(o["order_ts"]), "revenue": revenue, "load_date": D,
                      "net_revenue": revenue if o["status"] == "paid" else Decimal("0"),
                      "is_known_product": o["product_id"] not in unknown})
    write("warehouse", "fact_orders", facts)
    write("warehouse", "fact_events", [
        {**e, "date_id": date_id(e["event_ts"]), "load_date": D,
         "is_known_product": e["product_id"] is None or e["product_id"] not in unknown}
        for e in events
    ])
    seen: dict[str, list[dt.datetime]] = {}
    for row in orders + events:
        seen.setdefault(row["user_id"], []).append(row.get("order_ts") or row.get("event_ts"))
    ordered = {o["user_id"]: min(x["order_ts"] for x in orders if x["user_id"] == o["user_id"]) for o in orders}
    write("warehouse", "dim_user", [
        {"user_id": u, "first_seen_date": min(ts).date(), "last_seen_date": max(ts).date(),
         "first_order_date": ordered[u].date() if u in ordered else None, "city": "Paris", "country": "FR",
         "load_date": D}
        for u, ts in sorted(seen.items())
    ])
    if unlisted_users is not None:
        write("staging", "stg_users", [
            {"user_id": u, "first_name": "A", "last_name": "B", "email": f"{u}@example.com", "city": "Paris",
             "country": "FR", "snapshot_date": D, **lineage}
            for u in sorted(seen) if u not in unlisted_users
        ], staging.STAGING_SCHEMAS["stg_users"])
    products = sorted({r["product_id"] for r in orders + events if r["product_id"]})
    write("warehouse", "dim_product", [
        {"product_key": p, "product_id": p, "product_name": p.lower(), "category": "c", "brand": "b",
         "current_price": None if p in unknown else Decimal("9.99"), "effective_from": None if p in unknown else D,
         "is_inferred": p in unknown, "load_date": D}
        for p in products
    ])
    counts = {"stg_orders": len(orders), "stg_events": len(events)}
    for source, staged in counts.items():
        # a quarantined row and a rejected line; no duplicate: one of a day this small is above the duplicate
        # share's warn threshold (1 %)
        row = {"source_table": source, "load_date": D, "raw_count": staged + 1, "staged_count": staged,
               "quarantined_count": 1, "duplicate_count": 0, "is_balanced": True,
               "source_records": staged + 2, "rejected_count": 1}
        override = (recon or {}).get(source, {})
        row.update(override)
        if override and "source_records" not in override:  # keep the file's records = raw + rejected
            row["rejected_count"] = override.get("rejected_count", 0)
            row["source_records"] = row["raw_count"] + row["rejected_count"]
        write("audit", "reconciliation", [row], source_table=source)
        quarantine(source, row["quarantined_count"])
    from pipeline.transform import marts  # the marts of the day, from its facts, as the pipeline builds them

    for table in marts.LOAD_DATE_MARTS:
        marts.build(table, D)


def clean_orders(n: int = 20) -> list[dict]:
    return [order(i) for i in range(n)]


def clean_events(n: int = 60) -> list[dict]:
    return [event(i) for i in range(n)]


def reject(source: str, count: int) -> None:
    """D's audit/rejected_lines partition of `count` lines for a raw source, as landing writes it."""
    schema = pa.schema([("source_file", pa.string()), ("line_number", pa.int64()), ("raw_text", pa.string()),
                        ("error", pa.string())])
    write("audit", "rejected_lines", [
        {"source_file": f"{source}.csv", "line_number": n + 2, "raw_text": "E9,USER", "error": "MISSING COLUMNS"}
        for n in range(count)
    ], schema, source_table=source)


# the reason a day's quarantined rows get when a test does not say (the lost share names it when it warns or fails)
REASON = {"stg_orders": "invalid_status", "stg_events": "unknown_event_type", "stg_products": "invalid_price",
          "stg_users": "invalid_user_id"}


def quarantine(table: str, count: int, reason: str | None = None, day: dt.date = D) -> None:
    """The audit/bad_records partition of a staging table's `count` quarantined rows, as staging writes it with its
    reconciliation (even empty); the columns the gate reads."""
    schema = pa.schema([("source_table", pa.string()), ("reason_code", pa.string()), ("record_id", pa.string())])
    path = lake.partition_file("audit", "bad_records", day, source_table=table)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{"source_table": table, "reason_code": reason or REASON[table],
                                          "record_id": f"BAD_{n:05d}"} for n in range(count)], schema=schema), path)


# ---------------------------------------------------------------------------------- gate results
def by_name(result: gate.GateResult) -> dict[tuple[str, str], gate.CheckResult]:
    return {(r.table_name, r.check_name): r for r in result.results}


def outcomes(result: gate.GateResult, outcome: str) -> set[tuple[str, str]]:
    return {(r.table_name, r.check_name) for r in result.results if r.outcome == outcome}


# ------------------------------------------------------------------- a day from real incoming files
def run_day(incoming: Path, day: dt.date, *, orders: list[dict] | None = None, events: list[str] | None = None,
            model_and_gate: bool = True) -> gate.GateResult | None:
    """Write the day's incoming files, then land and stage it (and model and gate it, by default) with
    the pipeline's code."""
    header = "event_id,user_id,product_id,event_type,event_ts"
    if orders is not None:
        (incoming / "orders" / day.isoformat()).mkdir(parents=True, exist_ok=True)
        (incoming / "orders" / day.isoformat() / "orders.json").write_text(json.dumps(orders, indent=2))
    if events is not None:
        (incoming / "events" / day.isoformat()).mkdir(parents=True, exist_ok=True)
        (incoming / "events" / day.isoformat() / "events.csv").write_text("\n".join([header, *events]) + "\n")
    landing.land_orders(day)
    landing.land_events(day)
    for source in staging.SOURCES:
        staging.stage(source, day)
    if not model_and_gate:
        return None
    for table in warehouse.TABLES:
        warehouse.build(table, day)
    from pipeline.transform import marts

    for table in marts.LOAD_DATE_MARTS:
        marts.build(table, day)
    return gate.run_gate(day)


def run_generated_day(incoming: Path, day: dt.date) -> gate.GateResult:
    """The sample generator's day (400 orders, 2,000 events, 5 % dirty rows, late records among them, and its
    catalog snapshots) landed, staged, modelled and gated by the pipeline's code."""
    from devtools.generate import generate

    generate(day, 1, out=incoming, orders_per_day=400, events_per_day=2000, users=200, dirty_rate=0.05)
    for kind in ("products", "users"):
        landing.land_catalog(kind, day)
    return run_day(incoming, day)


def an_order(i: int, day: dt.date = D, **fields) -> dict:
    return {"order_id": f"ORD_{i:05d}", "user_id": f"USER_{i % 7:04d}", "product_id": f"PROD_{i % 5:04d}",
            "quantity": 1 + i % 3, "price": 10.0 + i % 7, "timestamp": f"{day}T{i % 24:02d}:{i % 60:02d}:00",
            "status": "paid", **fields}


def event_line(i: int, day: dt.date = D) -> str:
    return f"EVT_{i:06d},USER_{i % 9:04d},PROD_{i % 5:04d},view_product,{day}T{i % 24:02d}:{i % 60:02d}:00"
