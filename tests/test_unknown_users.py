"""The gate's referential integrity of users (the seed's "products/users must exist in dimensions"): the share
of a date's order lines and events whose user the users catalog snapshot covering the date does not list
(sql/gate/unknown_users.sql, checks/warehouse/unknown_users.yml, pipeline/quality/gate_views.py).

Real Parquet partitions, real Soda scans (tests/support/gate_day.py), and a generated day through the
pipeline's own landing, staging and models.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import config
from pipeline.quality import gate
from tests.support.gate_day import (
    D,
    by_name,
    clean_events,
    clean_orders,
    event,
    order,
    outcomes,
    run_generated_day,
    write_day,
)

ORDERS = ("unknown_users", "unknown user share of order lines")
EVENTS = ("unknown_users", "unknown user share of events")
ADVICE = ("python -m pipeline restate --catalog users --date <its date>", "--checks-unknown-user-fail-pct 100")


def test_users_the_catalog_does_not_list_warn_with_what_to_do(lake_root: Path) -> None:
    # a reviewer's day: an id no snapshot has, and a real id in lower case (USER_0003 is listed, user_0003 not)
    orders = clean_orders(38) + [order(38, user_id="USER_9999"), order(39, user_id="user_0003")]  # 2 of 40: 5 %
    events = clean_events(60) + [event(60, user_id="user_0003")]  # 1 of 61: 1.64 %
    write_day(orders, events, unlisted_users={"USER_9999", "user_0003"})

    result = gate.run_gate(D)

    assert not result.blocked
    checked = by_name(result)
    assert (checked[ORDERS].outcome, checked[ORDERS].value) == ("warn", "5")
    assert checked[EVENTS].outcome == "warn"
    message = checked[ORDERS].message
    assert message.startswith(f"fact_orders: 2 of the 40 order lines of {D} name a user that the users snapshot of {D}")
    assert "USER_9999" in message and "user_0003" in message and "5 %" in message
    # what to do, without the threshold option that publishes a blocked date (a warned date is published)
    assert ADVICE[0] in message and ADVICE[1] not in message, message
    assert message.endswith("[warn: measured 5; rule: fail when > 99.0; warn when > 1.0]")
    assert "1 of the 61 events" in checked[EVENTS].message and "1.64 %" in checked[EVENTS].message


def test_a_snapshot_that_lists_almost_none_of_the_users_blocks_the_date(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events(), unlisted_users={f"USER_{i:04d}" for i in range(9)})

    result = gate.run_gate(D)

    assert result.blocked
    assert {ORDERS, EVENTS} <= outcomes(result, "fail")
    assert by_name(result)[ORDERS].value == "100"
    from pipeline.tasks import runbook

    fix = runbook.gate_fix(D, [r.message for r in result.results if r.outcome == "fail"], local_scheduler=True)
    assert "`--checks-unknown-user-fail-pct 100`" in fix, fix


def test_before_the_first_users_snapshot_the_share_only_warns(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events(), unlisted_users=None)  # no users snapshot on or before D

    result = gate.run_gate(D)

    assert not result.blocked
    checked = by_name(result)
    assert (checked[ORDERS].outcome, checked[ORDERS].value) == ("warn", "100")
    assert checked[EVENTS].outcome == "warn"
    assert f"no users snapshot lists: there is none on or before {D}" in checked[ORDERS].message
    assert "rule: fail when > 100.0" in checked[ORDERS].message


def test_a_users_share_within_the_settings_passes(lake_root: Path, luigi_settings) -> None:
    luigi_settings("checks", unknown_user_warn_pct="6")
    orders = clean_orders(38) + [order(38, user_id="USER_9999"), order(39, user_id="USER_9999")]  # 5 %
    write_day(orders, clean_events(), unlisted_users={"USER_9999"})

    checked = by_name(gate.run_gate(D))

    assert (checked[ORDERS].outcome, checked[ORDERS].value) == ("pass", "5")
    assert checked[EVENTS].outcome == "pass"


@pytest.mark.parametrize("settings", [{"unknown_user_warn_pct": "50", "unknown_user_fail_pct": "40"},
                                      {"unknown_user_fail_pct": "101"}])
def test_contradicting_thresholds_are_refused(lake_root: Path, luigi_settings, settings: dict) -> None:
    luigi_settings("checks", **settings)
    with pytest.raises(config.BadSetting, match=r"unknown_user_warn_pct <= unknown_user_fail_pct <= 100"):
        gate.check_settings()


def test_a_generated_day_has_no_unknown_user(lake_root: Path, incoming: Path) -> None:
    result = run_generated_day(incoming, D)

    checked = by_name(result)
    assert {name: (checked[name].outcome, checked[name].value) for name in (ORDERS, EVENTS)} == {
        ORDERS: ("pass", "0"), EVENTS: ("pass", "0")}
    assert not {name for name in outcomes(result, "warn") if name[0] == "unknown_users"}
