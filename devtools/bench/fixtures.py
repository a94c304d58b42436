"""Benchmark: publishing a max-volume day vs. a bare COPY of the same rows, in the same run.

    python -m devtools.bench.fixtures [--orders 500000] [--events 2000000] [--repeat 3]

Generates synthetic lake partitions for one day with DuckDB `range()` (500K orders + 2M events by
default, the seed's maximum daily volume) in a temporary lake, then, on a scratch database of the
configured server (the embedded one unless ECOMM_PG_DSN / PG* say otherwise), times for each repeat:

- bare COPY (CSV): the same rows, DuckDB -> Arrow -> CSV text (pyarrow) -> one `COPY ... FROM STDIN
  (FORMAT csv)` per table into empty, unindexed tables of the same columns, created in the same
  transaction (psycopg's queued writer, so formatting overlaps sending): the plainest single-stream
  load;
- bare COPY (binary): the same, through the binary encoder publish uses (pipeline.serving.binary_copy);
- bare COPY (CSV, indexed): into empty tables with the serving tables' primary keys and indexes;
- publish: `pipeline.serving.publish.publish(day)`, a first publish, and a republish of the same day.

It prints each median and the ratios publish / bare. `write_day` is also used by the tests.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.serving import binary_copy, migrations, pg

logger = logging.getLogger(__name__)

_FACTS_SQL = {
    "fact_orders": """
        select 'ORD_' || strftime($day, '%Y%m%d') || '_' || lpad(i::varchar, 7, '0') as order_id,
            'USER_' || lpad((hash(i) % $users)::varchar, 5, '0') as user_id,
            'PROD_' || lpad((hash(i * 7) % $products)::varchar, 4, '0') as product_id,
            cast(strftime($day, '%Y%m%d') as integer) as date_id,
            $day::timestamp + to_seconds((i * 86400 // greatest($n, 1))::bigint) as order_ts,
            (1 + i % 5)::integer as quantity,
            (1 + hash(i) % 20000)::decimal(18, 2) / 100 as unit_price,
            ((1 + i % 5) * ((1 + hash(i) % 20000)::decimal(18, 2) / 100))::decimal(18, 2) as revenue,
            ['paid', 'pending', 'cancelled', 'refunded'][1 + (i % 4)::integer] as status,
            case when i % 4 = 0 then ((1 + i % 5) * ((1 + hash(i) % 20000)::decimal(18, 2) / 100))
                else 0 end::decimal(18, 2) as net_revenue,
            (hash(i * 7) % $products) < $known as is_known_product,
            $day::date as load_date
        from range($n) as t(i)""",
    "fact_events": """
        select 'EVT_' || strftime($day, '%Y%m%d') || '_' || lpad(i::varchar, 8, '0') as event_id,
            'USER_' || lpad((hash(i) % $users)::varchar, 5, '0') as user_id,
            case when i % 5 = 0 then null else 'PROD_' || lpad((hash(i * 7) % $products)::varchar, 4, '0') end
                as product_id,
            ['page_view', 'view_product', 'add_to_cart', 'checkout', 'purchase'][1 + (i % 5)::integer] as event_type,
            $day::timestamp + to_seconds((i * 86400 // greatest($n, 1))::bigint) as event_ts,
            cast(strftime($day, '%Y%m%d') as integer) as date_id,
            i % 5 = 0 or (hash(i * 7) % $products) < $known as is_known_product,
            $day::date as load_date
        from range($n) as t(i)""",
}

_SMALL_SQL = {
    ("warehouse", "dim_user"): """
        select user_id, min(load_date) as first_seen_date, min(load_date) as first_order_date,
            max(load_date) as last_seen_date, 'City ' || (hash(user_id) % 50) as city, 'Country' as country,
            max(load_date) as load_date
        from read_parquet($orders) group by user_id""",
    ("warehouse", "dim_product"): """
        select 'PROD_' || lpad(i::varchar, 4, '0') as product_id,
            case when i < $known then 'Product ' || i else 'Unknown product' end as product_name,
            case when i < $known then 'Category ' || (i % 12) else 'Unknown' end as category,
            case when i < $known then 'Brand ' || (i % 40) else 'Unknown brand' end as brand,
            case when i < $known then (1 + i)::decimal(18, 2) end as current_price,
            case when i < $known then date '2025-01-01' end as effective_from,
            i >= $known as is_inferred, $day::date as load_date
        from range($products) as t(i)""",
    ("warehouse", "dim_product_history"): """
        select 'PROD_' || lpad(i::varchar, 4, '0') as product_id, 1 as version, 'Product ' || i as product_name,
            'Category ' || (i % 12) as category, 'Brand ' || (i % 40) as brand, (1 + i)::decimal(18, 2) as current_price,
            date '2025-01-01' as effective_from, date '9999-12-31' as effective_to, true as is_current,
            $day::date as load_date
        from range($known) as t(i)""",
    ("warehouse", "dim_date"): """
        select cast(strftime($day, '%Y%m%d') as integer) as date_id, $day::date as full_date,
            year($day::date)::integer as year, quarter($day::date)::integer as quarter,
            month($day::date)::integer as month, monthname($day::date) as month_name,
            day($day::date)::integer as day_of_month, isodow($day::date)::integer as day_of_week,
            dayname($day::date) as day_name, weekofyear($day::date)::integer as week_of_year,
            isoyear($day::date)::integer as iso_year, isodow($day::date) >= 6 as is_weekend,
            $day::date as load_date""",
    ("warehouse", "daily_metrics"): """
        select $day::date as run_date, $norders::bigint as raw_orders_count, $norders::bigint as staging_orders_count,
            $norders::bigint as fact_orders_count, $nevents::bigint as raw_events_count,
            $nevents::bigint as staging_events_count, $nevents::bigint as fact_events_count,
            0::bigint as quarantined_orders_count, 0::bigint as quarantined_events_count,
            0::bigint as duplicate_orders_count, 0::bigint as duplicate_events_count,
            1234.50::decimal(18, 2) as gross_revenue, 1000.25::decimal(18, 2) as net_revenue,
            $norders::bigint as orders_count, $nevents::bigint as events_count, 0.02::double as unknown_product_share,
            0::integer as dq_failed_count, null::double as runtime_seconds, null::date as products_snapshot_date,
            null::date as users_snapshot_date, null::date[] as products_snapshot_dates, $day::date as load_date""",
}


def write_day(day: dt.date, orders: int, events: int, *, users: int = 20_000, products: int = 500,
              known_products: int = 490) -> dict[str, int]:
    """Write one day of synthetic warehouse, mart and audit partitions into the lake; return fact row counts."""
    params = {"day": day, "users": users, "products": products, "known": known_products,
              "norders": orders, "nevents": events}
    with sqlrun.connect() as con:
        for table, n in (("fact_orders", orders), ("fact_events", events)):
            sqlrun.copy_to_partition(con, _FACTS_SQL[table], {**params, "n": n},
                                     lake.partition_file("warehouse", table, day))
        params["orders"] = lake.partition_file("warehouse", "fact_orders", day)
        for (layer, table), select in _SMALL_SQL.items():
            sqlrun.copy_to_partition(con, select, params, lake.partition_file(layer, table, day))
        for source, n in (("stg_orders", orders), ("stg_events", events)):
            sqlrun.copy_to_partition(
                con, "select $s as source_table, $day::date as load_date, $n::bigint + 2 as raw_count,"
                " $n::bigint as staged_count, 1::bigint as quarantined_count, 1::bigint as duplicate_count,"
                " true as is_balanced, $n::bigint + 2 as source_records, 0::bigint as rejected_count",
                {"s": source, "day": day, "n": n},
                lake.partition_file("audit", "reconciliation", day, source_table=source))
            sqlrun.copy_to_partition(
                con, "select $s as source_table, 'BAD_1' as record_id, 'invalid_price' as reason_code,"
                " 'Price is not a number: ''abc''' as message, 'abc' as failing_value, '{\"price\": \"abc\"}' as raw_record,"
                " 'incoming/x.json' as source_file, 7::bigint as row_number, $day::date as load_date",
                {"s": source, "day": day}, lake.partition_file("audit", "bad_records", day, source_table=source))
    from pipeline.transform import marts

    for table in marts.LOAD_DATE_MARTS:  # what the pipeline builds from the facts beside the gate
        marts.build(table, day)
    return {"fact_orders": orders, "fact_events": events}


# ---------------------------------------------------------------------------------- the benchmark
FACT_TABLES = ("fact_orders", "fact_events")
DIMENSION_TABLES = ("dim_date", "dim_user", "dim_product", "dim_product_history")
FLOOR_SCHEMA = "bench_floor"


def _floor_sources(conn: psycopg.Connection, tables: tuple[str, ...]) -> list[tuple[str, list, dict[str, str]]]:
    """(lake table, target columns in COPY order, derived expressions) per table, shaped as in Postgres."""
    from pipeline.serving import feeds as serving_feeds

    feeds = {feed.lake_table: feed for feed in serving_feeds.FEEDS}
    out = []
    for table in tables:
        feed = feeds.get(table)
        columns = (serving_feeds.feed_columns(conn, feed) if feed
                   else binary_copy.table_columns(conn, f"warehouse.{table}_all"))
        out.append((table, binary_copy.copy_order(columns), dict(feed.derived) if feed else {}))
    return out


def read_floor(incoming: str | os.PathLike[str], day: dt.date, scratch: str | os.PathLike[str]) -> float:
    """Seconds DuckDB takes to read the day's incoming files into Parquet, and nothing else.

    The part of the work no pipeline can skip: parse every daily file (orders JSON, events CSV) once
    and write it as Parquet, with DuckDB's own readers (types detected, no validation, no lineage), on
    one connection with the [duckdb] settings, one file after the other. With the binary COPY floor
    it makes the floor a whole day is measured against (`python -m devtools.bench day`).
    """
    sources = {"orders": ("read_json", "orders.json"), "events": ("read_csv", "events.csv")}
    os.makedirs(scratch, exist_ok=True)
    started = time.monotonic()
    with sqlrun.connect() as duck:
        for source, (reader, name) in sources.items():
            path = os.path.join(incoming, source, day.isoformat(), name)
            out = os.path.join(scratch, f"read-floor-{source}.parquet")
            # the reader is one of the two names above; the paths are bound values. Written as the
            # pipeline writes its partitions (sqlrun.copy_to_partition): zstd, the same row groups.
            duck.execute(f"copy (select * from {reader}($path)) to $out"
                         " (format parquet, compression zstd, row_group_size 122880)", {"path": path, "out": out})
            os.unlink(out)
    return time.monotonic() - started


def bare_copy(conn: psycopg.Connection, day: dt.date, fmt: str = "binary", *, indexed: bool = False,
              tables: tuple[str, ...] = FACT_TABLES, dsn: str | None = None) -> float:
    """Seconds to create empty tables and COPY the day's final lake rows into them, single stream.

    One connection, one transaction (commit included), tables one after the other, no indexes
    unless `indexed` (then the facts get the serving tables' primary key and indexes): the floor
    that publishing the same rows is measured against. `fmt` is "binary" (pipeline.serving.binary_copy, the
    encoder publish uses) or "csv" (pyarrow's CSV writer). The tables are dropped afterwards.
    """
    from pipeline.serving import lake_rows

    keys = {"fact_orders": "order_id", "fact_events": "event_id"}
    sources = _floor_sources(conn, tables)
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(FLOOR_SCHEMA)))
    conn.commit()
    _checkpoint(dsn if dsn is not None else pg.dsn())
    started = time.monotonic()
    with sqlrun.connect() as duck, conn.transaction():
        for table, columns, derived in sources:
            target = sql.Identifier(FLOOR_SCHEMA, table)
            conn.execute(sql.SQL("create table {} ({})").format(target, sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type)) for c in columns)))
            if indexed and table in keys:
                conn.execute(sql.SQL("alter table {} add primary key ({}, load_date)").format(
                    target, sql.Identifier(keys[table])))
                for col in ("date_id", "product_id", "user_id") if table == "fact_orders" else ("date_id",):
                    conn.execute(sql.SQL("create index on {} ({})").format(target, sql.Identifier(col)))
            path = lake.partition_file("warehouse", table, day)
            select = lake_rows.lake_select(duck, path, columns, derived, True, f"lake warehouse/{table}")
            params = sqlrun.bind(select, {"path": path, "load_date": day})
            reader = duck.sql(select, params=params).to_arrow_reader(262_144)
            if fmt == "binary":
                binary_copy.copy_batches(conn, target, columns, reader)
                continue
            options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
            names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
            statement = sql.SQL("copy {} ({}) from stdin (format csv)").format(target, names)
            with conn.cursor() as cur, cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
                for batch in reader:
                    sink = pa.BufferOutputStream()
                    pacsv.write_csv(batch, sink, options)
                    copy.write(sink.getvalue())
    elapsed = time.monotonic() - started
    with conn.transaction():
        conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(FLOOR_SCHEMA)))
    return elapsed


def _bare_copy(conn: psycopg.Connection, fmt: str, indexed: bool, day: dt.date, dsn: str) -> float:
    """The facts-only floor of this module's own benchmark."""
    return bare_copy(conn, day, fmt, indexed=indexed, tables=FACT_TABLES, dsn=dsn)


def _checkpoint(dsn: str) -> None:
    """Start each measurement from a clean slate (needs superuser or pg_checkpoint; skipped otherwise)."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("checkpoint")
    except psycopg.Error:
        pass


def _time(fn: Callable[[], object], dsn: str) -> float:
    _checkpoint(dsn)
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--day", default="2031-01-15")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pipeline.serving import publish

    day = lake.parse_date(args.day)
    base = pg.dsn()
    scratch = f"ecomm_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(scratch)))
    bench_dsn = psycopg.conninfo.make_conninfo(base, dbname=scratch)
    old_env = {k: os.environ.get(k) for k in ("ECOMM_PG_DSN", "ECOMM_LAKE_DIR")}
    try:
        with tempfile.TemporaryDirectory(prefix="ecomm-bench-lake-") as lake_root:
            os.environ["ECOMM_LAKE_DIR"], os.environ["ECOMM_PG_DSN"] = lake_root, bench_dsn
            print(f"generating {args.orders:,} orders + {args.events:,} events for {day} ...", flush=True)
            gen = _time(lambda: write_day(day, args.orders, args.events), bench_dsn)
            print(f"  generated in {gen:.1f}s; server: {pg.redact(bench_dsn)}")
            results: dict[str, list[float]] = {k: [] for k in
                                               ("bare_csv", "bare_binary", "bare_csv_indexed", "publish", "republish")}
            with pg.connect(bench_dsn) as conn:
                migrations.ensure_schema(conn)
                for i in range(args.repeat):
                    results["bare_csv"].append(_bare_copy(conn, "csv", False, day, bench_dsn))
                    results["bare_binary"].append(_bare_copy(conn, "binary", False, day, bench_dsn))
                    results["bare_csv_indexed"].append(_bare_copy(conn, "csv", True, day, bench_dsn))
                    with conn.transaction():
                        conn.execute("drop table if exists warehouse.fact_orders_all_{0:%Y%m%d}, "
                                     "warehouse.fact_events_all_{0:%Y%m%d}".format(day))
                        conn.execute("delete from warehouse.fact_partitions where load_date = %s", [day])
                        conn.execute("delete from audit.publish_log where load_date = %s", [day])
                    results["publish"].append(_time(lambda: publish.publish(day), bench_dsn))
                    results["republish"].append(_time(lambda: publish.publish(day), bench_dsn))
                    print(f"  repeat {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items()), flush=True)
    finally:
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(scratch)))
    median = {k: statistics.median(v) for k, v in results.items()}
    rows = args.orders + args.events
    print(f"\nmedian of {args.repeat} ({rows:,} fact rows):")
    for key, value in median.items():
        print(f"  {key:<18} {value:6.2f}s  {rows / value / 1e3:8.0f}K rows/s")
    for base_key in ("bare_csv", "bare_binary", "bare_csv_indexed"):
        print(f"  publish / {base_key:<17} {median['publish'] / median[base_key]:.2f}x"
              f"   republish / {base_key}: {median['republish'] / median[base_key]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
