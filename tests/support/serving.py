"""What the publish tests share: lake partitions to publish, and what the serving tables hold after.

- `serving_lake` (fixture): an empty lake root set as ECOMM_LAKE_DIR;
- `order()`, `event()` and the lake schemas of the facts and dimensions; `write_rows()` and
  `write_facts()` write them as a date's lake partitions (`write_facts` builds the date's marts too,
  `build_marts()`);
- `dump(conn)`: a checksum of every serving table (volatile columns left out), to compare two states;
- `uncommented(conn)`: serving tables and columns without a comment.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from pipeline import lake


@pytest.fixture
def serving_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty lake root for a publish test, set as ECOMM_LAKE_DIR."""
    root = tmp_path / "serving-lake"
    root.mkdir()
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(root))
    return root


ORDER_SCHEMA = pa.schema([
    ("order_id", pa.string()), ("user_id", pa.string()), ("product_id", pa.string()), ("date_id", pa.int32()),
    ("order_ts", pa.timestamp("us")), ("quantity", pa.int32()), ("unit_price", pa.decimal128(18, 2)),
    ("revenue", pa.decimal128(18, 2)), ("status", pa.string()), ("net_revenue", pa.decimal128(18, 2)),
    ("is_known_product", pa.bool_()), ("load_date", pa.date32()),
])
EVENT_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("user_id", pa.string()), ("product_id", pa.string()), ("event_type", pa.string()),
    ("event_ts", pa.timestamp("us")), ("date_id", pa.int32()), ("is_known_product", pa.bool_()),
    ("load_date", pa.date32()),
])
USER_SCHEMA = pa.schema([
    ("user_id", pa.string()), ("first_seen_date", pa.date32()), ("first_order_date", pa.date32()),
    ("last_seen_date", pa.date32()), ("city", pa.string()), ("country", pa.string()), ("load_date", pa.date32()),
])
PRODUCT_SCHEMA = pa.schema([
    ("product_key", pa.string()), ("product_id", pa.string()), ("product_name", pa.string()),
    ("category", pa.string()), ("brand", pa.string()), ("current_price", pa.decimal128(18, 2)),
    ("effective_from", pa.date32()), ("is_inferred", pa.bool_()), ("load_date", pa.date32()),
])


def order(order_id: str, day: dt.date, **overrides: Any) -> dict[str, Any]:
    """One fact_orders lake row (a paid order of 2 x 10.00 placed at noon on `day`)."""
    from decimal import Decimal

    row = {"order_id": order_id, "user_id": "USER_0001", "product_id": "PROD_0001",
           "date_id": int(day.strftime("%Y%m%d")), "order_ts": dt.datetime.combine(day, dt.time(12)),
           "quantity": 2, "unit_price": Decimal("10.00"), "revenue": Decimal("20.00"), "status": "paid",
           "net_revenue": Decimal("20.00"), "is_known_product": True, "load_date": day}
    row.update(overrides)
    return row


def event(event_id: str, day: dt.date, **overrides: Any) -> dict[str, Any]:
    """One fact_events lake row (a product view at noon on `day`)."""
    row = {"event_id": event_id, "user_id": "USER_0001", "product_id": "PROD_0001", "event_type": "view_product",
           "event_ts": dt.datetime.combine(day, dt.time(12)), "date_id": int(day.strftime("%Y%m%d")),
           "is_known_product": True, "load_date": day}
    row.update(overrides)
    return row


def write_rows(layer: str, table: str, day: dt.date, rows: Sequence[dict[str, Any]],
               schema: pa.Schema | None = None, **keys: str) -> str:
    """Write rows as the (layer, table, day[, keys]) lake partition; return its path."""
    path = lake.partition_file(layer, table, day, **keys)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = pa.Table.from_pylist(list(rows), schema=schema) if schema is not None else pa.Table.from_pylist(list(rows))
    pq.write_table(data, path)
    return path


def write_facts(day: dt.date, orders: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> None:
    """Write a date's fact partitions and build its marts from them (the other feeds are optional)."""
    write_rows("warehouse", "fact_orders", day, orders, ORDER_SCHEMA)
    write_rows("warehouse", "fact_events", day, events, EVENT_SCHEMA)
    build_marts(day)


def build_marts(day: dt.date) -> None:
    """Build the date's mart partitions (lake/marts) from its fact partitions, as the pipeline does."""
    from pipeline.transform import marts

    for table in marts.LOAD_DATE_MARTS:
        marts.build(table, day)


# ------------------------------------------------------------------------------ what Postgres serves
# columns that record when something happened, and surrogate ids: they differ run to run by design
VOLATILE = {"published_at", "updated_at", "recorded_at", "applied_at", "reconciled_at", "checked_at", "id", "run_id"}


def dump(conn: psycopg.Connection) -> dict[str, str]:
    """md5 of every serving table's rows (volatile columns left out), in a fixed order."""
    out = {}
    tables = conn.execute(
        "select n.nspname, c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname in ('warehouse', 'marts', 'audit') and c.relkind in ('r', 'p', 'v') order by 1, 2").fetchall()
    for schema, table in tables:
        cols = [c for (c,) in conn.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped"
            " order by attnum", [f"{schema}.{table}"]).fetchall() if c not in VOLATILE]
        rowexpr = "row(" + ", ".join(f'"{c}"' for c in cols) + ")::text"
        out[f"{schema}.{table}"] = conn.execute(
            f'select md5(coalesce(string_agg({rowexpr}, E\'\\n\' order by {rowexpr}), \'\')) from "{schema}"."{table}"'
        ).fetchone()[0]
    return out


def checksums(conn: psycopg.Connection, *, include: Sequence[str] | None = None, exclude: Sequence[str] = (),
              volatile: set[str] = VOLATILE) -> dict[str, tuple[int, str]]:
    """(rows, md5 of the ordered rows) of every table, view and materialized view but the partitions,
    volatile columns left out: in the schemas `include` (default: all but Postgres' own) less `exclude`."""
    out = {}
    tables = conn.execute(
        "select n.nspname, c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " where c.relkind in ('r', 'p', 'v', 'm') and not c.relispartition"
        " and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') and n.nspname <> all(%s)"
        " and (%s::text[] is null or n.nspname = any(%s)) order by 1, 2",
        [list(exclude), include and list(include), include and list(include)]).fetchall()
    for schema, table in tables:
        cols = [c for (c,) in conn.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped"
            " order by attnum", [f'"{schema}"."{table}"']).fetchall() if c not in volatile]
        row = sql.SQL("row({})::text").format(sql.SQL(", ").join(sql.Identifier("t", c) for c in cols))
        out[f"{schema}.{table}"] = conn.execute(sql.SQL(
            "select count(*), md5(coalesce(string_agg(r, E'\\n' order by r), '')) from (select {} as r from {} as t) s"
        ).format(row, sql.Identifier(schema, table))).fetchone()
    return out


UNCOMMENTED = """
select c.relkind, n.nspname || '.' || c.relname as relation, a.attname
from pg_class as c
join pg_namespace as n on n.oid = c.relnamespace
left join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    and col_description(c.oid, a.attnum) is null
where n.nspname in ('warehouse', 'marts', 'audit', 'quarantine') and c.relkind in ('r', 'p', 'v')
    and (obj_description(c.oid, 'pg_class') is null or a.attname is not null)
order by 2, 3
"""


def uncommented(conn: psycopg.Connection) -> list[tuple]:
    """Tables/views without a comment, or columns without one (attname set), in warehouse, audit and quarantine."""
    return conn.execute(UNCOMMENTED).fetchall()
