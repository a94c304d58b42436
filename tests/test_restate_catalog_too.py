"""A date whose daily file and covering catalog snapshot both changed: `restate --date D` refuses before it touches
anything, naming the catalog's restatement, which restates the date's changed file with the dates it feeds.

Real `luigi` and `python -m pipeline` command lines against a fresh database on the session's embedded Postgres,
with the seed fixture days as the incoming files.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.ops import SEED_DAY, Ops
from tests.test_restate import later_days, moved_to_garden


def _lake_files(ops: Ops) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(ops.lake)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in ops.lake.rglob("*") if path.is_file()}


def _served(ops: Ops, day: dt.date) -> tuple:
    """What Postgres serves of the date: its order lines and publishes, and PROD_0003's catalog row."""
    return (ops.query("select (select count(*) from warehouse.fact_orders_all where load_date = %(d)s),"
                      " (select count(*) from audit.publish_log where load_date = %(d)s)", {"d": day})[0],
            ops.query("select category, current_price from warehouse.dim_product where product_id = 'PROD_0003'"))


def _record(ops: Ops, day: dt.date) -> dict:
    return json.loads((ops.lake / "audit" / "restatements" / f"load_date={day}" / "restatement.json").read_text())


@pytest.mark.slow
def test_a_date_whose_covering_catalog_changed_too_is_refused_untouched_then_restated_by_the_commands_named(
        ops: Ops) -> None:
    day = later_days(ops)[0]  # covered by the products snapshot of the seed day
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY - dt.timedelta(days=1)),
                         "--stop", str(day + dt.timedelta(days=1)), "--local-scheduler")
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    orders_file = ops.incoming / "orders" / str(day) / "orders.json"
    orders = json.loads(orders_file.read_text())
    orders_file.write_text(json.dumps(orders + [{**o, "order_id": o["order_id"] + "_B"} for o in orders[:5]]))
    snapshot = ops.incoming / "products" / f"products_{SEED_DAY}.json"
    snapshot.write_text(json.dumps(moved_to_garden(json.loads(snapshot.read_text())), indent=2))
    lake_before, served_before = _lake_files(ops), _served(ops, day)
    assert served_before[0] == (len(orders), 1) and served_before[1] != [("Garden", Decimal("9.99"))]

    catalog = f"python -m pipeline restate --catalog products --date {SEED_DAY}"
    for named in ([], ["--source", "orders"], ["--source", "orders", "--source", "events"]):
        refused = ops.pipeline("restate", "--date", str(day), *named)
        assert refused.returncode == 2, refused.stderr[-3000:] + refused.stdout[-2000:]
        assert len(refused.stderr.strip().splitlines()) == 1 and refused.stderr.startswith(
            f"python -m pipeline restate: error: nothing was restated: a catalog snapshot covering {day} changed"
            f" too, the products snapshot of {SEED_DAY} ({snapshot} changed since it was landed ("), refused.stderr
        assert f"; run `{catalog}`" in refused.stderr, refused.stderr
        assert f"and {day}'s changed orders file with them)" in refused.stderr, refused.stderr
        assert _lake_files(ops) == lake_before, "nothing archived, no pending record, no partition removed"
        assert _served(ops, day) == served_before
    # events named, unchanged: landed again by the date's own restatement, after the catalog's
    commands = re.findall(r"`(python -m pipeline [^`]+)`", refused.stderr)
    assert commands == [catalog, f"python -m pipeline restate --date {day} --source events"], refused.stderr

    first = ops.pipeline(*commands[0].split()[3:])
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-2000:]
    assert f"orders of {day}, a date it feeds, changed too (" in first.stdout, first.stdout[-2000:]
    assert _served(ops, day) == ((len(orders) + 5, 1), [("Garden", Decimal("9.99"))])
    assert _served(ops, SEED_DAY)[0] == (20, 1)
    record = _record(ops, day)
    assert (record["status"], record["sources"], record["snapshots"]) == (
        "published", ["products", "orders"], {"products": str(SEED_DAY)})
    assert "orders.json changed since it was landed" in record["reasons"]["orders"]
    (old,) = (ops.lake / "_archive" / "restated" / f"load_date={day}").glob("restated_at=*/raw/orders/_manifest.json")
    assert json.loads(old.read_text())["rows"] == len(orders)

    second = ops.pipeline(*commands[1].split()[3:])
    assert second.returncode == 0, second.stderr[-3000:] + second.stdout[-2000:]
    assert (_record(ops, day)["status"], _record(ops, day)["sources"]) == ("published", ["events"])
    assert _served(ops, day) == ((len(orders) + 5, 1), [("Garden", Decimal("9.99"))])
    settled = ops.luigi("DailyPipeline", "--date", str(day), "--local-scheduler")
    assert settled.returncode == 0 and "Did not run any tasks" in settled.stderr, settled.stderr[-3000:]
