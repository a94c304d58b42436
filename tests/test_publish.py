"""Publishing lake partitions to Postgres, on the embedded server and on a DSN-configured one."""
from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import psycopg
import pytest

from pipeline.serving import pipeline_runs, publish
from tests.support.serving import (
    PRODUCT_SCHEMA,
    USER_SCHEMA,
    dump,
    event,
    order,
    uncommented,
    write_facts,
    write_rows,
)

D1, D2, D3 = dt.date(2025, 12, 14), dt.date(2025, 12, 15), dt.date(2025, 12, 16)

SEED_QUERY = """
SELECT
    dp.category,
    DATE(fo.order_ts) as order_date,
    COUNT(*) as order_count,
    SUM(fo.revenue) as total_revenue
FROM warehouse.fact_orders fo
JOIN warehouse.dim_product dp ON fo.product_id = dp.product_id
GROUP BY dp.category, DATE(fo.order_ts)
ORDER BY order_date DESC, total_revenue DESC;
"""

SEED_FUNNEL = """
WITH events_by_user AS (
    SELECT
        user_id,
        DATE(event_ts) as event_date,
        COUNT(CASE WHEN event_type = 'page_view' THEN 1 END) as page_views,
        COUNT(CASE WHEN event_type = 'add_to_cart' THEN 1 END) as add_to_carts,
        COUNT(CASE WHEN event_type = 'purchase' THEN 1 END) as purchases
    FROM warehouse.fact_events
    GROUP BY user_id, DATE(event_ts)
)
SELECT event_date, COUNT(DISTINCT user_id) as users_with_page_views
FROM events_by_user
GROUP BY event_date
ORDER BY event_date DESC;
"""

SEED_HEALTH = """
SELECT run_date, raw_orders_count, staging_orders_count, fact_orders_count, raw_events_count,
    staging_events_count, fact_events_count, dq_failed_count, runtime_seconds,
    ROUND(100.0 * fact_orders_count / NULLIF(raw_orders_count, 0), 2) as orders_completion_rate,
    ROUND(100.0 * fact_events_count / NULLIF(raw_events_count, 0), 2) as events_completion_rate
FROM warehouse.daily_metrics
ORDER BY run_date DESC
LIMIT 10;
"""

def current(conn: psycopg.Connection, kind: str = "orders") -> dict[str, tuple]:
    key = "order_id" if kind == "orders" else "event_id"
    extra = "status" if kind == "orders" else "event_type"
    return {k: (d, x) for k, d, x in conn.execute(
        f"select {key}, load_date, {extra} from warehouse.fact_{kind} order by 1").fetchall()}


def test_publish_a_date(pg_target, serving_lake) -> None:
    write_facts(D1, [order("ORD_1", D1), order("ORD_2", D1, product_id="PROD_0002", revenue=Decimal("5.50"))],
                [event("EVT_1", D1), event("EVT_2", D1, product_id=None, event_type="page_view")])
    write_rows("warehouse", "dim_product", D1, [
        {"product_key": "k1", "product_id": "PROD_0001", "product_name": "Lamp", "category": "Home", "brand": "B",
         "current_price": Decimal("10.00"), "effective_from": D1, "is_inferred": False, "load_date": D1},
        {"product_key": "k2", "product_id": "PROD_0002", "product_name": "Unknown product", "category": "Unknown",
         "brand": "Unknown brand", "current_price": None, "effective_from": None, "is_inferred": True, "load_date": D1},
    ], PRODUCT_SCHEMA)
    write_rows("audit", "bad_records", D1, [{
        "source_table": "stg_orders", "record_id": "ORD_X", "reason_code": "invalid_price", "message": "bad",
        "failing_value": "abc", "raw_record": '{"price": "abc"}', "source_file": "orders.json", "row_number": 3,
        "load_date": D1}], source_table="stg_orders")
    write_rows("audit", "rejected_lines", D1, [{"source_file": "events.csv", "line_number": 9, "raw_text": "x,y",
                                                "error": "too few columns"}], source_table="events")
    assert not publish.is_published(D1)
    result = publish.publish(D1, audit_rows=[
        {"check_name": "row_count > 0", "table_name": "fact_orders", "check_type": "row_count", "outcome": "warn",
         "value": 2, "message": "low volume"}])
    assert (result["fact_orders_rows"], result["fact_events_rows"], result["replaced"]) == (2, 2, False)
    assert publish.is_published(D1)
    with pg_target.connect() as conn:
        assert conn.execute(SEED_QUERY).fetchall() == [
            ("Home", D1, 1, Decimal("20.00")), ("Unknown", D1, 1, Decimal("5.50"))]
        assert conn.execute("select fact_orders_rows, fact_events_rows from audit.publish_log").fetchall() == [(2, 2)]
        assert conn.execute("select source_table, record_id, row_number, raw_record from quarantine.bad_records"
                            ).fetchall() == [("stg_orders", "ORD_X", 3, '{"price": "abc"}')]
        assert conn.execute("select source_table, line_number, raw_text from quarantine.rejected_lines").fetchall() == [
            ("events", 9, "x,y")]
        # what BI reads: the same rows, no value of the rejected input
        assert conn.execute("select * from audit.bad_records").fetchall() == [(D1, "stg_orders", "invalid_price", 3)]
        assert conn.execute("select * from audit.rejected_lines").fetchall() == [(D1, "events", 9, None)]
        assert conn.execute("select check_name, outcome, value from audit.dq_failures").fetchall() == [
            ("row_count > 0", "warn", "2")]
        assert conn.execute("select product_id, valid_as_of, is_inferred from warehouse.dim_product order by 1"
                            ).fetchall() == [("PROD_0001", D1, False), ("PROD_0002", D1, True)]
        assert uncommented(conn) == [], "partitions carry the comments too"
        assert conn.execute(SEED_FUNNEL).fetchall() == [(D1, 1)]
        assert conn.execute(SEED_HEALTH).fetchall() == [], "no daily_metrics partition in this lake"


def test_publishing_twice_leaves_identical_tables(pg_target, serving_lake) -> None:
    from devtools.bench.fixtures import write_day

    write_day(D1, 3000, 9000, users=500, products=40, known_products=35)
    write_day(D2, 2000, 7000, users=500, products=40, known_products=38)
    publish.publish(D1)
    publish.publish(D2)
    with pg_target.connect() as conn:
        first = dump(conn)
    result = publish.publish(D2)
    assert result["replaced"]
    publish.publish(D1)
    with pg_target.connect() as conn:
        assert dump(conn) == first
        assert conn.execute("select count(*) from pg_class where relname like '%%_load'").fetchone() == (0,)


def test_redelivered_orders_latest_wins_events_earliest_wins(pg_target, serving_lake) -> None:
    write_facts(D1, [order("ORD_A", D1, status="pending"), order("ORD_B", D1)],
                [event("EVT_A", D1, event_type="view_product"), event("EVT_B", D1)])
    write_facts(D2, [order("ORD_A", D2, status="paid"), order("ORD_C", D2)],
                [event("EVT_A", D2, event_type="add_to_cart"), event("EVT_C", D2)])
    write_facts(D3, [order("ORD_A", D3, status="refunded")], [event("EVT_A", D3, event_type="checkout")])
    expected_orders = {"ORD_A": (D3, "refunded"), "ORD_B": (D1, "paid"), "ORD_C": (D2, "paid")}
    expected_events = {"EVT_A": (D1, "view_product"), "EVT_B": (D1, "view_product"), "EVT_C": (D2, "view_product")}
    for day in (D2, D3, D1):  # out of order: the result must not depend on it
        publish.publish(day)
    with pg_target.connect() as conn:
        assert current(conn, "orders") == expected_orders
        assert current(conn, "events") == expected_events
        assert conn.execute("select order_id, load_date, current_load_date from warehouse.fact_orders_superseded"
                            " order by 2").fetchall() == [("ORD_A", D1, D3), ("ORD_A", D2, D3)]
        before = dump(conn)
    for day in (D1, D2, D3):  # in order, republished: same tables
        publish.publish(day)
    with pg_target.connect() as conn:
        assert dump(conn) == before
    # D3 is corrected and no longer carries ORD_A / EVT_A: D2's version becomes current again
    write_facts(D3, [order("ORD_D", D3)], [event("EVT_D", D3)])
    publish.publish(D3)
    with pg_target.connect() as conn:
        assert current(conn, "orders")["ORD_A"] == (D2, "paid")
        assert current(conn, "events")["EVT_A"] == (D1, "view_product")
        assert conn.execute("select count(*) from warehouse.fact_orders").fetchone() == (4,)
    # D1 is corrected without EVT_A: D2's copy is now the earliest
    write_facts(D1, [order("ORD_B", D1)], [event("EVT_B", D1)])
    publish.publish(D1)
    with pg_target.connect() as conn:
        assert current(conn, "events")["EVT_A"] == (D2, "add_to_cart")
        assert current(conn, "orders")["ORD_A"] == (D2, "paid")


def _dims(conn: psycopg.Connection) -> list:
    return [conn.execute(q).fetchall() for q in (
        "select user_id, first_seen_date, first_order_date, last_seen_date, city, country, city_as_of"
        " from warehouse.dim_user order by 1",
        "select * from warehouse.dim_product order by 1")]


def test_dimension_merges_do_not_depend_on_publish_order(pg_target, serving_lake, dsn_server, monkeypatch) -> None:
    def user(uid, day, first_seen, first_order, last_seen, city=None, country=None):
        return {"user_id": uid, "first_seen_date": first_seen, "first_order_date": first_order,
                "last_seen_date": last_seen, "city": city, "country": country, "load_date": day}

    def product(pid, day, name, inferred, price=None):
        return {"product_key": pid + str(day), "product_id": pid, "product_name": name, "category": "C",
                "brand": "B", "current_price": price, "effective_from": None, "is_inferred": inferred, "load_date": day}

    users = {
        D1: [user("U1", D1, D1, None, D1, "Oslo", "NO"), user("U2", D1, D1, D1, D1, "Rome", "IT")],
        D2: [user("U1", D2, D2, D2, D2), user("U2", D2, D2, None, D2, "Milan", "IT")],
        D3: [user("U1", D3, D3, None, D3, "Bergen", None), user("U2", D3, D3, None, D3)],
    }
    products = {
        D1: [product("P1", D1, "Lamp", False, Decimal("9.99")), product("P2", D1, "Unknown product", True)],
        D2: [product("P1", D2, "Unknown product", True), product("P2", D2, "Unknown product", True)],
        D3: [product("P1", D3, "Lamp v2", False, Decimal("12.00")), product("P3", D3, "Unknown product", True)],
    }
    for day in (D1, D2, D3):
        write_facts(day, [order(f"O{day.day}", day)], [event(f"E{day.day}", day)])
        write_rows("warehouse", "dim_user", day, users[day], USER_SCHEMA)
        write_rows("warehouse", "dim_product", day, products[day], PRODUCT_SCHEMA)
    for day in (D3, D1, D2):
        publish.publish(day)
    with pg_target.connect() as conn:
        shuffled = _dims(conn)
    other = dsn_server.create_database(f"{pg_target.database}_b")
    monkeypatch.setenv("ECOMM_PG_DSN", other)
    for day in (D1, D2, D3):
        publish.publish(day)
    with psycopg.connect(other) as conn:
        in_order = _dims(conn)
    assert shuffled == in_order
    user_rows, product_rows = in_order
    assert user_rows == [("U1", D1, D2, D3, "Bergen", None, D3), ("U2", D1, D1, D3, "Milan", "IT", D2)]
    assert [(p[0], p[1], p[5], p[6]) for p in product_rows] == [
        ("P1", "Lamp v2", None, False), ("P2", "Unknown product", None, True), ("P3", "Unknown product", None, True)]
    assert [p[7] for p in product_rows] == [D3, D2, D3]


def test_empty_date_does_not_replace_a_published_one(pg_target, serving_lake) -> None:
    write_facts(D1, [order("ORD_1", D1)], [event("EVT_1", D1)])
    publish.publish(D1)
    write_facts(D1, [], [])
    with pytest.raises(publish.EmptyPublishRefused, match="force=True"):
        publish.publish(D1)
    with pg_target.connect() as conn:
        assert conn.execute("select count(*) from warehouse.fact_orders").fetchone() == (1,)
    publish.publish(D1, force=True)
    with pg_target.connect() as conn:
        assert conn.execute("select count(*) from warehouse.fact_orders_all").fetchone() == (0,)
        assert conn.execute("select fact_orders_rows from audit.publish_log").fetchone() == (0,)


def test_bad_lake_partitions_change_nothing(pg_target, serving_lake) -> None:
    write_facts(D1, [order("ORD_1", D1)], [event("EVT_1", D1)])
    publish.publish(D1)
    with pg_target.connect() as conn:
        before = dump(conn)
    with pytest.raises(publish.LakePartitionMissing, match="run the pipeline"):
        publish.publish(D2)
    write_facts(D1, [order("ORD_1", D1), order("ORD_2", D1)], [event("EVT_1", D1), event("EVT_1", D1)])
    with pytest.raises(publish.DuplicateFactKey, match="EVT_1"):
        publish.publish(D1)
    rows = [order("ORD_9", D1)]
    for row in rows:
        del row["net_revenue"]
    write_rows("warehouse", "fact_orders", D1, rows)
    with pytest.raises(publish.LakePartitionInvalid, match="net_revenue"):
        publish.publish(D1)
    write_facts(D1, [order("ORD_9", D1, load_date=D2)], [event("EVT_9", D1)])
    with pytest.raises(publish.PublishError, match="load_date_in_partition"):
        publish.publish(D1)
    with pg_target.connect() as conn:
        assert dump(conn) == before
        assert conn.execute("select count(*) from pg_class where relname like '%%_load'").fetchone() == (0,)


def test_audit_only_records_the_gate_without_publishing(pg_target, serving_lake) -> None:
    rows = [{"check_name": "duplicate_count(order_id) = 0", "table_name": "stg_orders", "check_type": "duplicate_count",
             "outcome": "fail", "value": 3, "message": "3 duplicates"}]
    assert publish.publish_audit_only(D1, rows) == 1
    assert publish.publish_audit_only(D1, rows + [dict(rows[0], check_name="x", outcome="error")]) == 2
    assert not publish.is_published(D1)
    with pg_target.connect() as conn:
        assert conn.execute("select check_name, outcome, value from audit.dq_failures order by 1").fetchall() == [
            ("duplicate_count(order_id) = 0", "fail", "3"), ("x", "error", "3")]
    with pytest.raises(ValueError, match="outcome"):
        publish.publish_audit_only(D1, [{"check_name": "y", "outcome": "pass"}])


def test_daily_metrics_take_the_gate_outcome(pg_target, serving_lake) -> None:
    from devtools.bench.fixtures import write_day

    write_day(D1, 10, 20, users=5, products=3, known_products=3)
    publish.publish(D1, audit_rows=[{"check_name": "a", "outcome": "warn"}, {"check_name": "b", "outcome": "fail"}])
    with pg_target.connect() as conn:
        assert conn.execute("select run_date, fact_orders_count, dq_failed_count from warehouse.daily_metrics"
                            ).fetchall() == [(D1, 10, 1)]


def test_runtime_is_written_in_the_publish_transaction(pg_target, serving_lake, monkeypatch) -> None:
    from devtools import faults
    from devtools.bench.fixtures import write_day

    write_day(D1, 10, 20, users=5, products=3, known_products=3)
    publish.publish(D1, runtime=lambda: 12.5)
    monkeypatch.setenv(faults.ENV, "publish.commit:raise")
    with pytest.raises(faults.FaultInjected):
        publish.publish(D1, runtime=lambda: 99.0)  # rolled back with the rest of the date
    with pg_target.connect() as conn:
        assert conn.execute("select runtime_seconds from warehouse.daily_metrics").fetchall() == [(12.5,)]


def test_an_attempt_whose_process_was_killed_is_synced_as_failed(pg_target, serving_lake) -> None:
    """A `luigi` process SIGKILLed mid-task leaves its attempt `running` in the lake twin; the date's
    next sync (a failure or a publish of any later run) records it as failed, in the twin and in Postgres."""
    import socket
    import subprocess
    import sys

    from pipeline.tasks import run_audit

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    started = dt.datetime(2025, 12, 14, 2, 0)
    row = {"run_id": "run_killed", "load_date": D1, "task_id": "LandOrders_2025_12_14_x", "task_family": "LandOrders",
           "attempt": 1, "status": "running", "started_at": started, "ended_at": None, "duration_seconds": None,
           "rows_in": None, "rows_out": None, "error_message": None, "host": socket.gethostname(),
           "pid": gone.pid, "in_postgres": False}
    alive = {**row, "task_id": "LandEvents_2025_12_14_x", "task_family": "LandEvents", "pid": os.getpid()}
    for twin in (row, alive):
        run_audit._write(run_audit.twin_path(D1, twin["run_id"], twin["task_id"]), [twin])
    # temporary files: the killed run's, beside its twin and alone in a twin folder it was writing first (a folder
    # written by that run only, never again), and the live writer's, which stays
    dead = [f"{run_audit.twin_path(D1, 'run_killed', task)}.tmp-{gone.pid}" for task in (row["task_id"], "LandUsers_x")]
    live = f"{run_audit.twin_path(D1, alive['run_id'], alive['task_id'])}.tmp-{os.getpid()}"
    for path in (*dead, live):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(b"PAR1 cut short")
    assert run_audit.sync_to_postgres(D1) == 1
    assert [os.path.exists(path) for path in (*dead, live)] == [False, False, True]
    statuses = {r["task_family"]: (r["status"], r["in_postgres"]) for r in run_audit.executions(D1)}
    assert statuses == {"LandOrders": ("failed", True), "LandEvents": ("running", False)}, "a live attempt is left alone"
    with pg_target.connect() as conn:
        assert conn.execute("select task, status, error_message from audit.pipeline_runs").fetchall() == [
            ("LandOrders_2025_12_14_x", "failed", run_audit.LOST)]


def test_pipeline_runs_are_recorded(pg_target) -> None:
    start = dt.datetime(2025, 12, 14, 2, 0, tzinfo=dt.timezone.utc)
    pipeline_runs.record_pipeline_run("run-1", "PublishDate(2025-12-14)", "running", run_date=D1, started_at=start)
    pipeline_runs.record_pipeline_run("run-1", "PublishDate(2025-12-14)", "done", run_date=D1, started_at=start,
                                ended_at=start + dt.timedelta(seconds=90), rows_in=5, rows_out=5)
    with pg_target.connect() as conn:
        assert conn.execute("select status, duration_seconds, rows_out from audit.pipeline_runs").fetchall() == [
            ("done", 90.0, 5)]


def test_publish_reads_the_lake_ecomm_lake_dir_names(pg_target, serving_lake, tmp_path, monkeypatch) -> None:
    """The lake root is read on every call: the same date under another root is another lake."""
    write_facts(D1, [order("ORD_1", D1)], [event("EVT_1", D1)])
    elsewhere = tmp_path / "another-lake"
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(elsewhere))
    with pytest.raises(publish.LakePartitionMissing, match=f"{elsewhere}/warehouse/fact_orders/load_date={D1}"):
        publish.publish(D1)
    assert not publish.is_published(D1)
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(serving_lake))
    assert publish.publish(D1)["fact_orders_rows"] == 1


@pytest.mark.parametrize("lake_table", ["fact_orders", "product_sales_daily"])
def test_a_lake_column_postgres_lacks_is_refused_not_dropped(fresh_db, serving_lake, lake_table) -> None:
    """A model that gained a column without its serving migration: the publish stops and says so."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline import lake

    write_facts(D1, [order("ORD_1", D1)], [event("EVT_1", D1)])
    publish.publish(D1)  # the marts' partitions too
    path = lake.partition_file("marts" if lake_table == "product_sales_daily" else "warehouse", lake_table, D1)
    table = pq.read_table(path)
    pq.write_table(table.append_column("is_sold", pa.array([True] * table.num_rows)), path)
    with pytest.raises(publish.PublishError, match=(
            rf"lake .*{lake_table} \(.*\) has column\(s\) is_sold that its Postgres table lacks: the lake model gained"
            r" them without a serving migration; add one")):
        publish.publish(D1, force=True)
    with fresh_db.connect() as conn:  # the first publish stands: nothing of the refused one was written
        assert conn.execute("select count(*) from warehouse.fact_orders").fetchone() == (1,)
