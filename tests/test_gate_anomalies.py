"""The gate's rules for plausible-looking wrong days: a file of another date (checks/staging/*.yml).

Real Parquet partitions, real Soda scans (tests/support/gate_day.py), and a day landed from real incoming
files through the pipeline's own code (`run_day`).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline import config
from pipeline.quality import gate
from tests.support import rows
from tests.support.gate_day import (
    DAY,
    D,
    an_order,
    by_name,
    clean_events,
    clean_orders,
    event,
    event_line,
    order,
    outcomes,
    run_day,
    write_day,
)

LATE_ORDERS = ("stg_orders", "share of orders from another business day than the load date")
LATE_EVENTS = ("stg_events", "share of events from another business day than the load date")
NEW_RULES = {LATE_ORDERS, LATE_EVENTS}


# ------------------------------------------------------------------------------------ late rows
def test_an_orders_file_of_another_date_is_blocked(lake_root: Path, incoming: Path, luigi_settings) -> None:
    # the orders file of D is a copy of D - 4's (cp orders/<D-4>/orders.json orders/<D>/): staging keeps
    # every order as a late row of D - 4, so D alone would publish as a day without orders
    earlier = D - dt.timedelta(days=4)
    result = run_day(incoming, D, orders=[an_order(i, day=earlier) for i in range(30)],
                     events=[event_line(i) for i in range(60)])

    assert result.blocked
    assert outcomes(result, "fail") == {LATE_ORDERS}
    late = by_name(result)[LATE_ORDERS]
    assert late.value == "100"
    assert late.message.startswith("fail: measured 100; rule: fail when > 90.0; warn when > 20.0")
    assert "compare it with what the sender says it holds" in late.message
    assert f"restate the date (python -m pipeline restate --date {D})" in late.message
    assert late.message.endswith("rerun the date with --checks-late-fail-pct 100.")
    assert by_name(result)[LATE_EVENTS].outcome == "pass"
    from pipeline.tasks import runbook

    fix = runbook.gate_fix(D, [r.message for r in result.results if r.outcome == "fail"], local_scheduler=True)
    assert "`--checks-late-fail-pct 100`" in fix, fix

    # late deliveries that really are late: allowed for one run, the share still warns
    luigi_settings("checks", late_fail_pct="100")
    result = gate.run_gate(D)
    assert not result.blocked and by_name(result)[LATE_ORDERS].outcome == "warn"


def test_a_day_with_a_few_late_rows_passes(lake_root: Path) -> None:
    # 2 of 40 orders (5 %) and 3 of 60 events (5 %) arrived a day late: normal, nothing to say
    orders = clean_orders(38) + [order(i, order_ts=DAY - dt.timedelta(hours=3, minutes=i)) for i in (38, 39)]
    events = clean_events(57) + [event(i, event_ts=DAY - dt.timedelta(hours=20)) for i in (57, 58, 59)]
    write_day(orders, events)

    result = gate.run_gate(D)

    assert not result.blocked
    checked = by_name(result)
    assert (checked[LATE_ORDERS].outcome, checked[LATE_ORDERS].value) == ("pass", "5")
    assert (checked[LATE_EVENTS].outcome, checked[LATE_EVENTS].value) == ("pass", "5")


def test_a_quarter_of_late_rows_warns(lake_root: Path) -> None:
    orders = clean_orders(30) + [order(i, order_ts=DAY - dt.timedelta(days=1, minutes=i)) for i in range(30, 40)]
    write_day(orders, clean_events())

    result = gate.run_gate(D)

    late = by_name(result)[LATE_ORDERS]
    assert (late.outcome, late.value) == ("warn", "25")
    assert "--checks-late-fail-pct 100" in late.message
    assert not result.blocked


def test_late_rows_are_judged_by_the_business_day(lake_root: Path) -> None:
    # 02:00 UTC on D is 21:00 on D - 1 in New York: on D's business day in UTC, late in New York
    write_day(clean_orders(), clean_events())
    assert by_name(gate.run_gate(D))[LATE_ORDERS].value == "0"
    with rows.model_settings(business_timezone="America/New_York", future_tolerance_hours=24):
        result = gate.run_gate(D)
    before_new_york_midnight = sum(o["order_ts"] < DAY + dt.timedelta(hours=5) for o in clean_orders())
    assert by_name(result)[LATE_ORDERS].value == f"{100.0 * before_new_york_midnight / 20:g}"


# ------------------------------------------------------------------------------------- settings
@pytest.mark.parametrize("settings, refused", [
    ({"late_warn_pct": "50", "late_fail_pct": "40"}, "0 <= late_warn_pct <= late_fail_pct <= 100"),
])
def test_thresholds_that_cannot_mean_anything_are_refused(lake_root: Path, luigi_settings, settings: dict,
                                                          refused: str) -> None:
    luigi_settings("checks", **settings)
    with pytest.raises(config.BadSetting, match=f"\\[checks\\] needs {refused}".replace("(", r"\(")):
        gate.check_settings()


def test_the_late_thresholds_come_from_the_checks_section(lake_root: Path, luigi_settings) -> None:
    assert (gate.gate_variables(D)["late_warn_pct"], gate.gate_variables(D)["late_fail_pct"]) == ("20.0", "90.0")
    luigi_settings("checks", late_warn_pct="2")  # the few-late-rows day of above (5 %) then warns
    orders = clean_orders(38) + [order(i, order_ts=DAY - dt.timedelta(hours=3, minutes=i)) for i in (38, 39)]
    write_day(orders, clean_events())
    assert by_name(gate.run_gate(D))[LATE_ORDERS].outcome == "warn"
