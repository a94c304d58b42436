"""Row factories: tiny raw partitions written with the raw layer's own schema, and readers for results.

`order()`, `event()`, `product()`, `user()` return a valid source record (a dict, as in the incoming
files) with any field overridden; pass `MISSING` to leave a key out. `write_orders()` and friends
write a list of records as the raw partition of a load date, exactly as landing stores them:

- raw/orders: each field as `json_extract_string` gives it (numbers as their JSON text, nested values
  as JSON, null/absent -> NULL), the whole object as `record`, plus lineage columns;
- raw/events: the CSV's columns as text (extra columns kept), plus lineage columns;
- raw/products, raw/users: the object as `record`, `_source_kind` ('file' or 'api'), lineage.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import lake
from tests.support.paths import DUMMYJSON

MISSING = object()
INGESTED_AT = dt.datetime(2025, 12, 16, 3, 0, tzinfo=dt.timezone.utc)
DAY = dt.date(2025, 12, 14)

LINEAGE = [("_source_file", pa.string()), ("_row_number", pa.int64()),
           ("_ingested_at", pa.timestamp("us", tz="UTC"))]
ORDER_FIELDS = ("order_id", "user_id", "product_id", "quantity", "price", "timestamp", "status")
EVENT_FIELDS = ("event_id", "user_id", "product_id", "event_type", "event_ts")


def use_lake(tmp_path: Path, monkeypatch: Any, name: str = "lake") -> Path:
    """Point ECOMM_LAKE_DIR at a fresh folder under tmp_path (config reads it on every call)."""
    root = tmp_path / name
    root.mkdir(exist_ok=True)
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(root))
    return root


def _record(defaults: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **fields}
    return {key: value for key, value in merged.items() if value is not MISSING}


def order(**fields: Any) -> dict[str, Any]:
    """A valid seed-format order record, with fields overridden (MISSING drops a key)."""
    return _record({
        "order_id": "ORD_1", "user_id": "USER_0001", "product_id": "PROD_0001", "quantity": 1,
        "price": 10.0, "timestamp": f"{DAY}T12:00:00", "status": "paid",
    }, fields)


def event(**fields: Any) -> dict[str, Any]:
    """A valid seed-format event (CSV fields as text), with fields overridden (MISSING drops a key)."""
    return _record({
        "event_id": "EVT_1", "user_id": "USER_0001", "product_id": "PROD_0001",
        "event_type": "view_product", "event_ts": f"{DAY}T12:00:00",
    }, fields)


def product(**fields: Any) -> dict[str, Any]:
    """A file-shape product record."""
    return _record({
        "product_id": "PROD_0001", "product_name": "Lamp", "category": "Home", "brand": "BrandA",
        "current_price": 19.99,
    }, fields)


def user(**fields: Any) -> dict[str, Any]:
    """A file-shape user record."""
    return _record({
        "user_id": "USER_0001", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
        "city": "London", "country": "United Kingdom", "signup_date": "2025-01-01",
    }, fields)


def dummyjson(kind: str, count: int) -> list[dict[str, Any]]:
    """The first `count` records of the DummyJSON fixture (API shape: id, title/firstName, nested)."""
    with open(DUMMYJSON / f"{kind}.json", encoding="utf-8") as handle:
        data = json.load(handle)
    records = data if isinstance(data, list) else data[kind]
    return records[:count]


def json_text(value: Any) -> str | None:
    """A field as DuckDB's json_extract_string returns it: strings as is, other values as JSON text."""
    if value is None or value is MISSING:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _write(path: str, columns: dict[str, list[Any]], schema: pa.Schema) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), path)
    return path


def _lineage(count: int, source_file: str) -> dict[str, list[Any]]:
    return {
        "_source_file": [source_file] * count,
        "_row_number": list(range(1, count + 1)),
        "_ingested_at": [INGESTED_AT] * count,
    }


def write_orders(load_date: dt.date, records: list[dict[str, Any] | str], source_file: str = "orders.json") -> str:
    """Write raw/orders for a date; a record given as text is stored verbatim as `record`."""
    objects = [json.loads(r) if isinstance(r, str) else r for r in records]
    texts = [r if isinstance(r, str) else json.dumps(r) for r in records]
    columns: dict[str, list[Any]] = {f: [json_text(o.get(f)) for o in objects] for f in ORDER_FIELDS}
    columns["record"] = texts
    columns.update(_lineage(len(records), source_file))
    schema = pa.schema([(f, pa.string()) for f in ORDER_FIELDS] + [("record", pa.string())] + LINEAGE)
    return _write(lake.partition_file("raw", "orders", load_date), columns, schema)


def write_events(
    load_date: dt.date, records: list[dict[str, Any]], extra_columns: tuple[str, ...] = (),
    source_file: str = "events.csv",
) -> str:
    """Write raw/events for a date: the CSV columns (EVENT_FIELDS + extra_columns) as text."""
    names = list(EVENT_FIELDS) + list(extra_columns)
    columns: dict[str, list[Any]] = {n: [json_text(r.get(n)) for r in records] for n in names}
    columns.update(_lineage(len(records), source_file))
    schema = pa.schema([(n, pa.string()) for n in names] + LINEAGE)
    return _write(lake.partition_file("raw", "events", load_date), columns, schema)


def write_catalog(
    kind: str, snapshot_date: dt.date, records: list[dict[str, Any] | str], source_kind: str = "file",
) -> str:
    """Write raw/products or raw/users for a snapshot date (the partition's load_date)."""
    texts = [r if isinstance(r, str) else json.dumps(r) for r in records]
    source = f"{kind}_{snapshot_date}.json" if source_kind == "file" else f"http://api.test/{kind}"
    columns: dict[str, list[Any]] = {"record": texts, "_source_kind": [source_kind] * len(records)}
    columns.update(_lineage(len(records), source))
    schema = pa.schema([("record", pa.string()), ("_source_kind", pa.string())] + LINEAGE)
    return _write(lake.partition_file("raw", kind, snapshot_date), columns, schema)


def write_products(snapshot_date: dt.date, records: list[dict[str, Any] | str], source_kind: str = "file") -> str:
    """Write raw/products for a snapshot date."""
    return write_catalog("products", snapshot_date, records, source_kind)


def write_users(snapshot_date: dt.date, records: list[dict[str, Any] | str], source_kind: str = "file") -> str:
    """Write raw/users for a snapshot date."""
    return write_catalog("users", snapshot_date, records, source_kind)


def read(layer: str, table: str, load_date: dt.date, order_by: str | tuple[str, ...] = (), **keys: str) -> list[dict]:
    """A partition's rows as dicts, sorted by the given columns (or by every column)."""
    rows = pq.read_table(lake.partition_file(layer, table, load_date, **keys)).to_pylist()
    order = (order_by,) if isinstance(order_by, str) else order_by
    return sorted(rows, key=lambda row: tuple(_sortable(row[c]) for c in (order or row.keys())))


def _sortable(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


def bad_records(source_table: str, load_date: dt.date = DAY) -> list[dict]:
    """The quarantined rows of a staging table and date, by row number."""
    return read("audit", "bad_records", load_date, "row_number", source_table=source_table)


def reconciliation(source_table: str, load_date: dt.date = DAY) -> dict:
    """The reconciliation record of a staging table and date."""
    (record,) = read("audit", "reconciliation", load_date, source_table=source_table)
    return record


def stage_day(
    load_date: dt.date, orders: list | None = None, events: list | None = None,
    products: list | None = None, users: list | None = None,
) -> None:
    """Write the given raw partitions of a date and stage them (orders/events default to none at all)."""
    from pipeline.transform import staging

    for source, records, writer in (("products", products, write_products), ("users", users, write_users),
                                    ("orders", orders, write_orders), ("events", events, write_events)):
        if records is not None:
            writer(load_date, records)
            staging.stage(source, load_date)


def build(table: str, load_date: dt.date) -> int:
    """Build a warehouse table's partition of a date, after the warehouse tables it reads (in TABLES order); its rows."""
    from pipeline.transform import warehouse

    needed, queue = {table}, [table]
    while queue:
        for name in warehouse.inputs(queue.pop()):
            if name in warehouse.TABLES and name not in needed:
                needed.add(name)
                queue.append(name)
    for name in warehouse.TABLES:
        if name in needed and name != table:
            warehouse.build(name, load_date)
    return warehouse.build(table, load_date)


def build_day(load_date: dt.date, tables: tuple[str, ...] | None = None) -> None:
    """Build every warehouse table and mart partition (or the given warehouse tables, in order, each after what it
    reads) for a date."""
    from pipeline.transform import marts, warehouse

    for table in tables or warehouse.TABLES:
        if tables:
            build(table, load_date)
        else:
            warehouse.build(table, load_date)
    if tables is None:  # the marts of the date, from its facts, as the pipeline builds them
        for table in marts.LOAD_DATE_MARTS:
            marts.build(table, load_date)


def current(table: str, order_by: str = "all") -> list[dict]:
    """The rows of a warehouse table's current view (over every partition), sorted."""
    from pipeline.lake import sqlrun
    from pipeline.transform import warehouse

    with sqlrun.connect() as con:
        warehouse.create_current_views(con)
        result = con.execute(f"select * from {sqlrun.quote_ident(table)} order by {order_by}")
        names = [column[0] for column in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]


def money(text: str) -> Decimal:
    """A DECIMAL(18,2) value as the lake returns it."""
    return Decimal(text).quantize(Decimal("0.01"))


@contextlib.contextmanager
def model_settings(**values: Any) -> Iterator[None]:
    """Set [model] options (as luigi.cfg would) inside the block, restoring the file's values after."""
    import luigi

    parser = luigi.configuration.get_config()
    saved = {name: parser.get("model", name, None) for name in values}
    try:
        for name, value in values.items():
            parser.set("model", name, str(value))
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                parser.remove_option("model", name)
            else:
                parser.set("model", name, value)
