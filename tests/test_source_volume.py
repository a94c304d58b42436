"""The gate's volume check against earlier load dates (checks/audit/source_volume.yml, sql/gate/source_volume.sql).

Real gate runs on tiny lakes. The earlier dates are their audit/reconciliation (and rejected_lines)
partitions, written with the lake contract's schemas, or real days landed and staged by the
pipeline's code; the load date itself is a whole consistent day (tests/support/gate_day.py write_day).
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import lake
from pipeline.quality import gate
from tests.support.gate_day import (
    SCHEMAS,
    D,
    an_order,
    by_name,
    clean_events,
    clean_orders,
    event_line,
    outcomes,
    reject,
    run_day,
    write_day,
)

ORDERS = ("source_volume", "orders received against the median of earlier load dates")
EVENTS = ("source_volume", "events received against the median of earlier load dates")


def earlier(day: dt.date, orders: int, events: int, *, rejected_events: int = 0) -> None:
    """An earlier load date's audit partitions: what each daily source received (raw + rejected)."""
    for source, total, rejected in (("stg_orders", orders, 0), ("stg_events", events, rejected_events)):
        raw = total - rejected
        path = lake.partition_file("audit", "reconciliation", day, source_table=source)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(pa.Table.from_pylist([{
            "source_table": source, "load_date": day, "raw_count": raw, "staged_count": raw,
            "quarantined_count": 0, "duplicate_count": 0, "is_balanced": True,
        }], schema=SCHEMAS[("audit", "reconciliation")]), path)
    if rejected_events:
        path = lake.partition_file("audit", "rejected_lines", day, source_table="events")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(pa.table({"source_file": ["events.csv"] * rejected_events,
                                 "line_number": list(range(2, rejected_events + 2))}), path)


def normal_week(orders: int = 100, events: int = 100) -> None:
    for back in range(1, 8):
        earlier(D - dt.timedelta(days=back), orders, events)


def today(orders_received: int, events_received: int = 100) -> None:
    """D as a whole day: 20 orders and 60 events in its tables, its reconciliation counting every record received
    as staged (as duplicates, most would be above the duplicate share's thresholds)."""
    write_day(clean_orders(), clean_events(), recon={
        "stg_orders": {"raw_count": orders_received, "staged_count": orders_received, "quarantined_count": 0,
                       "duplicate_count": 0},
        "stg_events": {"raw_count": events_received, "staged_count": events_received, "quarantined_count": 0,
                       "duplicate_count": 0},
    })


@pytest.mark.parametrize(("received", "outcome"), [
    (100, "pass"), (60, "pass"), (59, "warn"), (25, "warn"), (24, "fail"), (300, "pass"), (301, "warn"),
])
def test_the_volume_passes_warns_and_fails_at_its_thresholds(lake_root: Path, received: int, outcome: str) -> None:
    # a week of 100 a day; defaults: below 0.6 x the median or above 3 x warns, below 0.25 x fails
    normal_week()
    today(received)

    result = gate.run_gate(D)

    volume = by_name(result)[ORDERS]
    assert (volume.outcome, volume.value, volume.check_type) == (outcome, f"{received / 100:g}", "user-defined")
    assert volume.message.startswith(
        f"stg_orders: {received} records received for 2025-12-14 (raw rows + rejected lines), {received / 100:g} x"
        " the median of 100 over 7 earlier load dates with records (2025-12-07 to 2025-12-13)")
    assert "fail when < 0.25; warn when not between 0.6 and 3.0" in volume.message
    if outcome == "pass":
        assert "restate" not in volume.message
    else:
        assert "get the complete file and restate the date" in volume.message
        # the option that publishes a blocked date only where the check blocked it (a warned date is published)
        assert ("--checks-orders-volume-fail-low-ratio 0" in volume.message) is (outcome == "fail")
    assert by_name(result)[EVENTS].outcome == "pass"
    assert result.blocked is (outcome == "fail")


def test_a_half_delivered_file_after_normal_days_is_caught(lake_root: Path, incoming: Path) -> None:
    """Three real days of 40 orders, then a file cut after 20 (a half delivery): warned; cut after 8: blocked."""
    for back in (3, 2, 1):
        day = D - dt.timedelta(days=back)
        run_day(incoming, day, orders=[an_order(i, day) for i in range(40)],
                events=[event_line(i, day) for i in range(60)], model_and_gate=False)

    result = run_day(incoming, D, orders=[an_order(i) for i in range(20)], events=[event_line(i) for i in range(60)])

    volume = by_name(result)[ORDERS]
    assert (volume.outcome, volume.value) == ("warn", "0.5")
    assert volume.message.startswith(
        "stg_orders: 20 records received for 2025-12-14 (raw rows + rejected lines), 0.5 x the median of 40 over"
        " 3 earlier load dates with records (2025-12-11 to 2025-12-13)")
    assert (by_name(result)[EVENTS].outcome, by_name(result)[EVENTS].value) == ("pass", "1")
    assert not result.blocked

    cut = D + dt.timedelta(days=1)
    result = run_day(incoming, cut, orders=[an_order(i, cut) for i in range(8)],
                     events=[event_line(i, cut) for i in range(60)])
    volume = by_name(result)[ORDERS]
    assert (volume.outcome, volume.value) == ("fail", "0.2")  # median of 40, 40, 40, 20
    assert result.blocked and ORDERS in outcomes(result, "fail")


@pytest.mark.parametrize("history", [0, 1, 2])
def test_without_enough_history_the_check_is_not_evaluated_and_says_so(lake_root: Path, history: int) -> None:
    for back in range(1, history + 1):
        earlier(D - dt.timedelta(days=back), 100, 100)
    today(10)  # a tenth of the usual: would fail with a history

    result = gate.run_gate(D)

    volume = by_name(result)[ORDERS]
    assert (volume.outcome, volume.value) == ("warn", None)  # recorded, not blocking, and not a pass
    known = {0: "no earlier load date with records in the lake",
             1: "1 earlier load date with records (2025-12-13)",
             2: "2 earlier load dates with records (2025-12-12 to 2025-12-13)"}[history]
    assert volume.message == (
        f"not evaluated: stg_orders has {known}, the volume check needs 3 ([checks] volume_min_history) and"
        " applies once they are loaded; 10 records received for 2025-12-14 (raw rows + rejected lines)")
    assert not result.blocked
    assert [f["outcome"] for f in gate.dq_failure_rows(result) if f["check_name"] == ORDERS[1]] == ["warn"]

    earlier(D - dt.timedelta(days=history + 1), 100, 100)  # the third earlier date: now it applies
    if history == 2:
        assert by_name(gate.run_gate(D))[ORDERS].outcome == "fail"


def test_the_verdict_depends_on_earlier_dates_only(lake_root: Path) -> None:
    normal_week()
    today(50)
    first = gate.run_gate(D)
    assert (by_name(first)[ORDERS].outcome, by_name(first)[ORDERS].value) == ("warn", "0.5")

    # later dates (run before or after) and dates older than the window change nothing; neither does a rerun
    earlier(D + dt.timedelta(days=1), 10, 10)
    earlier(D + dt.timedelta(days=2), 100_000, 100_000)
    earlier(D - dt.timedelta(days=8), 1, 1)
    earlier(D - dt.timedelta(days=30), 100_000, 100_000)
    again = gate.run_gate(D)

    assert by_name(again)[ORDERS] == by_name(first)[ORDERS]
    assert by_name(again)[ORDERS].message == by_name(first)[ORDERS].message


def test_one_odd_day_in_the_window_does_not_move_the_median(lake_root: Path) -> None:
    normal_week()
    earlier(D - dt.timedelta(days=2), 5, 100)  # a half-empty day that was let through
    earlier(D - dt.timedelta(days=4), 1_000, 100)  # a promotion
    today(100)

    volume = by_name(gate.run_gate(D))[ORDERS]

    assert (volume.outcome, volume.value) == ("pass", "1")


def test_rejected_lines_count_as_received_today_and_in_the_history(lake_root: Path) -> None:
    """A file of 100 lines is 100 received whether the reader rejected some of them or not."""
    for back in range(1, 4):
        earlier(D - dt.timedelta(days=back), 100, 100, rejected_events=10 * back)
    write_day(clean_orders(), clean_events(), recon={
        "stg_events": {"raw_count": 70, "staged_count": 70, "quarantined_count": 0, "duplicate_count": 0}})
    reject("events", 30)

    volume = by_name(gate.run_gate(D))[EVENTS]

    assert (volume.outcome, volume.value) == ("pass", "1")
    assert "stg_events: 100 records received for 2025-12-14 (raw rows + rejected lines), 1 x the median of 100" in (
        volume.message)


def test_the_window_and_thresholds_come_from_the_checks_section(lake_root: Path, luigi_settings) -> None:
    normal_week()
    earlier(D - dt.timedelta(days=1), 40, 100)
    earlier(D - dt.timedelta(days=2), 40, 100)
    today(40)
    luigi_settings("checks", volume_window="2", volume_min_history="2", volume_warn_low_ratio="0.3")

    volume = by_name(gate.run_gate(D))[ORDERS]

    assert (volume.outcome, volume.value) == ("pass", "1")  # the median of the 2 latest dates only
    assert "over 2 earlier load dates with records (2025-12-12 to 2025-12-13)" in volume.message
    assert "fail when < 0.25; warn when not between 0.3 and 3.0" in volume.message
    for name, value, refused in (
        ("volume_min_history", "3", "volume_min_history <= volume_window"),
        ("volume_min_history", "0", "1 <= volume_min_history"),
        ("volume_fail_low_ratio", "0.5", "volume_fail_low_ratio <= volume_warn_low_ratio"),
        ("volume_warn_high_ratio", "0.9", "1 <= volume_warn_high_ratio"),
    ):
        saved = gate.checks().__getattribute__(name)
        luigi_settings("checks", **{name: value})
        with pytest.raises(ValueError, match=refused):
            gate.gate_variables(D)
        luigi_settings("checks", **{name: str(saved)})


def test_the_history_and_rejected_lines_are_found_on_object_storage(s3_lake) -> None:
    """The gate lists earlier partitions with the lake's own functions: the same on an s3:// lake."""
    from pipeline.lake import sqlrun
    from pipeline.quality import gate_views

    schema = SCHEMAS[("audit", "reconciliation")]
    for back in range(1, 10):
        day = D - dt.timedelta(days=back)
        for source in ("stg_orders", "stg_events"):
            lake.write_table(lake.partition_file("audit", "reconciliation", day, source_table=source), pa.Table.from_pylist(
                [{"source_table": source, "load_date": day, "raw_count": 100, "staged_count": 100,
                  "quarantined_count": 0, "duplicate_count": 0, "is_balanced": True}], schema=schema))
        lake.write_table(lake.partition_file("audit", "rejected_lines", day, source_table="events"),
                         pa.table({"line_number": list(range(back))}))
    lake.write_table(lake.partition_file("audit", "reconciliation", D, source_table="stg_orders"),
                     pa.Table.from_pylist([{"source_table": "stg_orders", "load_date": D, "raw_count": 1,
                                            "staged_count": 1, "quarantined_count": 0, "duplicate_count": 0,
                                            "is_balanced": True}], schema=schema))

    history = gate_views.history_files(D, 7)
    with sqlrun.connect() as con:
        counts = gate_views.rejected_line_counts(con, {D - dt.timedelta(days=2), D - dt.timedelta(days=9), D})

    assert all(path.startswith(s3_lake) for path in history) and len(history) == 14  # 7 dates x 2 sources
    assert {gate_views._partition_date(p) for p in history} == {D - dt.timedelta(days=b) for b in range(1, 8)}
    assert sorted(counts.to_pylist(), key=lambda r: r["load_date"]) == [
        {"load_date": D - dt.timedelta(days=9), "source_table": "events", "rejected_count": 9},
        {"load_date": D - dt.timedelta(days=2), "source_table": "events", "rejected_count": 2},
    ]
