"""The gate's rules for plausible-looking wrong days: a file of another date, prices far from the catalog's,
quantities no shop sells in one line (checks/staging/*.yml, checks/warehouse/fact_orders.yml).

Real Parquet partitions, real Soda scans (tests/support/gate_day.py), and a day landed from real incoming
files through the pipeline's own code (`run_day`).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline import config
from pipeline.quality import gate
from pipeline.transform import staging
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
    run_generated_day,
    write_day,
)

LATE_ORDERS = ("stg_orders", "share of orders from another business day than the load date")
LATE_EVENTS = ("stg_events", "share of events from another business day than the load date")
PRICE_OFF = ("fact_orders", "share of order lines priced far from the catalog price")
LARGE_QUANTITY = ("fact_orders", "order lines with an implausibly large quantity")
NEW_RULES = {LATE_ORDERS, LATE_EVENTS, PRICE_OFF, LARGE_QUANTITY}
# the gate's rules on collapsed duplicates, second order lines and conflicting catalog ids (test_source_loss.py,
# test_catalog_conflicts.py): a generated day's resent rows and same-order conflicts are none of those
DUPLICATE_RULES = {("source_loss", f"share of {source} rows collapsed as exact duplicates")
                   for source in ("orders", "events", "products", "users")}
SECOND_LINES = ("source_loss", "share of orders rows that are another line of an order already kept")
CATALOG_CONFLICTS = {("catalog_snapshots", f"catalog {kind} listed more than once with different values")
                     for kind in ("products", "users")}


# ------------------------------------------------------------------------------------ late rows
def test_an_orders_file_of_another_date_is_blocked(lake_root: Path, incoming: Path, luigi_settings) -> None:
    # the orders file of D is a copy of D - 4's (cp orders/<D-4>/orders.json orders/<D>/): staging keeps
    # every order as a late row of D - 4, so D alone would publish as a day without orders
    # every order of that day, its refunds and cancellations too: those are left out of the share, the paid and
    # pending ones are all late
    earlier = D - dt.timedelta(days=4)
    statuses = ("paid", "pending", "refunded", "paid", "cancelled")
    result = run_day(incoming, D, orders=[an_order(i, day=earlier, status=statuses[i % 5]) for i in range(30)],
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


def test_a_file_of_recent_status_changes_is_not_another_dates(lake_root: Path, incoming: Path) -> None:
    # D's file is a catch-up of refunds and cancellations of D - 4's orders (inside [model] late_window_days),
    # each with its order's original timestamp, plus 3 new orders of D: a status change is never a late row
    earlier = D - dt.timedelta(days=4)
    changes = [an_order(i, day=earlier, status=("refunded", "cancelled")[i % 2]) for i in range(30)]
    result = run_day(incoming, D, orders=[*changes, *(an_order(i, day=D) for i in range(30, 33))],
                     events=[event_line(i) for i in range(60)])

    late = by_name(result)[LATE_ORDERS]
    assert (late.outcome, late.value) == ("pass", "0"), late.message
    assert not result.blocked and LATE_ORDERS not in outcomes(result, "warn")


def test_a_day_with_a_few_late_rows_passes(lake_root: Path) -> None:
    # 2 of 30 new orders (the 10 cancelled rows are status changes, not counted) and 3 of 60 events (5 %)
    # arrived a day late: normal, nothing to say
    orders = clean_orders(38) + [order(i, order_ts=DAY - dt.timedelta(hours=3, minutes=i)) for i in (38, 39)]
    events = clean_events(57) + [event(i, event_ts=DAY - dt.timedelta(hours=20)) for i in (57, 58, 59)]
    write_day(orders, events)

    result = gate.run_gate(D)

    assert not result.blocked
    checked = by_name(result)
    assert (checked[LATE_ORDERS].outcome, checked[LATE_ORDERS].value) == ("pass", "6.6667")
    assert (checked[LATE_EVENTS].outcome, checked[LATE_EVENTS].value) == ("pass", "5")


def test_a_quarter_of_late_rows_warns(lake_root: Path) -> None:
    # 8 of the 30 new orders are late (orders 32 and 36, late too, are cancelled: status changes, not counted)
    orders = clean_orders(30) + [order(i, order_ts=DAY - dt.timedelta(days=1, minutes=i)) for i in range(30, 40)]
    write_day(orders, clean_events())

    result = gate.run_gate(D)

    late = by_name(result)[LATE_ORDERS]
    assert (late.outcome, late.value) == ("warn", "26.6667")
    assert "get the right file and restate the date" in late.message
    assert "--checks-late-fail-pct" not in late.message, "a warning blocks nothing: no option publishes it"
    assert not result.blocked


def test_late_rows_are_judged_by_the_business_day(lake_root: Path) -> None:
    # 02:00 UTC on D is 21:00 on D - 1 in New York: on D's business day in UTC, late in New York
    write_day(clean_orders(), clean_events())
    assert by_name(gate.run_gate(D))[LATE_ORDERS].value == "0"
    with rows.model_settings(business_timezone="America/New_York", future_tolerance_hours=24):
        result = gate.run_gate(D)
    new_orders = [o for o in clean_orders() if o["status"] not in staging.STATUS_CHANGE_STATUSES]
    before_new_york_midnight = sum(o["order_ts"] < DAY + dt.timedelta(hours=5) for o in new_orders)
    assert before_new_york_midnight
    assert by_name(result)[LATE_ORDERS].value == f"{100.0 * before_new_york_midnight / len(new_orders):g}"


# ------------------------------------------------------------------------- prices and quantities
def test_prices_in_cents_warn(lake_root: Path) -> None:
    # the first 10 of 40 order lines priced in cents (x 100); every product's catalog price is 9.99
    orders = [order(i, unit_price=order(i)["unit_price"] * 100 if i < 10 else order(i)["unit_price"])
              for i in range(40)]
    write_day(orders, clean_events())

    result = gate.run_gate(D)

    off = by_name(result)[PRICE_OFF]
    assert (off.outcome, off.value) == ("warn", "25")
    assert off.message.startswith("warn: measured 25; rule: warn when > 1.0")
    assert f"restate the date (python -m pipeline restate --date {D})" in off.message
    assert not result.blocked
    assert outcomes(result, "warn") & NEW_RULES == {PRICE_OFF}


def test_a_price_under_a_tenth_of_the_catalog_warns_but_a_free_line_does_not(lake_root: Path) -> None:
    orders = clean_orders(38) + [order(38, unit_price=Decimal("0.50")), order(39, unit_price=Decimal("0"))]
    write_day(orders, clean_events())

    off = by_name(gate.run_gate(D))[PRICE_OFF]

    assert (off.outcome, off.value) == ("warn", "2.5")  # 1 of 40 lines


def test_a_huge_quantity_warns(lake_root: Path) -> None:
    orders = clean_orders(19) + [order(19, quantity=1_000_000)]
    write_day(orders, clean_events())

    result = gate.run_gate(D)

    large = by_name(result)[LARGE_QUANTITY]
    assert (large.outcome, large.value) == ("warn", "1")
    assert "quantity above 1000" in large.message and "nothing to do: the check only warns" in large.message
    assert not result.blocked
    assert outcomes(result, "warn") & NEW_RULES == {LARGE_QUANTITY}


def test_a_clean_day_passes_every_new_rule(lake_root: Path) -> None:
    write_day(clean_orders(40), clean_events())

    checked = by_name(gate.run_gate(D))

    assert {name: checked[name].outcome for name in NEW_RULES} == dict.fromkeys(NEW_RULES, "pass")


def test_a_generated_day_passes_every_new_rule(lake_root: Path, incoming: Path) -> None:
    result = run_generated_day(incoming, D)

    checked = by_name(result)
    assert float(checked[LATE_ORDERS].value) > 0  # the generator's late records
    assert {name: checked[name].outcome for name in NEW_RULES} == dict.fromkeys(NEW_RULES, "pass")
    assert not result.blocked
    # the generator's exact copies (0.5 % of a day's rows) and an order resent with other content
    # (duplicate_id_conflict: the same product) are neither a changed export nor a second line of an order
    rules = DUPLICATE_RULES | {SECOND_LINES} | CATALOG_CONFLICTS
    assert float(checked[("source_loss", "share of orders rows collapsed as exact duplicates")].value) > 0
    assert {name: checked[name].outcome for name in rules} == dict.fromkeys(rules, "pass")


# ------------------------------------------------------------------------------------- settings
@pytest.mark.parametrize("settings, refused", [
    ({"late_warn_pct": "50", "late_fail_pct": "40"}, "0 <= late_warn_pct <= late_fail_pct <= 100"),
    ({"price_off_catalog_ratio": "1"}, "price_off_catalog_ratio > 1"),
    ({"price_off_catalog_warn_pct": "101"}, "0 <= price_off_catalog_warn_pct <= 100"),
    ({"quantity_warn_max": "0"}, "quantity_warn_max >= 1"),
    ({"duplicate_warn_min_rows": "0"}, "duplicate_warn_min_rows >= 1"),
    ({"catalog_conflict_warn_count": "-1"}, "catalog_conflict_warn_count >= 0"),
])
def test_thresholds_that_cannot_mean_anything_are_refused(lake_root: Path, luigi_settings, settings: dict,
                                                          refused: str) -> None:
    luigi_settings("checks", **settings)
    with pytest.raises(config.BadSetting, match=f"\\[checks\\] needs {refused}".replace("(", r"\(")):
        gate.check_settings()


def test_the_new_thresholds_come_from_the_checks_section(lake_root: Path, luigi_settings) -> None:
    assert {k: v for k, v in gate.gate_variables(D).items() if k.startswith(("late_", "price_", "quantity_"))} == {
        "late_warn_pct": "20.0", "late_fail_pct": "90.0", "price_off_catalog_ratio": "10.0",
        "price_off_catalog_warn_pct": "1.0", "quantity_warn_max": "1000"}
    luigi_settings("checks", quantity_warn_max="5")
    write_day(clean_orders(), clean_events())  # quantities 1..3
    assert by_name(gate.run_gate(D))[LARGE_QUANTITY].outcome == "pass"
    luigi_settings("checks", quantity_warn_max="2")
    assert by_name(gate.run_gate(D))[LARGE_QUANTITY].value == str(sum(o["quantity"] > 2 for o in clean_orders()))


def test_the_late_thresholds_come_from_the_checks_section(lake_root: Path, luigi_settings) -> None:
    assert (gate.gate_variables(D)["late_warn_pct"], gate.gate_variables(D)["late_fail_pct"]) == ("20.0", "90.0")
    luigi_settings("checks", late_warn_pct="2")  # the few-late-rows day of above (5 %) then warns
    orders = clean_orders(38) + [order(i, order_ts=DAY - dt.timedelta(hours=3, minutes=i)) for i in (38, 39)]
    write_day(orders, clean_events())
    assert by_name(gate.run_gate(D))[LATE_ORDERS].outcome == "warn"
