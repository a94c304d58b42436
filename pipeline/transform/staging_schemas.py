"""The Arrow schema of each staging table's Parquet partitions (`lake/staging/stg_<source>/`)."""
from __future__ import annotations

import pyarrow as pa

STAGING_SCHEMAS: dict[str, pa.Schema] = {
    "stg_orders": pa.schema([
        ("order_id", pa.string()), ("user_id", pa.string()), ("product_id", pa.string()),
        ("quantity", pa.int32()), ("unit_price", pa.decimal128(18, 2)), ("order_ts", pa.timestamp("us")),
        ("status", pa.string()), ("load_date", pa.date32()), ("_source_file", pa.string()),
        ("_row_number", pa.int64()),
    ]),
    "stg_events": pa.schema([
        ("event_id", pa.string()), ("user_id", pa.string()), ("product_id", pa.string()),
        ("event_type", pa.string()), ("event_ts", pa.timestamp("us")), ("load_date", pa.date32()),
        ("_source_file", pa.string()), ("_row_number", pa.int64()),
    ]),
    "stg_products": pa.schema([
        ("product_id", pa.string()), ("product_name", pa.string()), ("category", pa.string()),
        ("brand", pa.string()), ("current_price", pa.decimal128(18, 2)), ("snapshot_date", pa.date32()),
        ("load_date", pa.date32()), ("_source_file", pa.string()), ("_row_number", pa.int64()),
    ]),
    "stg_users": pa.schema([
        ("user_id", pa.string()), ("first_name", pa.string()), ("last_name", pa.string()),
        ("email", pa.string()), ("city", pa.string()), ("country", pa.string()),
        ("snapshot_date", pa.date32()), ("load_date", pa.date32()), ("_source_file", pa.string()),
        ("_row_number", pa.int64()),
    ]),
}
