"""The quality gate's one reading of a date's quarantine (pipeline.quality.quarantine), and what is kept of it.

- a bad_records partition that is not there counts nothing only when nothing was quarantined (its reconciliation
  says so); one gone while rows were quarantined, or one that cannot be read, is an error of the views it feeds,
  never 0 second lines of an order;
- a loss check's top reasons are kept in audit/dq_results (`top_reasons`), and the run summary's line shows them
  from there, not from the message's text; a file written before the column reads it as NULL.

Real gate runs on days written straight into a lake in tmp_path (tests.support.gate_day).
"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import lake
from pipeline.quality import gate
from pipeline.tasks import summary_checks, summary_inputs
from pipeline.transform import staging
from tests.support.gate_day import D, by_name, clean_events, clean_orders, quarantine, write, write_day

SECOND_LINES = ("source_loss", "share of orders rows that are another line of an order already kept")
ORDERS_LOST = ("source_loss", "share of orders thrown away (quarantined or rejected)")
LOSS_NOT_COMPUTED = ("source_loss", "source_loss computed")
VOLUME_NOT_COMPUTED = ("source_volume", "source_volume computed")
CATALOGS_NOT_COMPUTED = ("catalog_snapshots", "catalog_snapshots computed")


def _orders_bad_records() -> str:
    return lake.partition_file("audit", "bad_records", D, source_table="stg_orders")


def _second_lines_day(second_lines: int) -> None:
    """100 orders read, `second_lines` of them quarantined as another line of an order: above the fail share (2 %)."""
    write_day(clean_orders(), clean_events(), recon={"stg_orders": {
        "raw_count": 100, "staged_count": 100 - second_lines, "quarantined_count": second_lines, "duplicate_count": 0}})
    quarantine("stg_orders", second_lines, "multiple_order_lines")


def test_the_second_lines_are_counted_from_the_dates_quarantine(lake_root: Path) -> None:
    _second_lines_day(10)

    result = gate.run_gate(D)

    assert (by_name(result)[SECOND_LINES].outcome, by_name(result)[SECOND_LINES].value) == ("fail", "10")


def test_a_quarantine_gone_while_rows_were_quarantined_is_an_error_not_zero_second_lines(lake_root: Path) -> None:
    _second_lines_day(10)
    os.remove(_orders_bad_records())  # deleted by hand, a copy that left it out

    result = gate.run_gate(D)

    assert SECOND_LINES not in by_name(result)  # never judged on a 0 that is not known
    error = by_name(result)[LOSS_NOT_COMPUTED]
    assert error.outcome == "error" and result.blocked and not gate.gate_passed(D)
    assert error.message == (
        f"not evaluated: source_loss is computed from the date's quarantine: audit/bad_records of {D} for stg_orders"
        f" is gone ({_orders_bad_records()}), but its audit/reconciliation counts 10 quarantined rows; stage it"
        f" again: python -m pipeline restate --source orders --date {D}")
    assert by_name(result)[VOLUME_NOT_COMPUTED].outcome == "error"  # it reads source_loss's records received


def test_an_unreadable_quarantine_is_an_error(lake_root: Path) -> None:
    _second_lines_day(10)
    with open(_orders_bad_records(), "wb") as broken:  # a file cut short by a full disk: not Parquet
        broken.write(b"PAR1 cut short")

    result = gate.run_gate(D)

    error = by_name(result)[LOSS_NOT_COMPUTED]
    assert error.outcome == "error" and SECOND_LINES not in by_name(result)
    assert error.message.startswith(f"not evaluated: source_loss is computed from the date's quarantine:"
                                    f" audit/bad_records of {D} for stg_orders cannot be read"
                                    f" ({_orders_bad_records()}): "), error.message


def test_no_quarantine_file_where_nothing_was_quarantined_counts_nothing(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events(), recon={"stg_orders": {"quarantined_count": 0, "raw_count": 20}})
    os.remove(_orders_bad_records())

    result = gate.run_gate(D)

    assert (by_name(result)[SECOND_LINES].outcome, by_name(result)[SECOND_LINES].value) == ("pass", "0")
    assert LOSS_NOT_COMPUTED not in by_name(result)


def test_an_unreadable_catalog_quarantine_is_an_error_of_the_catalog_view(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events())
    write("staging", "stg_products", [], staging.STAGING_SCHEMAS["stg_products"])  # the snapshot covering D
    path = lake.partition_file("audit", "bad_records", D, source_table="stg_products")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as broken:
        broken.write(b"not parquet")

    error = by_name(gate.run_gate(D))[CATALOGS_NOT_COMPUTED]

    assert error.outcome == "error"
    assert (f"catalog_snapshots needs the quarantined rows of the catalog snapshots covering {D}: audit/bad_records"
            f" of {D} for stg_products cannot be read ({path})") in error.message, error.message


# ------------------------------------------------------------- the top reasons, kept with the result
def test_the_summary_line_shows_the_reasons_kept_with_the_result(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events(), recon={"stg_orders": {
        "raw_count": 40, "staged_count": 10, "quarantined_count": 30, "duplicate_count": 0}})
    quarantine("stg_orders", 30, "missing_order_id")

    gate.run_gate(D)

    (kept,) = [r for r in summary_inputs.check_results(D) if r["check_name"] == ORDERS_LOST[1]]
    assert kept["top_reasons"] == "missing_order_id 30 of 40"
    assert summary_checks.line(kept) == (f"FAIL source_loss: {ORDERS_LOST[1]} (value 75; top reasons:"
                                         " missing_order_id 30 of 40)")
    # the line reads the stored value, never the message's words
    assert summary_checks.line({**kept, "top_reasons": None}) == f"FAIL source_loss: {ORDERS_LOST[1]} (value 75)"
    assert by_name(gate.load_results(D))[ORDERS_LOST].top_reasons == "missing_order_id 30 of 40"


def test_a_date_gated_before_the_column_still_reads(lake_root: Path) -> None:
    """A dq_results file written without top_reasons: read back (the gate's completion check, the summary) with
    NULL reasons; its messages keep them in words."""
    path = lake.partition_file("audit", "dq_results", D)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    old = pa.schema([field for field in gate.DQ_RESULTS_SCHEMA if field.name != "top_reasons"])
    message = "stg_orders: 30 of the 40 records ... (30 quarantined, 0 rejected lines; top reasons: x 30 of 40)"
    pq.write_table(pa.Table.from_pylist([{
        "load_date": D, "check_name": ORDERS_LOST[1], "table_name": "source_loss", "check_type": "user-defined",
        "outcome": "fail", "value": "75", "message": message, "checked_at": None, "run_id": "r1",
    }], schema=old), path)

    (row,) = summary_inputs.check_results(D)
    assert row["top_reasons"] is None and row["message"] == message
    assert summary_checks.line(row) == f"FAIL source_loss: {ORDERS_LOST[1]} (value 75)"
    loaded = gate.load_results(D)
    assert loaded.results[0].top_reasons is None and loaded.run_id == "r1" and loaded.blocked
    assert not gate.gate_passed(D)
