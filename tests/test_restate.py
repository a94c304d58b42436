"""A file that changes after its date is published is not ignored; `python -m pipeline restate` republishes it.

Real `luigi` and `python -m pipeline` command lines against a fresh database on the session's
embedded Postgres, with the seed fixture day (20 orders, 60 events) as the incoming files.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from decimal import Decimal
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest

from pipeline.lake import views
from tests.support.dummyjson_server import DummyJsonServer
from tests.support.ops import SEED_DAY, Ops

DATE = ["--date", str(SEED_DAY)]
LOCAL = "--local-scheduler"


def published(ops: Ops) -> tuple[int, int, int]:
    """(fact_orders rows, fact_events rows, publish_log rows) of the seed day in Postgres."""
    return ops.query(
        "select (select count(*) from warehouse.fact_orders_all where load_date = %(d)s),"
        " (select count(*) from warehouse.fact_events_all where load_date = %(d)s),"
        " (select count(*) from audit.publish_log where load_date = %(d)s)", {"d": SEED_DAY})[0]


def orders_path(ops: Ops) -> Path:
    return ops.incoming / "orders" / str(SEED_DAY) / "orders.json"


def events_path(ops: Ops) -> Path:
    return ops.incoming / "events" / str(SEED_DAY) / "events.csv"


def assert_refused(result, *fragments: str) -> None:
    assert result.returncode == 30, result.stderr[-3000:]
    assert "SourceChanged" in result.stderr and "python -m pipeline restate --date 2025-12-15" in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, fragment


@pytest.mark.slow
def test_a_corrected_orders_file_after_publish_is_refused_then_restated(ops: Ops) -> None:
    first = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert first.returncode == 0, first.stderr[-3000:]
    assert published(ops) == (20, 60, 1)

    orders = json.loads(orders_path(ops).read_text())
    corrected = orders + [{**record, "order_id": record["order_id"] + "_B"} for record in orders[:5]]
    orders_path(ops).write_text(json.dumps(corrected, indent=2))

    again = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert_refused(again, "orders.json changed since it was landed", "Postgres keeps serving it as it was published")
    assert published(ops) == (20, 60, 1), "the published date is untouched"
    (error,) = ops.query("select error_message from audit.pipeline_runs where task like 'SourcesUnchanged%%'"
                         " and status = 'failed'")[0]
    assert error.startswith("SourceChanged:")
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY),
                         "--stop", str(SEED_DAY + dt.timedelta(days=1)), LOCAL)
    assert_refused(backfill)  # bulk_complete does not count the changed date as done

    restated = ops.pipeline("restate", *DATE)
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert "does not answer" not in restated.stdout + restated.stderr, "no luigid (luigi.cfg's): nothing said"
    assert published(ops) == (25, 60, 1), "Postgres holds exactly the new file's rows"
    archive = list((ops.lake / "_archive" / "restated" / f"load_date={SEED_DAY}").glob("restated_at=*/raw/orders"))
    assert len(archive) == 1 and json.loads((archive[0] / "_manifest.json").read_text())["rows"] == 20
    record = json.loads((ops.lake / "audit" / "restatements" / f"load_date={SEED_DAY}" / "restatement.json").read_text())
    assert (record["status"], record["sources"]) == ("published", ["orders"])
    assert ops.query("select raw_count, source_records from audit.reconciliation"
                     " where load_date = %s and source_table = 'stg_orders'", [SEED_DAY]) == [(25, 25)]

    settled = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert settled.returncode == 0 and "Did not run any tasks" in settled.stderr, settled.stderr[-3000:]

    (orders_path(ops).parent / "orders_part2.json").write_text(json.dumps(orders[:1]))
    extra = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert_refused(extra, "orders_part2.json")
    assert published(ops) == (25, 60, 1)


@pytest.mark.slow
def test_a_restatement_whose_new_file_the_landing_refuses_leaves_the_date_as_published(ops: Ops) -> None:
    first = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert first.returncode == 0, first.stderr[-3000:]
    landed = (ops.lake / "raw" / "orders" / f"load_date={SEED_DAY}" / "_manifest.json").read_text()
    text = orders_path(ops).read_text()
    orders_path(ops).write_text(text[:text.rindex("}") + 1] + ",\n")  # an export that stopped after a comma

    restated = ops.pipeline("restate", *DATE)
    assert restated.returncode == 30, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert "Traceback" not in restated.stderr
    (line,) = [line for line in restated.stderr.splitlines() if line.startswith("SourceFileInvalid:")]
    assert "orders.json" in line and "nothing was restated" in line, restated.stderr[-3000:]
    assert (ops.lake / "raw" / "orders" / f"load_date={SEED_DAY}" / "_manifest.json").read_text() == landed
    assert not (ops.lake / "_archive").exists(), "the landed files stay where they are"
    assert not (ops.lake / "audit" / "restatements").exists(), "no restatement pending: the date stays published"
    assert ops.lake_rows("warehouse", "fact_orders") == 20, "what the date was built from stays"
    assert published(ops) == (20, 60, 1)

    orders_path(ops).write_text(text)  # the sender sends the file again, whole: nothing to restate
    assert ops.luigi("DailyPipeline", *DATE, LOCAL).returncode == 0


@pytest.mark.slow
def test_a_refused_file_leaves_a_pending_restatement_pending_and_says_so(ops: Ops) -> None:
    assert ops.luigi("DailyPipeline", *DATE, LOCAL).returncode == 0
    orders = json.loads(orders_path(ops).read_text())
    orders_path(ops).write_text(json.dumps([{**o, "quantity": "many"} if i % 3 else o for i, o in enumerate(orders)]))
    blocked = ops.pipeline("restate", *DATE)  # the gate blocks the new file: the restatement stays pending
    assert blocked.returncode == 30 and "published, restatement PENDING" in blocked.stdout, blocked.stdout[-3000:]
    text = orders_path(ops).read_text()
    orders_path(ops).write_text(text[:len(text) // 2])
    refused = ops.pipeline("restate", *DATE)
    assert refused.returncode == 30, refused.stderr[-3000:]
    assert refused.stderr.rstrip().endswith(
        f"nothing was restated: the pending restatement of {SEED_DAY} stays pending"), refused.stderr[-3000:]
    assert "landed 20 rows" not in refused.stderr + refused.stdout, "the scratch landing says nothing of its own"


@pytest.mark.slow
def test_a_catalog_restatement_whose_api_fails_archives_nothing(ops: Ops) -> None:
    with DummyJsonServer() as server:
        ops.extra_env["ECOMM_PRODUCTS_URL"] = server.url
        assert ops.luigi("DailyPipeline", *DATE, LOCAL).returncode == 0
    config = Path(ops.extra_env["LUIGI_CONFIG_PATH"])
    config.write_text(config.read_text() + "[catalog]\nretries = 0\n")
    restated = ops.pipeline("restate", "--catalog", "products", *DATE)  # the API is gone
    assert restated.returncode == 30 and "Traceback" not in restated.stderr, restated.stderr[-3000:]
    assert restated.stderr.rstrip().endswith(
        f"nothing was restated: the products snapshot of {SEED_DAY} stays as it was landed"), restated.stderr[-3000:]
    assert not (ops.lake / "_archive").exists() and not (ops.lake / "audit" / "restatements").exists()


@pytest.mark.slow
def test_a_partial_events_file_completed_after_publish_is_restated(ops: Ops) -> None:
    full = events_path(ops).read_bytes()
    lines = full.splitlines(keepends=True)
    events_path(ops).write_bytes(b"".join(lines[:31]))  # the header and 30 events: the sender was still writing
    first = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert first.returncode == 0, first.stderr[-3000:]
    assert published(ops) == (20, 30, 1)

    events_path(ops).write_bytes(full)  # the sender finished
    again = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert_refused(again, "events.csv changed since it was landed")
    assert published(ops) == (20, 30, 1)

    restated = ops.pipeline("restate", *DATE, "--source", "events")
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert published(ops) == (20, 60, 1)
    assert ops.query("select count(*) from audit.pipeline_runs where task like 'LandOrders%%'") == [(1,)], \
        "orders were not restated: landed once"
    # what an analyst sees of it in the lake (pipeline.lake.views): the date's record, typed
    (row,) = views.open_lake(ops.lake).execute(
        "select load_date, status, sources, reasons->>'events', published_at >= requested_at,"
        " previous_manifests->'events'->>'rows', archived from audit.restatements").fetchall()
    assert row[:3] == (SEED_DAY, "published", ["events"]) and "changed since it was landed" in row[3]
    assert row[4:6] == (True, "30"), row
    assert any(path.endswith("/raw/events/data.parquet") for path in row[6]) and all(map(os.path.exists, row[6]))


@pytest.mark.slow
def test_a_restatement_a_bi_session_keeps_locked_fails_in_one_line_with_what_to_do(ops: Ops) -> None:
    first = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert first.returncode == 0, first.stderr[-3000:]
    config = Path(ops.extra_env["LUIGI_CONFIG_PATH"])  # two short waits, so the publish gives up within a second
    config.write_text(config.read_text() + "[publish]\nlock_timeout = 200ms\nlock_attempts = 2\n"
                      "lock_backoff_seconds = 0.05\nlock_backoff_max_seconds = 0.05\n")
    with psycopg.connect(ops.dsn) as bi:  # a dashboard that read the facts and sits idle in its transaction
        bi.execute("select count(*) from warehouse.fact_orders").fetchone()
        restated = ops.pipeline("restate", *DATE, "--source", "orders")
        holder = bi.info.backend_pid
    assert restated.returncode == 30, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert "Traceback" not in restated.stderr, restated.stderr[-3000:]
    failed = [line for line in restated.stderr.splitlines() if "failed    Publish(" in line]
    assert len(failed) == 1 and f"PublishLocked: publishing {SEED_DAY} failed" in failed[0], restated.stderr[-3000:]
    assert f"stayed locked by pid {holder} " in failed[0]
    scheduled = [line for line in restated.stderr.splitlines() if "has status   DONE" in line]
    assert scheduled and len(scheduled) == len(set(scheduled)), "each of Luigi's lines is printed once"
    # the session the message names, by its pid: the statement runs as given
    assert (f"what to do (publish locked): end the session the message names (as the serving owner:"
            f" `select pg_terminate_backend({holder})`)") in restated.stdout, restated.stdout
    assert published(ops) == (20, 60, 1), "the date stays as it was published"
    (error,) = ops.query("select error_message from audit.pipeline_runs where status = 'failed'")[0]
    assert error.startswith("PublishLocked:")


@pytest.mark.slow
def test_restate_without_a_change_says_so(ops: Ops) -> None:
    first = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert first.returncode == 0, first.stderr[-3000:]
    nothing = ops.pipeline("restate", *DATE)
    assert nothing.returncode == 0 and "nothing to restate" in nothing.stdout
    assert not (ops.lake / "_archive").exists()
    # a date never landed: not "its files are the ones landed" (there are none) but a user error, one line
    never = ops.pipeline("restate", "--date", "2026-03-01")
    assert never.returncode == 2 and never.stderr.strip().splitlines() == [
        "python -m pipeline restate: error: 2026-03-01 was never landed, so there is nothing to restate; run the"
        " date: `luigi --module pipeline.tasks DailyPipeline --date 2026-03-01 --local-scheduler`"], never.stderr


def dimension_rows(ops: Ops, table: str, key: str) -> tuple[list[tuple], list[tuple]]:
    """(Postgres, lake current view) rows of a dimension, in the columns both have but load_date."""
    lake = views.open_lake(ops.lake)
    lake_columns = [row[0] for row in lake.execute(f"describe warehouse.{table}").fetchall()]
    pg_columns = [row[0] for row in ops.query(
        "select column_name from information_schema.columns where table_schema = 'warehouse' and table_name = %s"
        " order by ordinal_position", [table])]
    columns = ", ".join(c for c in lake_columns if c in pg_columns and c != "load_date")
    return (ops.query(f"select {columns} from warehouse.{table} order by {key}"),
            lake.execute(f"select {columns} from warehouse.{table} order by {key}").fetchall())


@pytest.mark.slow
def test_a_restated_date_leaves_the_dimensions_as_the_lake_merges_them(ops: Ops) -> None:
    """Users and products only the replaced file named go; the dimensions' rows only it gave fall back to the others'."""
    orders = json.loads(orders_path(ops).read_text())
    late = next(o for o in orders if o["user_id"] == "USER_0186")
    late_day = SEED_DAY - dt.timedelta(days=14)  # a late order: no other file names its day
    late["timestamp"] = late["timestamp"].replace(str(SEED_DAY), str(late_day))
    assert late["timestamp"].startswith(str(late_day))
    orders_path(ops).write_text(json.dumps(orders, indent=2))
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY - dt.timedelta(days=1)),
                         "--stop", str(SEED_DAY + dt.timedelta(days=1)), LOCAL)
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    orders = json.loads(orders_path(ops).read_text())
    gone = "USER_0186"  # one order on the date, no event: only the replaced file names it
    assert sum(o["user_id"] == gone for o in orders) == 1
    for record in orders:
        if record["user_id"] == gone:  # its day corrected: not late after all
            record["timestamp"] = record["timestamp"].replace(str(late_day), str(SEED_DAY))
        if record["user_id"] in (gone, "USER_0307"):  # USER_0307 also ordered the day before
            record.update(user_id="USER_9999", product_id="PROD_9999")
    orders_path(ops).write_text(json.dumps(orders, indent=2))
    assert ops.query("select count(*) from warehouse.dim_user where user_id = %s", [gone]) == [(1,)]
    assert ops.query("select count(*) from warehouse.dim_date where full_date = %s", [late_day]) == [(1,)]

    restated = ops.pipeline("restate", *DATE)
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]

    for table, key in (("dim_user", "user_id"), ("dim_product", "product_id"), ("dim_date", "date_id")):
        served, merged = dimension_rows(ops, table, key)
        assert served == merged, f"{table}: Postgres {set(served) - set(merged)} / lake {set(merged) - set(served)}"
    assert ops.query("select count(*) from warehouse.dim_user where user_id = %s", [gone]) == [(0,)]
    # its calendar day stays: every date's dim_date holds its late window (dense, whatever the facts name)
    assert ops.query("select count(*) from warehouse.dim_date where full_date = %s", [late_day]) == [(1,)]
    assert ops.query("select count(*) from warehouse.dim_user where user_id = 'USER_9999'") == [(1,)]


def later_days(ops: Ops) -> list[dt.date]:
    """The two days after the seed day, their incoming files the seed day's again (repeated ids) with its timestamps
    moved to their own day (a day's file of another day's rows only is blocked by the gate's late-row rule)."""
    later = [SEED_DAY + dt.timedelta(days=n) for n in (1, 2)]
    for day in later:
        for source, name in (("orders", "orders.json"), ("events", "events.csv")):
            (ops.incoming / source / str(day)).mkdir(parents=True)
            text = (ops.incoming / source / str(SEED_DAY) / name).read_text(encoding="utf-8")
            (ops.incoming / source / str(day) / name).write_text(text.replace(f"{SEED_DAY}T", f"{day}T"), encoding="utf-8")
    return later


def moved_to_garden(products: list[dict]) -> list[dict]:
    """The catalog with PROD_0003 (ordered on the seed day) in another category at another price."""
    (moved,) = [p for p in products if p["product_id"] == "PROD_0003"]
    assert moved["category"] != "Garden"
    moved.update(category="Garden", current_price=9.99)
    return products


@pytest.mark.slow
def test_a_corrected_catalog_snapshot_is_restated_with_the_dates_it_feeds(ops: Ops) -> None:
    """products_S.json corrected after S and a later date were published: refused, then restated for both."""
    later = later_days(ops)
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY - dt.timedelta(days=1)),
                         "--stop", str(later[0] + dt.timedelta(days=1)), LOCAL)
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    snapshot = ops.incoming / "products" / f"products_{SEED_DAY}.json"
    products = moved_to_garden(json.loads(snapshot.read_text()))
    snapshot.write_text(json.dumps(products, indent=2))

    refused = ops.luigi("DailyPipeline", "--date", str(later[1]), LOCAL)  # the next date the snapshot covers
    assert refused.returncode == 30, refused.stderr[-3000:]
    assert f"python -m pipeline restate --catalog products --date {SEED_DAY}" in refused.stderr
    assert f"the products snapshot of {SEED_DAY}: {snapshot} changed since it was landed (" in refused.stderr
    # the summary's "what to do" is that command, not `restate --date` (which refuses it, below)
    assert (f"what to do (changed source file): `python -m pipeline restate --catalog products --date {SEED_DAY}`,"
            " as the error says") in refused.stdout, refused.stdout[-2000:]
    # restating the date (not the snapshot) names the command that does it, instead of "nothing to restate", exit 0
    daily = ops.pipeline("restate", "--date", str(later[1]))
    assert daily.returncode == 2 and daily.stderr.startswith(
        f"python -m pipeline restate: error: the daily files of {later[1]} are the ones landed; what changed is a"
        f" catalog snapshot covering it, the products snapshot of {SEED_DAY}: "), daily.stderr
    assert f"run `python -m pipeline restate --catalog products --date {SEED_DAY}`" in daily.stderr
    assert len(daily.stderr.strip().splitlines()) == 1 and not (ops.lake / "audit" / "restatements").exists()

    restated = ops.pipeline("restate", "--catalog", "products", "--date", str(SEED_DAY))
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
    fed = [SEED_DAY, *later]  # the refused run built the last date's partitions: they go with the old catalog
    assert f"the dates it feeds: {', '.join(map(str, fed))}" in restated.stdout, restated.stdout[-2000:]
    assert ops.query("select category, current_price from warehouse.dim_product where product_id = 'PROD_0003'") \
        == [("Garden", Decimal("9.99"))]
    served, merged = dimension_rows(ops, "dim_product", "product_id")
    assert served == merged
    assert ops.query("select count(*) > 0 from marts.category_sales_daily_as_ordered where category = 'Garden'"
                     " and order_date >= %s", [SEED_DAY]) == [(True,)]
    for day in fed:
        record = json.loads((ops.lake / "audit" / "restatements" / f"load_date={day}" / "restatement.json").read_text())
        assert (record["status"], record["sources"]) == ("published", ["products"]), day
        assert "products_2025-12-15.json changed since it was landed" in record["reasons"]["products"]
    archived = ops.lake / "_archive" / "restated" / f"load_date={SEED_DAY}"
    (old,) = archived.glob("restated_at=*/raw/products/_manifest.json")
    assert json.loads(old.read_text())["rows"] == len(products)
    assert ops.query("select count(*) from audit.pipeline_runs where task like 'Publish_2025_12_14%%'") == [(1,)], \
        "the date before the snapshot is not touched"

    assert ops.luigi("DailyPipeline", "--date", str(later[1]), LOCAL).returncode == 0
    never = ops.pipeline("restate", "--catalog", "users", "--date", str(SEED_DAY))
    assert never.returncode == 2 and "no users snapshot of 2025-12-15 was landed" in never.stderr, never.stderr


def users_snapshot(ops: Ops, users: list[dict]) -> Path:
    """The users snapshot of the seed day: `users`, and every other user the incoming days name, in one city (a
    snapshot that lists none of a day's users blocks the day: the gate's unknown-user share; so does one whose users
    mostly lack a city or country: the catalog's field rule)."""
    named = {order["user_id"] for path in (ops.incoming / "orders").glob("*/orders.json")
             for order in json.loads(path.read_text()) if isinstance(order, dict)}
    named |= {line.split(",")[1] for path in (ops.incoming / "events").glob("*/events.csv")
              for line in path.read_text().splitlines()[1:] if line.count(",") == 4}
    listed = {user["user_id"] for user in users}
    others = [{"user_id": user_id, "first_name": "C", "last_name": "D", "email": "c@d.example", "city": "Elsewhere",
               "country": "Freedonia"}
              for user_id in sorted(named - listed) if re.fullmatch(r"USER_[0-9]+", str(user_id))]
    path = ops.incoming / "users" / f"users_{SEED_DAY}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(users + others, indent=2))
    return path


@pytest.mark.slow
def test_a_restated_users_snapshot_leaves_dim_user_as_the_lake_merges_it(ops: Ops) -> None:
    """A users snapshot corrected after the dates it feeds were published: users no order or event of a later date
    names keep the corrected snapshot's word, not the withdrawn one's (a user it drops goes, a city it blanks is
    the last one reported before it, as the lake merges them; `rebuild-serving` gave that, the restatement did not)."""
    later = later_days(ops)
    person = {"first_name": "A", "last_name": "B", "email": "a@b.example", "signup_date": "2020-01-01"}
    users = [{"user_id": "USER_8001", "city": "Oldtown", "country": "Freedonia", **person},  # no order, no event
             {"user_id": "USER_8002", "city": "Oldtown", "country": "Freedonia", **person},
             {"user_id": "USER_0307", "city": "Oldtown", "country": "Freedonia", **person}]  # orders every day
    snapshot = users_snapshot(ops, users)
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY - dt.timedelta(days=1)),
                         "--stop", str(later[-1] + dt.timedelta(days=1)), LOCAL)
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    assert ops.query("select user_id, city from warehouse.dim_user where city = 'Oldtown' order by 1") == [
        ("USER_0307", "Oldtown"), ("USER_8001", "Oldtown"), ("USER_8002", "Oldtown")]

    users_snapshot(ops, [{**users[1], "city": None, "country": None}, {**users[2], "city": "Newtown"}])  # 8001 gone
    restated = ops.pipeline("restate", "--catalog", "users", "--date", str(SEED_DAY))
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert snapshot.exists()

    served, merged = dimension_rows(ops, "dim_user", "user_id")
    assert served == merged, f"dim_user: Postgres {set(served) - set(merged)} / lake {set(merged) - set(served)}"
    assert ops.query("select user_id, city from warehouse.dim_user where user_id in"
                     " ('USER_0307', 'USER_8001', 'USER_8002') order by 1") == [
        ("USER_0307", "Newtown"), ("USER_8002", None)]


@pytest.mark.slow
def test_a_late_catalog_snapshot_is_flagged_then_restated_for_the_dates_built_before_it_arrived(ops: Ops) -> None:
    """products_S2.json arrives after S2 was built: the next date lands it and names S2, which stops counting as
    published until `restate --catalog` rebuilds it."""
    late_day, next_day = later_days(ops)
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY),
                         "--stop", str(late_day + dt.timedelta(days=1)), LOCAL)
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    products = moved_to_garden(json.loads((ops.incoming / "products" / f"products_{SEED_DAY}.json").read_text()))
    (ops.incoming / "products" / f"products_{late_day}.json").write_text(json.dumps(products, indent=2))
    landing_run = ops.luigi("DailyPipeline", "--date", str(next_day), LOCAL)  # lands the late snapshot
    assert landing_run.returncode == 0, landing_run.stderr[-3000:]
    late = (f"the products snapshot of {late_day} arrived after {late_day} was built, which kept the catalog before"
            f" it; to rebuild and republish the dates it feeds with it, run `python -m pipeline restate --catalog"
            f" products --date {late_day}`")
    assert late in landing_run.stderr, "the land task's warning"
    assert f"late catalog: {late}" in landing_run.stdout, "under the run's summary"

    def snapshots(day: dt.date) -> tuple:
        return ops.query("select products_snapshot_date, users_snapshot_date from warehouse.daily_metrics"
                         " where run_date = %s", [day])[0]

    assert snapshots(late_day) == (SEED_DAY, None) and snapshots(next_day) == (late_day, None)  # no users file
    summary = ops.pipeline("summary", "--date", str(late_day))
    assert summary.returncode == 1 and "published, catalog LATE" in summary.stdout, summary.stdout
    assert f"what to do (late catalog snapshot): {late}" in summary.stdout
    rerun = ops.luigi("DailyPipeline", "--date", str(late_day), LOCAL)
    assert rerun.returncode == 30 and f"CatalogArrivedLate: {late}" in rerun.stderr, rerun.stderr[-3000:]
    assert f"what to do (late catalog snapshot): {late}" in rerun.stdout, "under its summary"

    def category(day: dt.date) -> str:
        rows = pq.read_table(ops.lake / "warehouse" / "dim_product" / f"load_date={day}" / "data.parquet").to_pylist()
        return next(row["category"] for row in rows if row["product_id"] == "PROD_0003")

    assert (category(late_day), category(next_day)) != ("Garden", "Garden"), "built before the file arrived"
    assert category(next_day) == "Garden"
    restated = ops.pipeline("restate", "--catalog", "products", "--date", str(late_day))
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert f"the dates it feeds: {late_day}, {next_day}" in restated.stdout
    assert (category(late_day), category(next_day)) == ("Garden", "Garden")
    assert snapshots(late_day) == (late_day, None)
    assert ops.pipeline("summary", "--start", str(SEED_DAY), "--stop", str(next_day + dt.timedelta(days=1))).returncode == 0
    record = json.loads((ops.lake / "audit" / "restatements" / f"load_date={late_day}" / "restatement.json").read_text())
    assert record["status"] == "published" and "named on the command line" in record["reasons"]["products"]


@pytest.mark.slow
def test_a_late_snapshot_no_run_has_landed_yet_is_restated_all_the_same(ops: Ops) -> None:
    """products_S2.json arrives after the last built date S2 and no later date has run: flagged, and the command
    the flag names lands it for the first time."""
    late_day = later_days(ops)[0]
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY),
                         "--stop", str(late_day + dt.timedelta(days=1)), LOCAL)
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    products = moved_to_garden(json.loads((ops.incoming / "products" / f"products_{SEED_DAY}.json").read_text()))
    (ops.incoming / "products" / f"products_{late_day}.json").write_text(json.dumps(products, indent=2))
    summary = ops.pipeline("summary", "--date", str(late_day))
    command = f"python -m pipeline restate --catalog products --date {late_day}"
    assert summary.returncode == 1 and command in summary.stdout, summary.stdout
    restated = ops.pipeline(*command.split()[3:])
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert f"the dates it feeds: {late_day}" in restated.stdout
    assert ops.query("select category from warehouse.dim_product where product_id = 'PROD_0003'") == [("Garden",)]
    assert ops.pipeline("summary", "--date", str(late_day)).returncode == 0
    record = json.loads((ops.lake / "audit" / "restatements" / f"load_date={late_day}" / "restatement.json").read_text())
    assert "landed for the first time" in record["reasons"]["products"]


@pytest.mark.slow
def test_a_restated_snapshot_whose_date_is_not_a_load_date_replaces_its_audit_rows(ops: Ops) -> None:
    """Only a later date is published: the snapshot's quarantine and reconciliation rows come with it, and again
    (replaced, not kept) when the snapshot is restated."""
    later = later_days(ops)[0]
    assert ops.luigi("DailyPipeline", "--date", str(later), LOCAL).returncode == 0
    audit = ("select raw_count, quarantined_count, (select count(*) from quarantine.bad_records b"
             " where b.source_table = r.source_table and b.load_date = r.load_date) from audit.reconciliation r"
             " where source_table = 'stg_products' and load_date = %s")
    (before,) = ops.query(audit, [SEED_DAY])
    snapshot = ops.incoming / "products" / f"products_{SEED_DAY}.json"
    products = json.loads(snapshot.read_text())
    snapshot.write_text(json.dumps([*products, {**products[0], "product_id": "PROD_9999", "current_price": "free"}]))
    restated = ops.pipeline("restate", "--catalog", "products", "--date", str(SEED_DAY))
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert f"the dates it feeds: {later}" in restated.stdout
    assert ops.query(audit, [SEED_DAY]) == [(before[0] + 1, before[1] + 1, before[2] + 1)], "the new landing's"


@pytest.mark.slow
def test_a_catalog_restatement_whose_snapshot_the_landing_refuses_archives_nothing(ops: Ops) -> None:
    assert ops.luigi("DailyPipeline", *DATE, LOCAL).returncode == 0
    snapshot = ops.incoming / "products" / f"products_{SEED_DAY}.json"
    text = snapshot.read_text()
    snapshot.write_text(text[:len(text) // 2])  # a transfer that stopped halfway
    restated = ops.pipeline("restate", "--catalog", "products", *DATE)
    assert restated.returncode == 30, restated.stderr[-3000:] + restated.stdout[-2000:]
    (line,) = [line for line in restated.stderr.splitlines() if line.startswith("SourceFileInvalid:")]
    assert f"products_{SEED_DAY}.json" in line and line.endswith(
        f"nothing was restated: the products snapshot of {SEED_DAY} stays as it was landed"), restated.stderr[-3000:]
    assert not (ops.lake / "_archive").exists() and not (ops.lake / "audit" / "restatements").exists()
    assert ops.lake_rows("raw", "products") > 0
    assert published(ops) == (20, 60, 1)


@pytest.mark.slow
def test_a_catalog_snapshot_from_the_api_is_fetched_again(ops: Ops) -> None:
    with DummyJsonServer() as server:
        ops.extra_env["ECOMM_PRODUCTS_URL"] = server.url
        first = ops.luigi("DailyPipeline", *DATE, LOCAL)  # the seed day is a Monday: its own snapshot
        assert first.returncode == 0, first.stderr[-3000:]
        fetched = sum(path.startswith("/products?") for path in server.requests)
        restated = ops.pipeline("restate", "--catalog", "products", *DATE)
        assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
        # once by the run that first landed it, once to check it lands before anything is archived, once by the run
        assert sum(path.startswith("/products?") for path in server.requests) == 3 * fetched
    record = json.loads((ops.lake / "audit" / "restatements" / f"load_date={SEED_DAY}" / "restatement.json").read_text())
    assert (record["status"], record["reasons"]) == (
        "published", {"products": f"the products snapshot of {SEED_DAY} is fetched again from {server.url}"})
    assert published(ops) == (20, 60, 1)


@pytest.mark.slow
def test_a_catalog_restatement_that_blocks_a_date_names_that_date_and_its_threshold_option(ops: Ops) -> None:
    """A day without orders, published with --checks-orders-volume-fail-low-ratio 0, is blocked again when a snapshot
    feeding it is restated (restate takes no threshold option): the closing line names that date, not the first one
    fed."""
    later = later_days(ops)[0]
    (ops.incoming / "orders" / str(later) / "orders.json").write_text("[]")
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY), "--stop",
                         str(later + dt.timedelta(days=1)), LOCAL, "--checks-orders-volume-fail-low-ratio", "0")
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    snapshot = ops.incoming / "products" / f"products_{SEED_DAY}.json"
    snapshot.write_text(json.dumps(moved_to_garden(json.loads(snapshot.read_text())), indent=2))
    restated = ops.pipeline("restate", "--catalog", "products", "--date", str(SEED_DAY))
    assert restated.returncode == 30, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert (f"the restatement of the products snapshot of {SEED_DAY} is pending for {later}: do what each row above"
            f" says, then run it again (luigi --module pipeline.tasks DailyPipeline --date {later} --local-scheduler;"
            " a date published with a threshold option, e.g. --checks-orders-volume-fail-low-ratio 0, needs it again)"
            ) in restated.stderr, restated.stderr[-2000:]
    # the blocked date's row: what restates the snapshot again, not `restate --date` (which finds nothing to do)
    assert (f"what to do (gate blocked): read why (`python -m pipeline summary --date {later}` prints each failing"
            f" check's message), fix the file and `python -m pipeline restate --catalog products --date {SEED_DAY}`"
            ) in restated.stdout, restated.stdout[-3000:]


@pytest.mark.slow
def test_an_earlier_products_snapshot_landed_after_later_dates_were_built_flags_them_until_restated(ops: Ops) -> None:
    """Backfilling earlier dates after later ones: each later date's product history lacks the earlier snapshot
    (its orders' as-ordered category is 'Unknown'), so the run that lands it names them, and they stop counting as
    published until `restate --catalog` of it rebuilds them."""
    earlier = SEED_DAY - dt.timedelta(days=1)  # the seed's other day, with no catalog of its own yet
    first = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert first.returncode == 0, first.stderr[-3000:]
    seed_products = ops.incoming / "products" / f"products_{SEED_DAY}.json"
    (ops.incoming / "products" / f"products_{earlier}.json").write_text(seed_products.read_text())
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(earlier),
                         "--stop", str(SEED_DAY + dt.timedelta(days=1)), LOCAL)  # runs the earlier date, lands it
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    late = (f"the products snapshot of {earlier} arrived after {SEED_DAY} was built, which kept the catalog before"
            f" it; to rebuild and republish the dates it feeds with it, run `python -m pipeline restate --catalog"
            f" products --date {earlier}`")
    assert late in backfill.stderr, "the land task's warning"
    assert re.search(rf"{SEED_DAY} .* published, catalog LATE\n +what to do \(late catalog snapshot\): {re.escape(late)}",
                     backfill.stdout), "the later date, under the run's summary: " + backfill.stdout

    def as_ordered() -> set[str]:
        return {category for (category,) in ops.query(
            "select distinct category from marts.category_sales_daily_as_ordered where order_date = %s", [earlier])}

    assert as_ordered() == {"Unknown"}, "the published history is the later date's, built without the snapshot"
    summary = ops.pipeline("summary", "--date", str(SEED_DAY))
    assert summary.returncode == 1 and "published, catalog LATE" in summary.stdout, summary.stdout
    assert f"what to do (late catalog snapshot): {late}" in summary.stdout
    rerun = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert rerun.returncode == 30 and f"CatalogArrivedLate: {late}" in rerun.stderr, rerun.stderr[-3000:]

    restated = ops.pipeline("restate", "--catalog", "products", "--date", str(earlier))
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert f"the dates it feeds: {earlier}, {SEED_DAY}" in restated.stdout
    assert as_ordered() - {"Unknown"}, "the day's orders take their products' categories"
    assert ops.query("select min(effective_from) from warehouse.dim_product_history") == [(earlier,)]
    assert ops.pipeline("summary", "--start", str(earlier), "--stop", str(SEED_DAY + dt.timedelta(days=1))).returncode == 0


def test_a_catalog_restated_before_any_date_it_feeds_was_built_names_the_run_that_lands_it(ops: Ops) -> None:
    """Only the snapshot was landed: nothing to rebuild, and the line names the command that lands the new file."""
    landed = ops.luigi("LandProducts", *DATE, "--local-scheduler")
    assert landed.returncode == 0, landed.stderr[-3000:]
    restated = ops.pipeline("restate", "--catalog", "products", *DATE)
    assert restated.returncode == 0, restated.stderr[-3000:]
    assert ("the dates it feeds: none built yet: the next run of a date it covers lands the new snapshot"
            f" (`luigi --module pipeline.tasks DailyPipeline --date {SEED_DAY} --local-scheduler`)") in restated.stdout, \
        restated.stdout[-2000:]
    daily = ops.luigi("DailyPipeline", *DATE, "--local-scheduler")
    assert daily.returncode == 0, daily.stderr[-3000:]
