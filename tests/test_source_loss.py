"""The gate's check on how much of a day was thrown away (checks/audit/source_loss.yml, sql/gate/source_loss.sql).

Real gate runs on tiny lakes: the day's partitions are written with the lake contract's schemas
(tests/support/gate_day.py) with chosen reconciliation counts and rejected lines, or, for the two
headline cases, landed, staged and modelled from real incoming files by the pipeline's own code.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from pipeline import config, lake
from pipeline.lake import views
from pipeline.quality import gate
from pipeline.tasks import summary_checks, summary_inputs
from tests.support.gate_day import (
    D,
    an_order,
    by_name,
    clean_events,
    clean_orders,
    event_line,
    outcomes,
    quarantine,
    reject,
    run_day,
    write,
    write_day,
)
from tests.support.paths import REPO

ORDERS_LOST = ("source_loss", "share of orders thrown away (quarantined or rejected)")
ORDERS_REJECTED = ("source_loss", "share of orders records the reader rejected")
EVENTS_LOST = ("source_loss", "share of events thrown away (quarantined or rejected)")
EVENTS_REJECTED = ("source_loss", "share of events lines the reader rejected")
PRODUCTS_LOST = ("source_loss", "share of products thrown away (quarantined or rejected)")
ORDERS_DUPLICATES = ("source_loss", "share of orders rows collapsed as exact duplicates")
EVENTS_DUPLICATES = ("source_loss", "share of events rows collapsed as exact duplicates")
SECOND_LINES = ("source_loss", "share of orders rows that are another line of an order already kept")


def received(staged: int | None = None, *, total: int = 100, quarantined: int = 0, rejected: int = 0) -> dict:
    """Reconciliation counts of a source that received `total` records, `rejected` of them unreadable lines; the
    raw rows neither staged nor quarantined were collapsed as duplicates (none when `staged` is not given)."""
    raw = total - rejected
    staged = raw - quarantined if staged is None else staged
    return {"raw_count": raw, "staged_count": staged, "quarantined_count": quarantined,
            "duplicate_count": raw - staged - quarantined, "source_records": total, "rejected_count": rejected}


# ------------------------------------------------------------------------------ lost share (orders)
@pytest.mark.parametrize(("quarantined", "outcome"), [(5, "pass"), (6, "warn"), (50, "warn"), (51, "fail")])
def test_the_lost_share_passes_warns_and_fails_at_its_thresholds(lake_root: Path, quarantined: int, outcome: str) -> None:
    # 100 orders received, the others staged; defaults: warn above 5 %, fail above 50 %
    write_day(clean_orders(), clean_events(), recon={"stg_orders": received(quarantined=quarantined)})

    result = gate.run_gate(D)

    lost = by_name(result)[ORDERS_LOST]
    assert (lost.outcome, lost.value, lost.check_type) == (outcome, str(quarantined), "user-defined")
    # a share that warns or fails names the source's top reasons, kept with the result for the summary's line
    reasons = None if outcome == "pass" else f"invalid_status {quarantined} of 100"
    assert lost.message.startswith(
        f"stg_orders: {quarantined} of the 100 records received for {D} (raw rows + rejected lines) were thrown"
        f" away: {quarantined} % ({quarantined} quarantined, 0 rejected lines"
        + (f"; top reasons: {reasons})" if reasons else ")"))
    assert lost.top_reasons == reasons
    assert "fail when > 50.0; warn when > 5.0" in lost.message
    if outcome == "pass":
        assert "audit.bad_records" not in lost.message
    else:  # what to do, with where to look
        assert "See why in the lake's audit.bad_records (source_table stg_orders: reason_code, failing_value)" in lost.message
        # the threshold option publishes a blocked date: a warning blocks nothing (the date publishes)
        assert ("To publish the date as it is, rerun it with --checks-lost-fail-pct 100." in lost.message) \
            is (outcome == "fail"), lost.message
        assert "--source orders. [" in lost.message or outcome == "fail", lost.message
    assert result.blocked is (outcome == "fail")
    assert gate.gate_passed(D) is (outcome != "fail")
    if outcome == "fail":  # named in the exception that stops the pipeline, and in what Postgres receives
        assert f"FAIL source_loss | {ORDERS_LOST[1]} | value 51 | stg_orders: 51 of the 100" in str(
            gate.QualityGateFailed(result))
        (row,) = [f for f in gate.dq_failure_rows(result) if f["check_name"] == ORDERS_LOST[1]]
        assert (row["table_name"], row["outcome"], row["value"]) == ("source_loss", "fail", "51")


# -------------------------------------------------------------------------- rejected share (events)
@pytest.mark.parametrize(("rejected", "outcome"), [(0, "pass"), (1, "warn"), (10, "warn"), (11, "fail")])
def test_the_rejected_share_passes_warns_and_fails_at_its_thresholds(lake_root: Path, rejected: int, outcome: str) -> None:
    # 100 event lines received, `rejected` of them unreadable; defaults: warn above 0 %, fail above 10 %
    write_day(clean_orders(), clean_events(), recon={"stg_events": received(rejected=rejected)})
    reject("events", rejected)

    result = gate.run_gate(D)

    share = by_name(result)[EVENTS_REJECTED]
    assert (share.outcome, share.value) == (outcome, str(rejected))
    assert share.message.startswith(
        f"stg_events: the reader rejected {rejected} of the 100 records received for {D} (raw rows + rejected"
        f" lines): {rejected} %")
    if outcome != "pass":
        assert ("The file is damaged: the lake's audit/rejected_lines of 2025-12-14 (in Postgres"
                " quarantine.rejected_lines, which BI cannot read) lists every line") in share.message
    # rejected lines are thrown away too: the lost share counts them (warns above 5 %)
    lost = by_name(result)[EVENTS_LOST]
    assert (lost.outcome, lost.value) == ("warn" if rejected > 5 else "pass", str(rejected))
    assert result.blocked is (outcome == "fail")


def test_a_share_too_small_for_two_decimals_is_not_shown_as_0(lake_root: Path) -> None:
    # 1 of 20,003 event lines unreadable: 0.005 %, above the warn threshold of 0 %, so not "0 %"
    write_day(clean_orders(), clean_events(), recon={"stg_events": received(total=20_003, rejected=1)})
    reject("events", 1)

    share = by_name(gate.run_gate(D))[EVENTS_REJECTED]
    assert share.outcome == "warn"
    assert share.message.startswith(f"stg_events: the reader rejected 1 of the 20,003 records received for {D}"
                                    " (raw rows + rejected lines): 0.005 %"), share.message


def test_the_denominator_counts_the_rejected_lines(lake_root: Path) -> None:
    """90 of 100 lines unreadable: 10 raw rows, all staged. Against raw alone nothing was lost."""
    write_day(clean_orders(), clean_events(10), recon={"stg_events": received(10, rejected=90)})
    reject("events", 90)

    result = gate.run_gate(D)

    assert (by_name(result)[EVENTS_LOST].outcome, by_name(result)[EVENTS_LOST].value) == ("fail", "90")
    assert (by_name(result)[EVENTS_REJECTED].outcome, by_name(result)[EVENTS_REJECTED].value) == ("fail", "90")
    assert by_name(result)[EVENTS_LOST].message.startswith(
        "stg_events: 90 of the 100 records received for 2025-12-14 (raw rows + rejected lines) were thrown away:"
        " 90 % (0 quarantined, 90 rejected lines)")
    assert result.blocked


def test_quarantined_and_rejected_add_up_to_the_lost_share(lake_root: Path) -> None:
    # 30 quarantined + 30 rejected of 100: neither is most of the day, together they are
    write_day(clean_orders(), clean_events(), recon={"stg_events": received(40, quarantined=30, rejected=30)})
    reject("events", 30)

    result = gate.run_gate(D)

    assert (by_name(result)[EVENTS_LOST].outcome, by_name(result)[EVENTS_LOST].value) == ("fail", "60")
    assert ("(30 quarantined, 30 rejected lines; top reasons: unknown_event_type 30 of 100)"
            in by_name(result)[EVENTS_LOST].message)


def test_catalogs_are_checked_on_their_snapshot_days_only(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events())
    result = gate.run_gate(D)
    products = by_name(result)[PRODUCTS_LOST]
    assert (products.outcome, products.value) == ("pass", "0")
    assert products.message.startswith("stg_products: no delivery for 2025-12-14, so nothing was thrown away")

    # a snapshot whose records were mostly quarantined (e.g. every price malformed) blocks its date
    write("audit", "reconciliation", [{"source_table": "stg_products", "load_date": D, "raw_count": 12,
                                       "staged_count": 2, "quarantined_count": 10, "duplicate_count": 0,
                                       "is_balanced": True}], source_table="stg_products")
    quarantine("stg_products", 10)
    result = gate.run_gate(D)
    products = by_name(result)[PRODUCTS_LOST]
    assert (products.outcome, products.value) == ("fail", "83.3333")
    assert "stg_products: 10 of the 12 records received" in products.message
    assert "python -m pipeline restate --catalog products --date <the snapshot's date>" in products.message


def test_the_thresholds_come_from_the_checks_section(lake_root: Path, luigi_settings) -> None:
    write_day(clean_orders(), clean_events(), recon={"stg_orders": received(quarantined=70)})
    luigi_settings("checks", lost_fail_pct="80")

    result = gate.run_gate(D)

    assert by_name(result)[ORDERS_LOST].outcome == "warn"
    assert "fail when > 80.0; warn when > 5.0" in by_name(result)[ORDERS_LOST].message
    assert gate.gate_variables(D)["lost_fail_pct"] == "80.0"

    for name, value, refused in (("lost_warn_pct", "90", "lost_warn_pct <= lost_fail_pct"),
                                 ("rejected_fail_pct", "101", "rejected_warn_pct <= rejected_fail_pct <= 100"),
                                 ("rejected_warn_pct", "-1", "0 <= rejected_warn_pct")):
        luigi_settings("checks", **{name: value})
        with pytest.raises(ValueError, match=refused):
            gate.run_gate(D)
        luigi_settings("checks", **{name: {"lost_warn_pct": "5", "rejected_fail_pct": "10", "rejected_warn_pct": "0"}[name]})


def test_without_reconciliation_the_views_are_errors_not_passes(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events())
    lake.remove(lake.partition_file("audit", "reconciliation", D, source_table="stg_events"))

    result = gate.run_gate(D)

    assert {("source_loss", "source_loss computed"), ("source_volume", "source_volume computed")} <= outcomes(
        result, "error")
    assert "audit/reconciliation of 2025-12-14, which is missing" in by_name(result)[
        ("source_loss", "source_loss computed")].message


# ------------------------------------------------------------- the headline cases, from real files
def test_ninety_percent_malformed_event_lines_block_the_date(lake_root: Path, incoming: Path) -> None:
    # 200 event lines, 180 of them cut short (two fields of five); the bad lines first, in the middle, last
    good = [event_line(i) for i in range(20)]
    bad = [f"EVT_{i:06d},USER_0001" for i in range(1000, 1180)]
    lines = bad[:60] + good[:10] + bad[60:120] + good[10:] + bad[120:]

    result = run_day(incoming, D, orders=[an_order(i) for i in range(20)], events=lines)

    assert result.blocked and not gate.gate_passed(D)
    lost = by_name(result)[EVENTS_LOST]
    assert (lost.outcome, lost.value) == ("fail", "90")
    # whether landing rejects a cut-short line or staging quarantines it, it is thrown away and counted
    assert lost.message.startswith(
        "stg_events: 180 of the 200 records received for 2025-12-14 (raw rows + rejected lines) were thrown"
        " away: 90 %")
    assert outcomes(result, "fail") <= {EVENTS_LOST, EVENTS_REJECTED}
    # today the reader rejects them: 20 raw rows, all staged; against raw alone nothing looks lost
    (recon,) = lake.read_rows(lake.partition_file("audit", "reconciliation", D, source_table="stg_events"))
    assert (recon["raw_count"], recon["staged_count"], recon["is_balanced"]) == (20, 20, True)
    assert by_name(result)[EVENTS_REJECTED].outcome == "fail"


def test_orders_mostly_in_an_unreadable_timestamp_format_block_the_date(lake_root: Path, incoming: Path) -> None:
    # 200 orders, 180 of them timestamped in epoch microseconds, which staging does not read (epoch
    # seconds and milliseconds it does): quarantined as invalid_timestamp
    micros = int(dt.datetime(2025, 12, 14, 12, tzinfo=dt.timezone.utc).timestamp() * 1_000_000)
    orders = [an_order(i, timestamp=micros + i) if i % 10 else an_order(i) for i in range(200)]

    result = run_day(incoming, D, orders=orders, events=[event_line(i) for i in range(60)])

    assert result.blocked
    assert outcomes(result, "fail") == {ORDERS_LOST}
    assert by_name(result)[ORDERS_REJECTED].value == "0"  # every line was readable: the values were bad
    lost = by_name(result)[ORDERS_LOST]
    assert lost.value == "90"
    assert lost.message.startswith(
        "stg_orders: 180 of the 200 records received for 2025-12-14 (raw rows + rejected lines) were thrown"
        " away: 90 % (180 quarantined, 0 rejected lines; top reasons: invalid_timestamp 180 of 200)")
    assert {r["reason_code"] for r in lake.read_rows(
        lake.partition_file("audit", "bad_records", D, source_table="stg_orders"))} == {"invalid_timestamp"}


# ------------------------------------------------- collapsed duplicates and second lines of an order
@pytest.mark.parametrize(("staged", "outcome"), [(99, "pass"), (98, "warn"), (90, "warn"), (89, "fail")])
def test_the_duplicate_share_passes_warns_and_fails_at_its_thresholds(lake_root: Path, staged: int,
                                                                       outcome: str) -> None:
    # 100 event rows read, 100 - staged collapsed as exact copies; defaults: warn above 1 %, fail above 10 %
    write_day(clean_orders(), clean_events(), recon={"stg_events": received(staged)})

    result = gate.run_gate(D)

    share = by_name(result)[EVENTS_DUPLICATES]
    assert (share.outcome, share.value) == (outcome, str(100 - staged))
    assert share.message.startswith(
        f"stg_events: {100 - staged} of the 100 rows read from the file of {D} were exact copies of another row,"
        f" collapsed into it (not staged): {100 - staged} %")
    assert "fail when > 10.0; warn when > 1.0" in share.message
    assert ("restate --date 2025-12-14 --source events" in share.message) is (outcome != "pass")
    assert ("--checks-duplicate-fail-pct 100" in share.message) is (outcome == "fail")  # the warnings published
    assert by_name(result)[EVENTS_LOST].outcome == "pass"  # the copies are not lost: one of each is staged
    assert result.blocked is (outcome == "fail")


def test_one_resent_row_of_a_small_file_does_not_warn(lake_root: Path, luigi_settings) -> None:
    # 1 of 50 event rows collapsed: 2 %, above duplicate_warn_pct, but one copy is a resend
    write_day(clean_orders(), clean_events(), recon={"stg_events": received(49, total=50)})

    share = by_name(gate.run_gate(D))[EVENTS_DUPLICATES]
    assert (share.outcome, share.value) == ("pass", "2")
    assert share.message.startswith(
        f"stg_events: 1 of the 50 rows read from the file of {D} were exact copies of another row, collapsed into"
        " it (not staged): 2 % (fewer than duplicate_warn_min_rows, 2: a resend, not judged by the warn share)"
        " [pass: measured 2;"), share.message

    luigi_settings("checks", duplicate_warn_min_rows="1")  # every copy judged by the share
    assert by_name(gate.run_gate(D))[EVENTS_DUPLICATES].outcome == "warn"


def test_orders_sent_as_one_line_per_unit_block_the_date(lake_root: Path, incoming: Path, luigi_settings) -> None:
    """Each order of quantity q sent as q identical lines of quantity 1: staged once, its units and revenue a
    q-th; the lost share sees nothing (the copies are duplicates, not quarantined)."""
    orders = [an_order(i, quantity=1) for i in range(150) for _ in range(an_order(i)["quantity"])]  # 1, 2, 3 units
    assert len(orders) == 300

    result = run_day(incoming, D, orders=orders, events=[event_line(i) for i in range(60)])

    assert result.blocked and not gate.gate_passed(D)
    assert outcomes(result, "fail") == {ORDERS_DUPLICATES}
    share = by_name(result)[ORDERS_DUPLICATES]
    assert share.value == "50"
    assert share.message.startswith(
        f"stg_orders: 150 of the 300 rows read from the file of {D} were exact copies of another row, collapsed"
        " into it (not staged): 50 %. Exact copies are not quarantined")
    assert f"See which rows in the lake's raw.orders of {D}" in share.message
    assert "docs/quality-gate.md, When a check fires: the rows whose fields are all equal" in share.message
    # that query, as docs/quality-gate.md gives it: each order's copies, grouped by every field the file sent
    docs = (REPO / "docs" / "quality-gate.md").read_text()
    query = re.search(r'sql\(\\"(select .+? from raw\.orders .+?)\\"\)', docs)
    copies = views.open_lake().sql(query.group(1).replace("2025-12-14", str(D))).fetchall()
    assert (len(copies), sum(row[-1] - 1 for row in copies)) == (100, 150)  # 100 orders of 2 or 3 units: 150 copies
    assert f"python -m pipeline restate --date {D} --source orders" in share.message
    assert share.message.endswith("rerun it with --checks-duplicate-fail-pct 100. [fail: measured 50; rule: fail"
                                  " when > 10.0; warn when > 1.0]"), share.message
    assert (by_name(result)[ORDERS_LOST].outcome, by_name(result)[ORDERS_LOST].value) == ("pass", "0")
    (recon,) = lake.read_rows(lake.partition_file("audit", "reconciliation", D, source_table="stg_orders"))
    assert (recon["raw_count"], recon["staged_count"], recon["duplicate_count"]) == (300, 150, 150)

    luigi_settings("checks", duplicate_fail_pct="100")  # as --checks-duplicate-fail-pct 100 does for one run
    result = gate.run_gate(D)
    assert not result.blocked and by_name(result)[ORDERS_DUPLICATES].outcome == "warn"


def _orders_with_second_lines(orders: int, second_lines: int) -> list[dict]:
    """`orders` orders of one line, the first `second_lines` of them with another line (another product)."""
    first = [an_order(i) for i in range(orders)]
    return first + [an_order(i, product_id=f"PROD_{100 + i:04d}") for i in range(second_lines)]


@pytest.mark.parametrize(("second_lines", "outcome", "value"), [(0, "pass", "0"), (4, "warn", "1.9608"),
                                                                  (5, "fail", "2.439")])
def test_a_second_line_of_an_order_warns_and_a_few_block_the_date(lake_root: Path, incoming: Path,
                                                                 second_lines: int, outcome: str, value: str) -> None:
    # 200 orders; defaults: warn above 0 %, fail above 2 % of the rows read
    result = run_day(incoming, D, orders=_orders_with_second_lines(200, second_lines),
                     events=[event_line(i) for i in range(60)])

    share = by_name(result)[SECOND_LINES]
    assert (share.outcome, share.value) == (outcome, value)
    assert share.message.startswith(
        f"stg_orders: {second_lines} of the {200 + second_lines} rows read from the file of {D} were another line"
        " (another product_id) of an order already kept, quarantined as multiple_order_lines:")
    if outcome != "pass":
        assert "The warehouse holds one row per order (one product)" in share.message
        # as int_duplicates.sql keeps it: the latest order_ts first, the file's later line only between equals
        assert ("the line of each order with the latest timestamp is staged (of equal timestamps, the later line"
                " of the file)") in share.message
        # a warning published the date: no option to publish it
        assert ("--checks-multiple-order-lines-fail-pct 100" in share.message) is (outcome == "fail")
    assert by_name(result)[ORDERS_LOST].outcome == "pass"  # 2.4 % lost: the general share does not see it
    assert result.blocked is (outcome == "fail")


def test_half_the_rows_second_lines_of_orders_block_the_date(lake_root: Path, incoming: Path) -> None:
    """Every order sent as two lines: half the rows are quarantined, exactly at the lost share's fail threshold
    (above 50 %), which let the date through with a warning and half its revenue."""
    result = run_day(incoming, D, orders=_orders_with_second_lines(100, 100), events=[event_line(i) for i in range(60)])

    assert result.blocked
    assert outcomes(result, "fail") == {SECOND_LINES}
    assert (by_name(result)[ORDERS_LOST].outcome, by_name(result)[ORDERS_LOST].value) == ("warn", "50")
    share = by_name(result)[SECOND_LINES]
    assert share.value == "50"
    assert share.message.startswith(f"stg_orders: 100 of the 200 rows read from the file of {D} were another line")
    assert {r["reason_code"] for r in lake.read_rows(
        lake.partition_file("audit", "bad_records", D, source_table="stg_orders"))} == {"multiple_order_lines"}


@pytest.mark.parametrize(("settings", "refused"), [
    ({"duplicate_warn_pct": "20"}, "duplicate_warn_pct <= duplicate_fail_pct"),
    ({"multiple_order_lines_fail_pct": "101"}, "multiple_order_lines_warn_pct <= multiple_order_lines_fail_pct <= 100"),
    ({"multiple_order_lines_warn_pct": "-1"}, "0 <= multiple_order_lines_warn_pct"),
])
def test_the_new_shares_thresholds_are_validated(lake_root: Path, luigi_settings, settings: dict,
                                                 refused: str) -> None:
    luigi_settings("checks", **settings)
    with pytest.raises(config.BadSetting, match=refused):
        gate.check_settings()


# ----------------------------------------------------- why: the top quarantine reasons, in the message
def test_orders_whose_key_was_renamed_fail_naming_the_reason(lake_root: Path, incoming: Path) -> None:
    # the export renamed order_id to Order_ID: every order is quarantined as missing_order_id
    orders = [{("Order_ID" if key == "order_id" else key): value for key, value in an_order(i).items()}
              for i in range(30)]
    # and 1 of 60 events of an unknown type: a loss that passes, whose message reads no reasons
    events = [event_line(i).replace("view_product", "teleport") if i == 0 else event_line(i) for i in range(60)]

    result = run_day(incoming, D, orders=orders, events=events)

    lost = by_name(result)[ORDERS_LOST]
    assert (lost.outcome, lost.value) == ("fail", "100")
    assert lost.message.startswith(
        f"stg_orders: 30 of the 30 records received for {D} (raw rows + rejected lines) were thrown away: 100 %"
        " (30 quarantined, 0 rejected lines; top reasons: missing_order_id 30 of 30; every record lacks order_id and"
        " has Order_ID). See why"), lost.message
    # in the exception that stops the pipeline, and in what Postgres receives
    assert "top reasons: missing_order_id 30 of 30; every record lacks order_id and has Order_ID)" in str(
        gate.QualityGateFailed(result))
    (row,) = [f for f in gate.dq_failure_rows(result) if f["check_name"] == ORDERS_LOST[1]]
    assert "top reasons: missing_order_id 30 of 30; every record lacks order_id and has Order_ID)" in row["message"]
    # and on the run summary's line of the check (kept with the result in audit/dq_results)
    (kept,) = [r for r in summary_inputs.check_results(D) if r["check_name"] == ORDERS_LOST[1]]
    assert summary_checks.line(kept).endswith(
        "(value 100; top reasons: missing_order_id 30 of 30; every record lacks order_id and has Order_ID)")
    events_lost = by_name(result)[EVENTS_LOST]
    assert events_lost.outcome == "pass" and "(1 quarantined, 0 rejected lines)" in events_lost.message


def test_some_orders_with_a_renamed_key_warn_naming_the_key(lake_root: Path, incoming: Path) -> None:
    # 3 of 30 orders name their status "STATUS"; 1 has no user_id (not renamed): 4 of 30 lost, a warning
    orders = [{("STATUS" if key == "status" else key): value for key, value in an_order(i).items()} if i < 3
              else an_order(i, user_id=None) if i == 3 else an_order(i) for i in range(30)]

    result = run_day(incoming, D, orders=orders, events=[event_line(i) for i in range(60)])

    lost = by_name(result)[ORDERS_LOST]
    assert (lost.outcome, lost.value) == ("warn", "13.3333")
    assert ("(4 quarantined, 0 rejected lines; top reasons: invalid_status 3 of 30, missing_user_id 1 of 30; the"
            " records quarantined as invalid_status lack status and have STATUS: 3 of the first 3 read)") \
        in lost.message, lost.message


def test_a_loss_without_a_renamed_key_names_none(lake_root: Path, incoming: Path) -> None:
    orders = [an_order(i, status="teleported") if i < 3 else an_order(i) for i in range(30)]

    result = run_day(incoming, D, orders=orders, events=[event_line(i) for i in range(60)])

    lost = by_name(result)[ORDERS_LOST]
    assert "(3 quarantined, 0 rejected lines; top reasons: invalid_status 3 of 30)" in lost.message, lost.message
    assert lost.top_reasons == "invalid_status 3 of 30" and " lack" not in lost.message, lost.message


def test_the_top_three_reasons_are_named_most_rows_first_and_the_others_counted(lake_root: Path,
                                                                                incoming: Path) -> None:
    # of 40 orders: 12 without status, 8 with a quantity that is no number, 6 with a negative price,
    # 3 without user, 1 without product; 10 good. 30 of 40 thrown away: 75 %, above 50 %
    broken = ([{"status": None}] * 12 + [{"quantity": "many"}] * 8 + [{"price": -1.0}] * 6
              + [{"user_id": None}] * 3 + [{"product_id": None}] + [{}] * 10)
    orders = [an_order(i, **fields) for i, fields in enumerate(broken)]

    result = run_day(incoming, D, orders=orders, events=[event_line(i) for i in range(60)])

    lost = by_name(result)[ORDERS_LOST]
    assert (lost.outcome, lost.value) == ("fail", "75")
    assert ("(30 quarantined, 0 rejected lines; top reasons: invalid_status 12 of 40, invalid_quantity 8 of 40,"
            " negative_price 6 of 40 and 2 other reasons)") in lost.message, lost.message



def test_a_key_renamed_to_the_last_part_of_the_field_is_not_named_as_that_part(lake_root: Path,
                                                                               incoming: Path) -> None:
    # order_id renamed "ID": not order_id written otherwise, and never taken as the field "id" of missing_order_id
    orders = [{("ID" if key == "order_id" else key): value for key, value in an_order(i).items()} for i in range(30)]

    result = run_day(incoming, D, orders=orders, events=[event_line(i) for i in range(60)])

    lost = by_name(result)[ORDERS_LOST]
    assert "top reasons: missing_order_id 30 of 30)" in lost.message, lost.message
    assert " lack" not in lost.message, lost.message


def test_every_record_is_claimed_only_when_every_record_of_the_reason_was_read(lake_root: Path,
                                                                             incoming: Path) -> None:
    # 600 orders without order_id: the first 250 name it Order_ID, the other 350 have no id at all; the first 200
    # read all have Order_ID, but not every record does
    orders = [{("Order_ID" if key == "order_id" else key): value for key, value in an_order(i).items()
               if i < 250 or key != "order_id"} for i in range(600)]

    result = run_day(incoming, D, orders=orders, events=[event_line(i) for i in range(60)])

    lost = by_name(result)[ORDERS_LOST]
    assert ("top reasons: missing_order_id 600 of 600; the records quarantined as missing_order_id lack order_id"
            " and have Order_ID: 200 of the first 200 read)") in lost.message, lost.message
    assert "every record" not in lost.message, lost.message
