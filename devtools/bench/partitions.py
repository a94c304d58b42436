"""`python -m devtools.bench partitions`: does a query, a publish and the current-version views stay flat at 1,000 daily partitions?

Daily partitions add 365 tables a year per fact. Built cheaply in a throwaway embedded Postgres: one
small synthetic date is published for real (`publish.publish`, from a lake written by
`fixtures.write_day`), then its fact partitions are cloned inside Postgres to earlier load dates
(ids and timestamps shifted, attached as partitions, registered in fact_partitions and publish_log,
then ANALYZE) up to `--small` and then `--large` partitions per fact. At each size:

- the date-range queries below on the current-version views, by EXPLAIN (ANALYZE, SUMMARY): planning
  and execution time, cold (the first statement of a new connection, as a BI tool's new session
  pays it) and warm (median of 5 in one session). Every range covers the same 7 dates, so the rows
  read are the same at both sizes: any growth is the partition count's;
- the locks one run of each query holds (Postgres' shared lock table holds max_locks_per_transaction
  x max_connections, 6,400 by default, for all sessions together);
- `publish.publish` of one more date (median of `--repeat` new dates).

Then, as a third configuration, the closed months compacted into monthly partitions by the product's
`python -m pipeline compact-serving` (`pipeline.serving.compaction.compact`) and the same figures again.

Prints one table with the figures of each configuration and their ratios to the smallest.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from devtools.bench import env

TEMPLATE = dt.date(2030, 1, 1)  # the published date the others are cloned from (earlier dates are clones)
RANGE_DAYS = 7


def queries(first: dt.date, last: dt.date) -> dict[str, tuple[str, dict[str, Any]]]:
    """label -> (statement, parameters): 7-day ranges on the current views, by load date and by business date."""
    ids = {"a": int(f"{first:%Y%m%d}"), "b": int(f"{last:%Y%m%d}")}
    days = {"a": first, "b": last}
    return {
        "orders by order date (7 days)": (
            "select date_id, count(*), sum(net_revenue) from warehouse.fact_orders"
            " where date_id between %(a)s and %(b)s group by date_id", ids),
        "orders by load date (7 days)": (
            "select date_id, count(*), sum(net_revenue) from warehouse.fact_orders"
            " where load_date between %(a)s and %(b)s group by date_id", days),
        "events by event date (7 days)": (
            "select event_type, count(distinct user_id) from warehouse.fact_events"
            " where date_id between %(a)s and %(b)s group by event_type", ids),
        "events by load date (7 days)": (
            "select event_type, count(distinct user_id) from warehouse.fact_events"
            " where load_date between %(a)s and %(b)s group by event_type", days),
    }


def _shifted(column: str, key: str, template: dt.date, day: dt.date) -> sql.Composable:
    """The template partition's column as it would be on `day` (ids and timestamps moved)."""
    col = sql.Identifier(column)
    if column == key:
        return sql.SQL("replace({}, {}, {})").format(col, sql.Literal(f"{template:%Y%m%d}"), sql.Literal(f"{day:%Y%m%d}"))
    if column == "date_id":
        return sql.SQL("{} + {}").format(col, sql.Literal(int(f"{day:%Y%m%d}") - int(f"{template:%Y%m%d}")))
    if column.endswith("_ts"):
        return sql.SQL("{} - make_interval(days => {})").format(col, sql.Literal((template - day).days))
    if column == "load_date":
        return sql.Literal(day)
    return col


def clone_partitions(conn: psycopg.Connection, template: dt.date, days: list[dt.date]) -> None:
    """Attach copies of the template date's fact partitions as `days`' partitions, registered as published."""
    from pipeline.serving.facts import FACTS
    from pipeline.serving.transaction import begin_writing

    for spec in FACTS:
        columns = [c for (c,) in conn.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped"
            " order by attnum", [f"warehouse.{spec.parent}"]).fetchall()]
        for day in days:
            part = sql.Identifier("warehouse", spec.partition(day))
            with conn.transaction():
                begin_writing(conn)  # as a publish: owned by ecomm_writer, so compaction may drop it
                conn.execute(sql.SQL("create table {} (like {} including defaults)").format(
                    part, sql.Identifier("warehouse", spec.parent)))
                conn.execute(sql.SQL("insert into {} select {} from {}").format(
                    part, sql.SQL(", ").join(_shifted(c, spec.key, template, day) for c in columns),
                    sql.Identifier("warehouse", spec.partition(template))))
                conn.execute(sql.SQL("alter table {} attach partition {} for values from ({}) to ({})").format(
                    sql.Identifier("warehouse", spec.parent), part, sql.Literal(day),
                    sql.Literal(day + dt.timedelta(days=1))))
                conn.execute(sql.SQL(
                    "insert into warehouse.fact_partitions (fact_table, load_date, row_count, min_id, max_id)"
                    " select {t}, {d}, count(*), min({k}), max({k}) from {p}").format(
                    t=sql.Literal(spec.parent), d=sql.Literal(day), k=sql.Identifier(spec.key), p=part))
    with conn.transaction():
        # published and reconciled, as the daily pipeline leaves a date (compaction takes only such dates)
        conn.execute("""insert into audit.publish_log (load_date, fact_orders_rows, fact_events_rows, run_id,
                            reconciled_at)
                        select d, t.fact_orders_rows, t.fact_events_rows, 'bench_clone', now()
                        from unnest(%s::date[]) as d, audit.publish_log as t where t.load_date = %s""",
                     [days, template])


def _explain(conn: psycopg.Connection, statement: str, params: dict[str, Any]) -> tuple[float, float]:
    """(planning ms, execution ms) of one EXPLAIN (ANALYZE, SUMMARY)."""
    plan = conn.execute(f"explain (analyze, summary, format json) {statement}", params).fetchone()[0]
    plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
    return plan["Planning Time"], plan["Execution Time"]


def measure_queries(dsn: str, first: dt.date, last: dt.date) -> dict[str, dict[str, float]]:
    """label -> cold/warm planning and execution ms of each query."""
    out = {}
    for label, (statement, params) in queries(first, last).items():
        with psycopg.connect(dsn) as conn:  # a new session: the partitions' relcache entries are cold
            cold = _explain(conn, statement, params)
            warm = [_explain(conn, statement, params) for _ in range(5)]
            with conn.transaction():  # the locks one run of the query holds until its transaction ends
                conn.execute(statement, params).fetchall()
                locks = conn.execute("select count(*) from pg_locks where pid = pg_backend_pid()").fetchone()[0]
        out[label] = {"cold_plan": cold[0], "cold_exec": cold[1],
                      "warm_plan": statistics.median(p for p, _ in warm),
                      "warm_exec": statistics.median(e for _, e in warm), "locks (count)": locks}
    return out


def measure_publish(days: list[dt.date], orders: int, events: int) -> float:
    """Median seconds of publishing each of `days` (a new date each) after writing it to the lake."""
    from devtools.bench.fixtures import write_day
    from pipeline.serving import publish

    seconds = []
    for day in days:
        write_day(day, orders, events)
        env.checkpoint()
        began = time.perf_counter()
        publish.publish(day)
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


def partition_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("select count(*) from pg_inherits where inhparent = 'warehouse.fact_orders_all'::regclass"
                            ).fetchone()[0]


def bench_partitions(args: argparse.Namespace, admin: str) -> dict[str, Any]:
    """The figures at --small and at --large partitions per fact (see module doc)."""
    from devtools.bench.fixtures import write_day
    from pipeline.serving import compaction, pg, publish

    orders, events = args.orders or 1_000, args.events or 5_000
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lake-partitions-", dir=args.dir) as root, \
            env.environment(ECOMM_LAKE_DIR=root), env.fresh_database(admin, "partitions"):
        dsn = pg.dsn()
        write_day(TEMPLATE, orders, events)
        publish.publish(TEMPLATE)
        built, extra = 1, 0
        for size in (args.small, args.large):
            began = time.perf_counter()
            days = [TEMPLATE - dt.timedelta(days=i) for i in range(built, size)]
            with psycopg.connect(dsn, autocommit=True) as conn:  # a transaction per partition
                clone_partitions(conn, TEMPLATE, days)
                conn.execute("analyze")
            built = size
            print(f"  {built + extra} partitions per fact (cloned {len(days)} in"
                  f" {time.perf_counter() - began:.0f} s)", flush=True)
            count = partition_count(dsn)
            figures = measure_queries(dsn, TEMPLATE - dt.timedelta(days=RANGE_DAYS - 1), TEMPLATE)
            new_days = [TEMPLATE + dt.timedelta(days=extra + i + 1) for i in range(args.repeat)]
            extra += args.repeat
            figures["publish one more date"] = {"seconds": measure_publish(new_days, orders, events)}
            results[f"{count} daily"] = figures
        began = time.perf_counter()
        months = compaction.compact(before=TEMPLATE, out=lambda line: print(f"  {line}", flush=True))["done"]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("analyze")
        count = partition_count(dsn)
        print(f"  compacted to {months} monthly + {count - months} daily partitions per fact in"
              f" {time.perf_counter() - began:.0f} s", flush=True)
        figures = measure_queries(dsn, TEMPLATE - dt.timedelta(days=RANGE_DAYS - 1), TEMPLATE)
        new_days = [TEMPLATE + dt.timedelta(days=extra + i + 1) for i in range(args.repeat)]
        figures["publish one more date"] = {"seconds": measure_publish(new_days, orders, events)}
        results[f"{count} ({months} monthly)"] = figures
    return {"sizes": results, "volume": (orders, events)}


def print_figures(found: dict[str, Any]) -> None:
    """One table: each figure at every size, and each size's ratio to the first."""
    sizes = list(found["sizes"].items())
    (small, at_small) = sizes[0]
    print(f"\npartition count: {', '.join(name for name, _ in sizes)} partitions per fact,"
          f" {found['volume'][0]:,} orders / {found['volume'][1]:,} events per date (ms; ratios to {small})")
    print("| figure | " + " | ".join(name for name, _ in sizes) + " | " + " | ".join(
        f"{name} / {small}" for name, _ in sizes[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(sizes) - 1))
    for label, values in at_small.items():
        for key, value in values.items():
            unit = 1000 if key == "seconds" else 1
            name = f"{label}: {key.replace('_', ' ')}" if key != "seconds" else f"{label} (ms)"
            name = name.replace(" (count)", "") if "(count)" in key else name
            others = [figures[label][key] for _, figures in sizes]
            print(f"| {name} | " + " | ".join(f"{v * unit:.1f}" for v in others) + " | " + " | ".join(
                f"{v / value if value else 0:.2f}" for v in others[1:]) + " |")


def main(args: argparse.Namespace) -> int:
    """`python -m devtools.bench partitions` (arguments parsed by devtools.bench.main)."""
    with env.throwaway_postgres(Path(args.dir)) as admin:
        print_figures(bench_partitions(args, admin))
    return 0
