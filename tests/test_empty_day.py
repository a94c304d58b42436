"""A day without records (the shop closed): a complete file that holds none lands 0 rows, the gate blocks it
with what to do, and `--checks-<source>-volume-fail-low-ratio 0` publishes it without holding back the dates after
it, while the other source keeps its volume rule.

Landing is driven directly (pipeline.ingest.landing), the days end to end through the real `luigi`
command, the lake and Postgres (the `ops` fixture); files damaged rather than empty are still refused.
"""
from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline import lake
from pipeline.ingest import landing
from pipeline.quality import gate
from tests.support.files import write
from tests.support.gate_day import an_order, by_name, event_line, run_day

D = dt.date(2025, 12, 15)
HEADER = "event_id,user_id,product_id,event_type,event_ts"


def override(source: str) -> str:
    """The option that publishes a day really without records of `source` (its own volume rule only)."""
    return f"--checks-{source}-volume-fail-low-ratio"



def partition_rows(layer: str, table: str, day: dt.date = D, **keys: str) -> int:
    return duckdb.sql("select count(*) from read_parquet($p)",
                      params={"p": lake.partition_file(layer, table, day, **keys)}).fetchall()[0][0]


# ------------------------------------------------------------------------------------------- landing
@pytest.mark.parametrize(("rel", "content"), [
    (f"orders/{D}/orders.json", b"[]"),
    (f"orders/{D}/orders.json", b"\xef\xbb\xbf[\r\n]\r\n"),
    (f"orders/{D}/orders.json.gz", gzip.compress(b"[]\n")),
    (f"events/{D}/events.csv", (HEADER + "\n").encode()),
    (f"events/{D}/events.csv", (HEADER + "\r\n\r\n").encode()),
], ids=["orders-empty-array", "orders-bom-crlf", "orders-gzip", "events-header-only", "events-header-blank-line"])
def test_a_complete_file_without_records_lands_zero_rows(lake_root, incoming, rel, content):
    source = rel.split("/", 1)[0]
    write(incoming, rel, content)
    manifest = (landing.land_orders if source == "orders" else landing.land_events)(D)
    assert (manifest["rows"], manifest["source_records"], manifest["rejected_count"]) == (0, 0, 0)
    assert partition_rows("raw", source) == 0
    assert partition_rows("audit", "rejected_lines", source_table=source) == 0
    assert landing.read_manifest(source, D) == manifest


@pytest.mark.parametrize(("rel", "content", "fragment"), [
    (f"orders/{D}/orders.json", b"", "the file is empty (0 bytes)"),
    (f"orders/{D}/orders.json", b" \n\t\n", "only blank space"),
    (f"orders/{D}/orders.ndjson", b"\n\n", "only blank space"),
    (f"orders/{D}/orders.json", b'[1, "x", null, [2]]', "none of its 4 record(s) could be landed"),
    (f"orders/{D}/orders.ndjson", b'7\n"x"\n', "none of its 2 record(s) could be landed"),
    (f"events/{D}/events.csv", b"", "the file is empty (0 bytes)"),
    (f"events/{D}/events.csv", b"\n\n", "no header line"),
    (f"events/{D}/events.csv", (HEADER + "\nE1,U1\nE2,U2,P2\n").encode(), "none of its 2 record(s) could be landed"),
], ids=["orders-0-bytes", "orders-blank", "ndjson-blank-lines", "orders-all-rejected", "ndjson-all-rejected",
        "events-0-bytes", "events-blank-lines", "events-all-rejected"])
def test_a_file_without_content_or_with_every_record_rejected_is_still_refused(lake_root, incoming, rel, content,
                                                                               fragment):
    source = rel.split("/", 1)[0]
    path = write(incoming, rel, content)
    with pytest.raises(landing.SourceFileInvalid) as refused:
        (landing.land_orders if source == "orders" else landing.land_events)(D)
    assert str(refused.value).startswith(str(path)) and fragment in str(refused.value), refused.value
    assert not os.path.exists(lake.partition_dir("raw", source, D))
    assert landing.read_manifest(source, D) is None


def test_an_empty_catalog_snapshot_is_still_refused(lake_root, incoming):
    write(incoming, f"products/products_{D}.json", b"[]")
    with pytest.raises(landing.SourceFileInvalid, match="a catalog snapshot cannot be empty"):
        landing.land_catalog("products", D)


# ------------------------------------------------------------------------------------------ the gate
def test_the_first_day_of_a_lake_without_orders_is_blocked_then_published_with_the_override(
        lake_root, incoming, luigi_settings):
    """No history yet (the volume ratio cannot be evaluated): an empty source is judged all the same."""
    result = run_day(incoming, D, orders=[], events=[event_line(i, D) for i in range(60)])
    checks = by_name(result)
    volume = checks[("source_volume", "orders received against the median of earlier load dates")]
    assert result.blocked and (volume.outcome, volume.value) == ("fail", "0")
    assert volume.message.startswith(f"stg_orders: no records received for {D}: its file is complete but holds"
                                     " none (an empty JSON array, a CSV header without rows); no earlier load date")
    assert "--checks-orders-volume-fail-low-ratio 0 to publish it as a day without orders (the volume rule of its" \
           " events still applies)" in volume.message
    assert checks[("stg_orders", "orders volume within the expected daily range")].outcome == "fail"
    loss = checks[("source_loss", "share of orders thrown away (quarantined or rejected)")]
    assert (loss.outcome, loss.value) == ("pass", "0")
    assert loss.message.startswith(f"stg_orders: no records received for {D}, so nothing was thrown away")
    assert result.errored == 0

    luigi_settings("checks", orders_volume_fail_low_ratio="0")
    again = gate.run_gate(D)
    checks = by_name(again)
    assert not again.blocked and again.failed == again.errored == 0
    assert checks[("source_volume", "orders received against the median of earlier load dates")].outcome == "warn"
    assert checks[("stg_orders", "orders volume within the expected daily range")].outcome == "warn"
    fresh = checks[("stg_orders", "newest order_ts is recent at the end of the load date")]
    assert fresh.outcome == "warn" and fresh.message.startswith("not evaluated: stg_orders has no rows")


@pytest.mark.parametrize(("setting", "lifted"), [("events_volume_fail_low_ratio", {"events"}),
                                                 ("orders_volume_fail_low_ratio", {"orders"}),
                                                 ("volume_fail_low_ratio", {"orders", "events"})])
def test_a_source_s_override_lifts_its_own_volume_rule_only(lake_root, incoming, luigi_settings, setting, lifted):
    """A day really without events is published with --checks-events-volume-fail-low-ratio 0; that run's orders keep
    their rule (an orders file cut off the same day still blocks). The setting without a source lifts both."""
    luigi_settings("checks", **{setting: "0"})
    result = run_day(incoming, D, orders=[], events=[])
    checks = by_name(result)
    for source in ("orders", "events"):
        volume = checks[("source_volume", f"{source} received against the median of earlier load dates")]
        row_count = checks[(f"stg_{source}", f"{source} volume within the expected daily range")]
        expected = "warn" if source in lifted else "fail"
        assert (volume.outcome, row_count.outcome) == (expected, expected), (source, volume, row_count)
    assert result.blocked == (lifted != {"orders", "events"})


def test_a_day_with_orders_keeps_its_verdicts(lake_root, incoming, luigi_settings):
    """The override changes nothing for a day that has orders: its volume rule warns below the range as before."""
    luigi_settings("checks", volume_fail_low_ratio="0")
    result = run_day(incoming, D, orders=[an_order(i, D) for i in range(20)], events=[event_line(i, D) for i in range(60)])
    checks = by_name(result)
    assert checks[("stg_orders", "orders volume within the expected daily range")].outcome == "warn"
    fresh = checks[("stg_orders", "newest order_ts is recent at the end of the load date")]
    assert fresh.value is not None and not fresh.message.startswith("not evaluated")
    assert not result.blocked


# ---------------------------------------------------------------------------------------- end to end
FIRST = dt.date(2025, 12, 10)
EMPTY_ORDERS, NEXT, EMPTY_EVENTS = dt.date(2025, 12, 13), dt.date(2025, 12, 14), dt.date(2025, 12, 15)


def dq(ops, day: dt.date) -> dict[str, dict]:
    rows = pq.read_table(str(ops.lake / "audit" / "dq_results" / f"load_date={day}" / "data.parquet")).to_pylist()
    return {row["check_name"]: row for row in rows}


def served(ops, day: dt.date) -> tuple[int, int]:
    """(fact_orders rows, fact_events rows) Postgres serves for the load date."""
    return ops.query("select (select count(*) from warehouse.fact_orders_all where load_date = %(d)s),"
                     " (select count(*) from warehouse.fact_events_all where load_date = %(d)s)", {"d": day})[0]


def assert_blocked_as_empty(ops, day: dt.date, source: str) -> None:
    run = ops.luigi("DailyPipeline", "--date", str(day), "--local-scheduler")
    assert run.returncode == 30, run.stdout[-3000:] + run.stderr[-3000:]
    assert ops.lake_rows("raw", source, day) == 0 and ops.lake_rows("staging", f"stg_{source}", day) == 0
    results = dq(ops, day)
    volume = results[f"{source} received against the median of earlier load dates"]
    assert (volume["outcome"], volume["value"]) == ("fail", "0")
    for fragment in (f"stg_{source}: no records received for {day}", "most often an incomplete export",
                     f"`python -m pipeline restate --date {day}`", f"{override(source)} 0", f"a day without {source}"):
        assert fragment in volume["message"], volume["message"]
    row_count = results[f"{source} volume within the expected daily range"]
    assert row_count["outcome"] == "fail" and f"{override(source)} 0" in row_count["message"]
    # the run's what-to-do: the one option, not "the thresholds of the failing checks that name none"
    assert f"a day that really is unusual: rerun it with `{override(source)} 0`\n" in run.stdout + run.stderr
    assert not [r for r in results.values() if r["outcome"] == "error"], "an empty day must not error a check"
    summary = ops.pipeline("summary", "--date", str(day))
    assert "BLOCKED by the quality gate" in summary.stdout and "no records received" in summary.stdout, summary.stdout


def assert_published_with_override(ops, day: dt.date, source: str) -> None:
    run = ops.luigi("DailyPipeline", "--date", str(day), "--local-scheduler", override(source), "0")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    outcomes = {name: row["outcome"] for name, row in dq(ops, day).items()}
    assert "fail" not in outcomes.values() and "error" not in outcomes.values(), outcomes
    fresh = "newest order_ts is recent at the end of the load date" if source == "orders" else \
        "newest event_ts is recent at the end of the load date"
    assert outcomes[fresh] == "warn"  # not evaluated: no rows, recorded (never a silent pass)
    assert ops.query("select count(*) from audit.publish_log where load_date = %s", [day]) == [(1,)]
    summary = ops.pipeline("summary", "--date", str(day))
    assert summary.returncode == 0 and "published" in summary.stdout and "BLOCKED" not in summary.stdout, \
        summary.stdout


@pytest.mark.slow
def test_an_empty_day_is_blocked_then_published_with_the_override_and_holds_no_date_back(ops):
    shutil.rmtree(ops.incoming)
    ops.generate(FIRST, 6, orders=60, events=200, dirty=0.0)
    first = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(FIRST), "--stop", str(EMPTY_ORDERS),
                      "--local-scheduler")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    (ops.incoming / "orders" / str(EMPTY_ORDERS) / "orders.json").write_text("[]\n")
    (ops.incoming / "events" / str(EMPTY_EVENTS) / "events.csv").write_text(HEADER + "\n")

    # (a) the day without orders lands and stages 0 rows, and the gate blocks it, saying why and what to do
    assert_blocked_as_empty(ops, EMPTY_ORDERS, "orders")
    # the next date is judged (its volume history holds the empty day) and published, though it is blocked
    nxt = ops.luigi("DailyPipeline", "--date", str(NEXT), "--local-scheduler")
    assert nxt.returncode == 0, nxt.stdout[-3000:] + nxt.stderr[-3000:]
    assert "waits for" not in nxt.stdout + nxt.stderr
    assert served(ops, NEXT)[0] == ops.lake_rows("warehouse", "fact_orders", NEXT) > 0

    # (b) the day really had no orders: the override publishes it, 0 orders, its events, no order mart rows
    assert_published_with_override(ops, EMPTY_ORDERS, "orders")
    orders, events = served(ops, EMPTY_ORDERS)
    assert orders == 0 and events == ops.lake_rows("warehouse", "fact_events", EMPTY_ORDERS) > 0
    assert ops.lake_rows("marts", "product_sales_daily", EMPTY_ORDERS) == 0

    # the same for a day without events (a header line and no rows)
    assert_blocked_as_empty(ops, EMPTY_EVENTS, "events")
    assert_published_with_override(ops, EMPTY_EVENTS, "events")
    orders, events = served(ops, EMPTY_EVENTS)
    assert events == 0 and orders == ops.lake_rows("warehouse", "fact_orders", EMPTY_EVENTS) > 0

    # and a later date's gate is not held back by either
    last = ops.luigi("DailyPipeline", "--date", str(FIRST + dt.timedelta(days=5)), "--local-scheduler")
    assert last.returncode == 0, last.stdout[-3000:] + last.stderr[-3000:]
    assert ops.query("select count(*) from audit.publish_log") == [(6,)]
