"""The quality gate and the serving reconciliation: real Parquet partitions, real Soda scans, real Postgres.

Each test writes one small, consistent day into an isolated lake (tests/support/gate_day.py: row
builders, the lake contract's schemas), breaks one thing, runs the gate and looks at the recorded results.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import lake
from pipeline.quality import gate, gate_views, serving_connection, serving_reconciliation
from pipeline.quality.gate import NoChecksParsed, QualityGateFailed
from pipeline.quality.results import ChecksVariableUnknown
from pipeline.quality.serving_reconciliation import ServingMismatch
from pipeline.tasks import runbook
from tests.support import rows
from tests.support.gate_day import (
    DAY,
    SCHEMAS,
    D,
    by_name,
    clean_events,
    clean_orders,
    event,
    order,
    outcomes,
    quarantine,
    write,
    write_day,
)

# the volume checks of a date without enough earlier load dates in the lake (pipeline.quality.gate_views)
NOT_EVALUATED_YET = {
    ("source_volume", "orders received against the median of earlier load dates"),
    ("source_volume", "events received against the median of earlier load dates"),
}


def write_products_snapshot(day: dt.date, products: set[str]) -> None:
    """A staged products snapshot of `day` listing `products` (each with a name, category, brand and price)."""
    from pipeline.transform import staging

    path = lake.partition_file("staging", "stg_products", day)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.Table.from_pylist([
        {"product_id": p, "product_name": p.lower(), "category": "c", "brand": "b", "current_price": Decimal("9.99"),
         "snapshot_date": day, "load_date": day, "_source_file": "x", "_row_number": n}
        for n, p in enumerate(sorted(products), 1)
    ], schema=staging.STAGING_SCHEMAS["stg_products"]), path)


# ------------------------------------------------------------------------------------------- gate
def test_clean_seed_sized_day_passes_with_volume_warnings(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events())

    result = gate.run_gate(D)

    assert not result.blocked and result.failed == 0 and result.errored == 0
    # a fresh lake has no earlier load dates: the volume-against-history checks are not evaluated (warned)
    assert outcomes(result, "warn") == {
        ("stg_orders", "orders volume within the expected daily range"),
        ("stg_events", "events volume within the expected daily range"),
        *NOT_EVALUATED_YET,
    }
    volume = by_name(result)[("stg_orders", "orders volume within the expected daily range")]
    assert (volume.value, volume.check_type) == ("20", "row_count")
    assert "not between 100 and 500000" in volume.message
    assert {r.table_name for r in result.results} == set(gate.GATED_TABLES) | set(gate_views.VIEWS)
    assert result.passed > 60
    result.raise_if_blocked()  # a warning does not block
    assert gate.gate_passed(D)

    # every check is in the lake, with its type and measured value
    recorded = pq.read_table(lake.partition_file("audit", "dq_results", D)).to_pylist()
    assert len(recorded) == len(result.results)
    assert {(r["table_name"], r["check_name"]) for r in recorded} == set(by_name(result))
    assert set(recorded[0]) == {"load_date", "check_name", "table_name", "check_type", "outcome", "value",
                                "message", "checked_at", "run_id", "top_reasons"}
    assert {r["load_date"] for r in recorded} == {D}
    types = {r["check_type"] for r in recorded}
    assert {"schema", "row_count", "duplicate_count", "missing_count", "freshness", "user-defined",
            "failed_rows", "row_count_comparison"} <= types
    assert gate.load_results(D).warned == 4

    failures = gate.dq_failure_rows(result)
    assert [f["outcome"] for f in failures] == ["warn"] * 4
    assert set(failures[0]) == {"run_date", "check_name", "table_name", "check_type", "outcome", "value", "message",
                                "checked_at", "run_id"}
    assert {f["checked_at"] for f in failures} == {result.checked_at}
    assert failures[0]["run_date"] == D


def test_duplicate_ids_fail_and_the_exception_lists_every_failed_check(lake_root: Path) -> None:
    orders = clean_orders() + [order(3, order_ts=DAY + dt.timedelta(hours=23))]
    events = clean_events() + [event(5)]
    write_day(orders, events)

    result = gate.run_gate(D)

    assert result.blocked
    # the facts hold the staged rows in place, so the staging checks are the ones that see the repeat
    assert outcomes(result, "fail") == {("stg_orders", "no duplicate order_id"), ("stg_events", "no duplicate event_id")}
    assert by_name(result)[("stg_orders", "no duplicate order_id")].value == "1"
    with pytest.raises(QualityGateFailed) as raised:
        result.raise_if_blocked()
    lines = str(raised.value).splitlines()
    # the first line (a failure e-mail's and luigid's) names the checks; what to do is the runbook's (restate)
    assert lines[0].startswith(f"the quality gate blocked {D}: 2 failed, 0 errored (FAIL stg_")
    assert "FAIL stg_orders | no duplicate order_id" in lines[0] and "FAIL stg_events | no duplicate event_id" in lines[0]
    assert "rerun" not in lines[0]
    assert "FAIL stg_orders | no duplicate order_id | value 1 |" in str(raised.value)
    assert "FAIL stg_events | no duplicate event_id | value 1 |" in str(raised.value)
    assert len(lines) == 1 + 2
    assert raised.value.result is result
    assert not gate.gate_passed(D)
    assert {f["outcome"] for f in gate.dq_failure_rows(result)} == {"warn", "fail"}


FACT_IDS_IN_PLACE = {
    "fact_orders": "no duplicate order_id (each row's order_id is stg_orders' at the same position)",
    "fact_events": "no duplicate event_id (each row's event_id is stg_events' at the same position)",
}


@pytest.mark.parametrize("table", sorted(FACT_IDS_IN_PLACE))
def test_a_fact_that_repeats_a_staged_row_fails_its_duplicate_check(lake_root: Path, table: str) -> None:
    """The facts' ids are checked against staging's, row by row: a row a bad model repeats is caught."""
    write_day(clean_orders(), clean_events())
    path = lake.partition_file("warehouse", table, D)
    data = pq.read_table(path)
    pq.write_table(pa.concat_tables([data.slice(0, 2), data.slice(1)]), path)  # row 1 twice, the rest shifted

    result = gate.run_gate(D)

    assert result.blocked
    failed = by_name(result)[(table, FACT_IDS_IN_PLACE[table])]
    assert failed.outcome == "fail" and int(failed.value) == data.num_rows - 1  # from the repeat on, each row differs
    assert (table, "one fact row per staged " + table.removeprefix("fact_").removesuffix("s")) in outcomes(result, "fail")


@pytest.mark.parametrize("table", sorted(FACT_IDS_IN_PLACE))
def test_a_fact_in_another_order_than_staging_fails(lake_root: Path, table: str) -> None:
    """Same rows, another order: the check proves uniqueness only for the staged order, so it blocks.

    The models keep staging's row order (single-table selects, no sort); one that sorted its rows
    would have to check its ids with duplicate_count again (checks/warehouse/).
    """
    write_day(clean_orders(), clean_events())
    path = lake.partition_file("warehouse", table, D)
    data = pq.read_table(path)
    pq.write_table(pa.concat_tables([data.slice(1), data.slice(0, 1)]), path)

    result = gate.run_gate(D)

    assert outcomes(result, "fail") == {(table, FACT_IDS_IN_PLACE[table])}


def test_a_mart_that_disagrees_with_its_facts_fails(lake_root: Path) -> None:
    """The marts' partitions are gated with the facts they count (checks/marts/)."""
    write_day(clean_orders(), clean_events())
    for table in ("product_sales_daily", "user_activity_daily"):  # a row counted twice, as a bad model would
        path = lake.partition_file("marts", table, D)
        data = pq.read_table(path)
        pq.write_table(pa.concat_tables([data, data.slice(0, 1)]), path)

    result = gate.run_gate(D)

    assert result.blocked
    assert outcomes(result, "fail") == {
        ("product_sales_daily", "one row per order date and product"),
        ("product_sales_daily", "every order of the date is counted once (orders and revenue equal fact_orders')"),
        ("user_activity_daily", "one row per event date and user"),
        ("user_activity_daily", "every event of the date is counted once (events equal fact_events')"),
    }
    assert not {name for name, _ in outcomes(result, "error")} & {"product_sales_daily", "user_activity_daily",
                                                                   "customer_orders_daily", "complete_days"}


def test_future_timestamp_fails(lake_root: Path) -> None:
    # The latest instant staging accepts: end of day + 2 h ([model] future_tolerance_hours), or the
    # end of the day at UTC-14:00 (an order written with the load date in the westernmost offset is
    # not from the future), 14:00 UTC the next day; 15 h past midnight is beyond both.
    orders = clean_orders(19) + [order(19, order_ts=DAY + dt.timedelta(days=1, hours=15))]
    write_day(orders, clean_events())

    result = gate.run_gate(D)

    name = "no order_ts beyond the end of the load date plus tolerance"
    assert outcomes(result, "fail") == {("stg_orders", name), ("fact_orders", name)}
    assert by_name(result)[("stg_orders", name)].message.endswith(
        "future_order_ts_count = count(case when order_ts > timestamp '2025-12-15 14:00:00' then 1 end)")


def test_a_day_inside_the_tolerance_passes(lake_root: Path) -> None:
    orders = clean_orders(19) + [order(19, order_ts=DAY + dt.timedelta(days=1, hours=1))]
    write_day(orders, clean_events())

    assert not gate.run_gate(D).blocked


def test_unknown_product_share_between_warn_and_fail_only_warns(lake_root: Path) -> None:
    # 1 of 40 order lines (2.5 %) names a product the catalog lacks: above 1 %, below the fail level
    orders = clean_orders(39) + [order(39, product_id="PROD_9999")]
    write_day(orders, clean_events(), unknown={"PROD_9999"})
    week_before = DAY.date() - dt.timedelta(days=6)  # the weekly products snapshot the date's models read
    write_products_snapshot(week_before, {r["product_id"] for r in orders + clean_events()} - {"PROD_9999", None})

    result = gate.run_gate(D)

    share = by_name(result)[("fact_orders", "unknown product share of order lines")]
    assert (share.outcome, share.value, share.check_type) == ("warn", "2.5", "user-defined")
    assert not result.blocked
    assert gate.gate_passed(D)
    # the message names the unknown product, so the reader sees whether the catalog or the file is wrong, and the
    # snapshot's date, which `restate --catalog products --date <its date>` needs
    assert share.message.startswith(
        f"fact_orders: 1 of the 40 order lines of {D} name a product that the products snapshot of {week_before}"
        f" (the latest on or before {D}) does not list: 2.5 % (1 product: PROD_9999). The unknown products are kept")
    assert "A product id the sender changed" in share.message
    assert share.message.endswith("[warn: measured 2.5; rule: fail when > 99.0; warn when > 1.0]")


def test_the_unknown_product_message_names_the_most_named_products_first(lake_root: Path) -> None:
    unknown = ["PROD_0089", "prod_0089", "PROD_X1", "PROD_X2", "PROD_X3", "PROD_X4"]
    orders = clean_orders(30) + [order(30 + n, product_id=product_id)
                                 for n, product_id in enumerate(unknown + ["prod_0089", "prod_0089", "PROD_X4"])]
    events = clean_events() + [event(60, product_id="PROD_X9", event_type="purchase")]
    write_day(orders, events, unknown=set(unknown) | {"PROD_X9"})

    checked = by_name(gate.run_gate(D))

    orders_share = checked[("fact_orders", "unknown product share of order lines")]
    assert orders_share.message.startswith(
        f"fact_orders: 9 of the 39 order lines of {D} name a product that the products snapshot covering {D} does not"
        " list: 23.08 % (6 products: prod_0089, PROD_X4, PROD_0089, PROD_X1, PROD_X2, ...). ")
    events_share = checked[("fact_events", "unknown product share of events with a product")]
    assert events_share.message.startswith("fact_events: 1 of the ") and "(1 product: PROD_X9)" in events_share.message


def test_unknown_product_share_above_fail_blocks(lake_root: Path, luigi_settings) -> None:
    # with [checks] unknown_product_fail_pct = 5:
    # events: 2 of the 42 events with a product (4.76 %) -> warn; orders: 3 of 40 (7.5 %) -> fail
    luigi_settings("checks", unknown_product_fail_pct="5")
    orders = clean_orders(37) + [order(i, product_id="PROD_9999") for i in (37, 38, 39)]
    events = clean_events() + [event(i, product_id="PROD_9999", event_type="purchase") for i in (60, 61)]
    write_day(orders, events, unknown={"PROD_9999"})

    result = gate.run_gate(D)

    assert outcomes(result, "fail") == {("fact_orders", "unknown product share of order lines")}
    events_share = by_name(result)[("fact_events", "unknown product share of events with a product")]
    assert (events_share.outcome, events_share.value) == ("warn", "4.7619")
    assert result.blocked and not gate.gate_passed(D)
    # what to do is in the message, the threshold's option named, so the run's what-to-do names it too
    share = by_name(result)[("fact_orders", "unknown product share of order lines")]
    assert share.message.startswith(f"fact_orders: 3 of the 40 order lines of {D} name a product") and (
        "rerun it with --checks-unknown-product-fail-pct 100. [fail: measured 7.5; rule: ") in share.message
    assert f"the products snapshot covering {D} does not list: 7.5 % (1 product: PROD_9999)" in share.message
    from pipeline.tasks import runbook

    fix = runbook.gate_fix(D, [r.message for r in result.results if r.outcome == "fail"], local_scheduler=True)
    assert "`--checks-unknown-product-fail-pct 100`" in fix, fix


def test_before_the_first_catalog_snapshot_unknown_products_only_warn(lake_root: Path) -> None:
    orders, events = clean_orders(), clean_events()
    write_day(orders, events, unknown={r["product_id"] for r in orders + events if r["product_id"]})

    result = gate.run_gate(D)

    assert not result.blocked
    assert {
        ("dim_product", "a product catalog snapshot covers the load date"),
        ("fact_orders", "unknown product share of order lines"),
        ("fact_events", "unknown product share of events with a product"),
    } <= outcomes(result, "warn")
    share = by_name(result)[("fact_orders", "unknown product share of order lines")]
    assert share.value == "100"
    # no snapshot to name: the message says there is none, not that one "does not list" the products
    assert share.message.startswith(
        f"fact_orders: 20 of the 20 order lines of {D} name a product no products snapshot lists: there is none on"
        f" or before {D}, so every product is unknown and the share cannot block the date (")


def test_seed_format_days_through_the_real_models(
    lake_root: Path, seed_incoming: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed system's own two days, landed, staged and modelled by the pipeline's code, then gated."""
    from pipeline.ingest import landing
    from pipeline.transform import marts, staging, warehouse

    monkeypatch.delenv("ECOMM_PRODUCTS_URL", raising=False)
    monkeypatch.delenv("ECOMM_USERS_URL", raising=False)
    results = {}
    for day in (dt.date(2025, 12, 14), dt.date(2025, 12, 15)):
        landing.land_orders(day)
        landing.land_events(day)
        for kind in ("products", "users"):
            landing.land_catalog(kind, day)
        for source in staging.SOURCES:
            staging.stage(source, day)
        for table in warehouse.TABLES:
            warehouse.build(table, day)
        for table in marts.LOAD_DATE_MARTS:
            marts.build(table, day)
        results[day] = gate.run_gate(day)

    # 2025-12-14: before the first (Monday) catalog snapshot; 20 orders, 60 events -> publishes, warned
    first = results[dt.date(2025, 12, 14)]
    assert not first.blocked and first.errored == 0
    assert {
        ("stg_orders", "orders volume within the expected daily range"),
        ("stg_events", "events volume within the expected daily range"),
        ("dim_product", "a product catalog snapshot covers the load date"),
    } <= outcomes(first, "warn")
    # 2025-12-15: the fixture's catalog lists 12 products while the orders name 100: 85 % of the order
    # lines are unknown: above the warn level, below the default fail level (99 %), so it publishes
    second = results[dt.date(2025, 12, 15)]
    assert not second.blocked and second.errored == 0
    assert {
        ("fact_orders", "unknown product share of order lines"),
        ("fact_events", "unknown product share of events with a product"),
    } <= outcomes(second, "warn")
    assert by_name(second)[("fact_orders", "unknown product share of order lines")].value == "85"


def test_reconciliation_imbalance_fails(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events(),
              recon={"stg_events": {"raw_count": 70, "is_balanced": False, "source_records": 71}})

    result = gate.run_gate(D)

    assert outcomes(result, "fail") == {
        ("reconciliation", "raw = staged + quarantined + duplicates for every source")
    }
    assert by_name(result)[("reconciliation", "raw = staged + quarantined + duplicates for every source")].value == "1"


@pytest.mark.parametrize("source_records", [61, 64, None], ids=["a-record-too-many", "a-record-lost", "not-counted"])
def test_file_records_not_landed_or_rejected_fail(lake_root: Path, source_records: int | None) -> None:
    """source_records = raw + rejected, recomputed by the gate: a line the reader swallowed is caught here too."""
    write_day(clean_orders(), clean_events(), recon={"stg_events": {"source_records": source_records}})

    result = gate.run_gate(D)

    name = ("reconciliation", "the file's records = raw + rejected for every source")
    assert outcomes(result, "fail") == {name}
    assert by_name(result)[name].value == "1"


def test_catalog_snapshot_reconciliation_is_included_when_present(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events())
    write("audit", "reconciliation", [{
        "source_table": "stg_products", "load_date": D, "raw_count": 5, "staged_count": 5,
        "quarantined_count": 1, "duplicate_count": 0, "is_balanced": True,  # 5 != 5 + 1 + 0
        "source_records": 5, "rejected_count": 0,
    }], source_table="stg_products")
    quarantine("stg_products", 1)

    result = gate.run_gate(D)

    assert outcomes(result, "fail") == {
        ("reconciliation", "raw = staged + quarantined + duplicates for every source")
    }


def test_missing_column_fails_the_schema_check(lake_root: Path) -> None:
    schema = SCHEMAS[("staging", "stg_orders")]
    write_day(clean_orders(), clean_events(), stg_orders_schema=schema.remove(schema.get_field_index("status")))

    result = gate.run_gate(D)

    schema_check = by_name(result)[("stg_orders", "stg_orders has the contract columns and types")]
    assert (schema_check.outcome, schema_check.check_type) == ("fail", "schema")
    assert schema_check.value == "missing columns: status"
    assert result.blocked
    # the checks that read the missing column could not be evaluated: errors, never passes
    assert by_name(result)[("stg_orders", "status is never missing")].outcome == "error"


def test_wrong_column_type_fails_the_schema_check(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events())
    rows = pq.read_table(lake.partition_file("warehouse", "fact_orders", D)).to_pylist()
    schema = SCHEMAS[("warehouse", "fact_orders")]
    schema = schema.set(schema.get_field_index("revenue"), pa.field("revenue", pa.float64()))
    write("warehouse", "fact_orders", [{**r, "revenue": float(r["revenue"])} for r in rows], schema)

    result = gate.run_gate(D)

    schema_check = by_name(result)[("fact_orders", "fact_orders has the contract columns and types")]
    assert schema_check.outcome == "fail"
    assert schema_check.value == "revenue is double (expected decimal(18,2))"


def test_missing_partition_is_an_error_that_blocks(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events())
    os.remove(lake.partition_file("warehouse", "dim_product", D))

    result = gate.run_gate(D)

    missing = by_name(result)[("dim_product", "dim_product partition exists")]
    assert (missing.outcome, missing.check_type) == ("error", "partition")
    assert result.blocked and result.errored >= 1
    assert "ERROR dim_product | dim_product partition exists | value -" in str(QualityGateFailed(result))
    # the lake's error, not the checks file's: the date's fix, not "fix the checks file"
    said = runbook.explain("QualityGate", D, QualityGateFailed(result), local_scheduler=True).splitlines()[1]
    assert "checks file" not in said and said.startswith("What to do (gate blocked): read why"), said


def test_a_checks_file_without_checks_is_an_error(lake_root: Path, tmp_path: Path) -> None:
    write_day(clean_orders(), clean_events())
    root = tmp_path / "checks"
    shutil.copytree(gate.checks_dir(), root)
    (root / "warehouse" / "dim_user.yml").write_text("# nothing here yet\nchecks for dim_user:\n")

    with pytest.raises(NoChecksParsed, match="dim_user.yml parsed to zero checks"):
        gate.run_gate(D, checks_root=root)

    (root / "warehouse" / "dim_user.yml").unlink()
    with pytest.raises(NoChecksParsed, match="does not exist"):
        gate.run_gate(D, checks_root=root)
    assert not gate.gate_passed(D)

    # one check Soda cannot parse beside a good one: the scan errors, and the error blocks
    (root / "warehouse" / "dim_user.yml").write_text(
        "checks for dim_user:\n  - row_count > 0:\n      name: has rows\n  - row_count >>> 0\n")
    result = gate.run_gate(D, checks_root=root)
    scan_error = by_name(result)[("dim_user", "scan of dim_user.yml")]
    assert (scan_error.outcome, scan_error.check_type) == ("error", "scan")
    assert 'Invalid check "row_count >>> 0"' in scan_error.message
    assert by_name(result)[("dim_user", "has rows")].outcome == "pass"
    assert result.blocked and not gate.gate_passed(D)


def test_a_checks_file_using_a_variable_no_setting_gives_is_refused_by_name(lake_root: Path, tmp_path: Path) -> None:
    """Soda renders an unknown `${name}` as nothing: `row_count < ` broke the table's query, and every check of the
    table errored with no word of the misspelt name. The gate refuses the file, naming it; a comment is not read."""
    write_day(clean_orders(), clean_events())
    root = tmp_path / "checks"
    shutil.copytree(gate.checks_dir(), root)
    dim_user = root / "warehouse" / "dim_user.yml"
    dim_user.write_text(dim_user.read_text(encoding="utf-8") + "  # ${not_read} in a comment\n"
                        "  - row_count < ${orders_max_rowz}:\n      name: not too many\n", encoding="utf-8")

    with pytest.raises(ChecksVariableUnknown, match=r"dim_user.yml uses \$\{orders_max_rowz\}, which no setting") as no:
        gate.run_gate(D, checks_root=root)
    assert "orders_max_rows" in str(no.value) and "not_read" not in str(no.value)
    assert runbook.remedy_for(no.value).kind == "checks file"
    assert not gate.gate_passed(D)


def test_checks_that_could_not_run_are_told_to_fix_the_checks_file_not_the_data(lake_root: Path,
                                                                               tmp_path: Path) -> None:
    """A misspelt column errors every check of its table (one query per table): the what-to-do was the data's, "fix
    the file and restate the date", which restates nothing wrong. It says the checks could not run and where."""
    write_day(clean_orders(), clean_events())
    root = tmp_path / "checks"
    shutil.copytree(gate.checks_dir(), root)
    dim_user = root / "warehouse" / "dim_user.yml"
    dim_user.write_text(dim_user.read_text(encoding="utf-8") + "  - missing_count(user_idd) = 0\n", encoding="utf-8")

    result = gate.run_gate(D, checks_root=root)
    blocking = [r for r in result.results if r.outcome in ("fail", "error")]
    assert blocking and {r.outcome for r in blocking} == {"error"}, blocking
    assert any("user_idd" in (r.message or "") for r in blocking), "an errored check says why"
    said = runbook.explain("QualityGate", D, QualityGateFailed(result), local_scheduler=True).splitlines()[1]
    assert said.startswith("What to do (gate blocked): the failing checks could not run, so they judged nothing"), said
    assert "is fixed in that file (checks/), then `luigi --module pipeline.tasks DailyPipeline --date" in said, said
    assert "restate" not in said, said

    # beside a check that failed on the data, the data's fix stands and the errored ones get theirs
    mixed = runbook.gate_fix(D, ["fail: measured 75; ... rerun it with --checks-lost-fail-pct 100.",
                                 "not evaluated: Binder Error"], errored=1, local_scheduler=True)
    assert "`--checks-lost-fail-pct 100`" in mixed and "; the 1 that errored could not run, so those judged" in mixed
    assert mixed.endswith("(checks/), then run the date again"), mixed


def test_hostile_load_date_is_rejected_before_any_scan(lake_root: Path) -> None:
    hostile = "2025-12-13'; drop table x;--"
    for call in (gate.run_gate, gate.gate_variables, gate.gate_passed,
                 lambda d: serving_reconciliation.reconcile_serving(d, lake_figures={}, dsn="host=/nowhere")):
        with pytest.raises(ValueError, match="not a date"):
            call(hostile)
    assert list(lake_root.iterdir()) == []  # nothing was registered, scanned or written


def test_stale_day_warns_on_freshness(lake_root: Path, luigi_settings) -> None:
    # every order of the file is from two days before the load date (a replayed file): the freshness check
    # warns, saying what to do; the share of late rows (100 %) blocks the date, unless that is allowed
    orders = [order(i, order_ts=DAY - dt.timedelta(days=2) + dt.timedelta(minutes=i)) for i in range(20)]
    write_day(orders, clean_events())

    result = gate.run_gate(D)

    fresh = by_name(result)[("stg_orders", "newest order_ts is recent at the end of the load date")]
    assert (fresh.outcome, fresh.check_type) == ("warn", "freshness")
    assert fresh.value.startswith("2 days, 23:41:00")
    assert f"restate the date (python -m pipeline restate --date {D})" in fresh.message
    assert outcomes(result, "fail") == {("stg_orders", "share of orders from another business day than the load date")}

    luigi_settings("checks", late_fail_pct="100")
    result = gate.run_gate(D)
    assert by_name(result)[("stg_orders", "newest order_ts is recent at the end of the load date")].outcome == "warn"
    assert not result.blocked


def test_gate_variables_come_from_config(lake_root: Path) -> None:
    variables = gate.gate_variables("2025-12-14")
    assert variables["load_date"] == "2025-12-14"
    assert variables["NOW"] == "2025-12-15T00:00:00"
    assert variables["business_timezone"] == "UTC"
    assert variables["future_limit_ts"] == "2025-12-15 14:00:00"  # the end of the day at UTC-14:00
    assert (variables["orders_min_rows"], variables["events_max_rows"]) == ("100", "2000000")
    assert (variables["unknown_product_warn_pct"], variables["unknown_product_fail_pct"]) == ("1.0", "99.0")
    assert variables["freshness_warn"] == "24h"


def test_gate_variables_follow_the_business_time_zone(lake_root: Path) -> None:
    with rows.model_settings(business_timezone="America/New_York", future_tolerance_hours=24):
        variables = gate.gate_variables("2025-12-14")
    assert variables["business_timezone"] == "America/New_York"
    # midnight in New York (UTC-5 in December), as naive UTC like the staged timestamps
    assert (variables["day_start_ts"], variables["day_end_ts"]) == ("2025-12-14 05:00:00", "2025-12-15 05:00:00")
    assert variables["NOW"] == "2025-12-15T05:00:00"
    assert variables["future_limit_ts"] == "2025-12-16 05:00:00"  # the day's end + 24 h is the later one
    with rows.model_settings(business_timezone="Mars/Olympus_Mons"), pytest.raises(
            ValueError, match="business_timezone = 'Mars/Olympus_Mons' is not an IANA time zone name"):
        gate.gate_variables("2025-12-14")
    with rows.model_settings(business_timezone="UTC'); drop table x; --"), pytest.raises(ValueError):
        gate.gate_variables("2025-12-14")


def test_date_id_is_checked_against_the_business_day(lake_root: Path) -> None:
    # 02:00 UTC on D is 21:00 on D - 1 in New York: date_id must name D - 1 there, D in UTC
    orders = clean_orders(19) + [order(19, order_ts=DAY + dt.timedelta(hours=2))]
    write_day(orders, clean_events())
    name = "date_id is the business day of order_ts"
    assert by_name(gate.run_gate(D))[("fact_orders", name)].outcome == "pass"
    with rows.model_settings(business_timezone="America/New_York"):
        result = gate.run_gate(D)
    before_new_york_midnight = sum(o["order_ts"] < DAY + dt.timedelta(hours=5) for o in orders)
    assert by_name(result)[("fact_orders", name)].outcome == "fail"
    assert by_name(result)[("fact_orders", name)].value == str(before_new_york_midnight)


def test_date_id_in_utc_is_the_timestamps_own_day(lake_root: Path) -> None:
    # in UTC the check compares with the timestamp's own day (no time zone conversion): still a check
    write_day(clean_orders(), clean_events())
    name = "date_id is the business day of event_ts"
    assert by_name(gate.run_gate(D))[("fact_events", name)].outcome == "pass"
    facts = pq.read_table(lake.partition_file("warehouse", "fact_events", D)).to_pylist()
    facts[0]["date_id"] += 1
    write("warehouse", "fact_events", facts)
    checked = by_name(gate.run_gate(D))[("fact_events", name)]
    assert (checked.outcome, checked.value) == ("fail", "1")


def test_thresholds_come_from_the_checks_section(lake_root: Path, luigi_settings) -> None:
    luigi_settings("checks", orders_min_rows="10", events_min_rows="10", unknown_product_warn_pct="3")
    orders = clean_orders(39) + [order(39, product_id="PROD_9999")]  # 2.5 % unknown
    write_day(orders, clean_events(), unknown={"PROD_9999"})

    result = gate.run_gate(D)

    assert (result.failed, result.errored) == (0, 0)
    assert outcomes(result, "warn") == NOT_EVALUATED_YET
    assert "warn when not between 10 and 500000" in by_name(result)[
        ("stg_orders", "orders volume within the expected daily range")].message

    luigi_settings("checks", unknown_product_fail_pct="2")  # below the warn threshold: refused
    with pytest.raises(ValueError, match="unknown_product_warn_pct <= unknown_product_fail_pct"):
        gate.run_gate(D)


# ------------------------------------------------------------------------------ serving (Postgres)
def test_the_serving_checks_choose_sslmode_and_leave_the_rest_to_libpq(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGHOST", "PGHOSTADDR", "PGSSLMODE", "PGPASSWORD", "PGUSER", "PGDATABASE", "PGPORT", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    params = serving_connection.connection_params
    socket = params("postgresql://postgres@/ecomm?host=/tmp/x&port=5433&passfile=/p&sslcert=/c")
    assert socket["sslmode"] == "disable"
    assert not {"host", "port", "dbname", "user", "password", "passfile", "sslcert"} & socket.keys(), socket
    assert params("postgresql://u@127.0.0.1/db")["sslmode"] == "disable"
    assert params("dbname=ecomm")["sslmode"] == "disable"  # libpq's default Unix socket
    assert "password" not in params("postgresql://u:s3cret@db.example.com/db")
    assert params("postgresql://u:s3cret@db.example.com/db")["sslmode"] == "require"
    assert params("postgresql://u@db.example.com/db?sslmode=prefer")["sslmode"] == "require"
    assert params("host=db.example.com sslmode=verify-full")["sslmode"] == "verify-full"
    assert params("host=localhost hostaddr=10.1.2.3 dbname=db")["sslmode"] == "require"  # hostaddr is where it goes


def test_a_dsn_naming_a_service_is_reconciled_against_the_server_the_service_names(
    lake_root: Path, serving_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ECOMM_PG_DSN=service=ecomm (pg_service.conf): the publish connects through libpq, which reads the service;
    so does the reconciliation's Soda connection, made by libpq from the same DSN (it said "the Postgres DSN names
    no host", and the date stayed unreconciled)."""
    with psycopg.connect(serving_dsn) as conn:
        target = {"host": conn.info.host, "port": conn.info.port, "dbname": conn.info.dbname, "user": conn.info.user}
    services = tmp_path / "pg_service.conf"
    services.write_text("[ecomm]\n" + "".join(f"{key}={value}\n" for key, value in target.items()))
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    for name in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    assert serving_connection.sslmode_for("service=ecomm") == "disable"  # the service's host: a Unix socket
    write_day(clean_orders(), clean_events())
    publish_facts(serving_dsn)
    assert serving_reconciliation.reconcile_serving(D, dsn="service=ecomm").passed == 3
    # several hosts: the socket answers, but the checks' connection may go on to the remote one (the first one
    # down): local only if every host is (libpq leaves a Unix socket in the clear whatever the sslmode)
    services.write_text(services.read_text().replace(f"host={target['host']}", f"host={target['host']},db.invalid"))
    assert serving_connection.sslmode_for("service=ecomm") == "require"
    assert serving_reconciliation.reconcile_serving(D, dsn="service=ecomm").passed == 3


def test_a_service_header_with_a_comment_after_it_is_the_service_as_libpq_reads_it(
    serving_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq (parseServiceFile) takes a line starting `[ecomm]` as the group's header, whatever follows the `]`;
    the checks' reader wanted the line to end there, so `[ecomm]  # production` was no service to it: its
    sslmode (verify-full) was not used, the checks connected with `require` (no certificate check)."""
    with psycopg.connect(serving_dsn) as conn:
        target = {"host": conn.info.host, "port": conn.info.port, "dbname": conn.info.dbname, "user": conn.info.user}
    services = tmp_path / "pg_service.conf"
    services.write_text("[ecommerce]\nsslmode=disable\n[ecomm]  # the serving Postgres\n"
                        + "".join(f"{key}={value}\n" for key, value in target.items()) + "sslmode=verify-full\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    for name in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE", "PGSSLMODE", "PGSYSCONFDIR"):
        monkeypatch.delenv(name, raising=False)
    with psycopg.connect("service=ecomm") as conn:  # libpq's own reading: the group, its sslmode
        assert (conn.info.port, conn.info.get_parameters()["sslmode"]) == (target["port"], "verify-full")
    assert serving_connection.service_params("ecomm") == {**{k: str(v) for k, v in target.items()},
                                                          "sslmode": "verify-full"}
    assert serving_connection.sslmode_for("service=ecomm") == "verify-full"
    assert serving_connection.service_params("ecom") is None  # `[ecommerce]` is no header of it, for libpq either


def test_what_reaches_psycopg2_is_the_dsn_and_the_connection_params(serving_dsn: str) -> None:
    """The connection the checks make is the one `connection_params` describes (its tests cover the real one): read
    back from the real connection's own parameters."""
    dsn = f"{serving_dsn}&application_name=checks_kwargs"
    params = serving_connection.connection_params(dsn)
    conn = serving_connection.connect(dsn, "warehouse")
    try:
        made = conn.get_dsn_parameters()
    finally:
        conn.close()
    assert made["sslmode"] == params["sslmode"] == "disable" and "application_name" not in params
    assert made["application_name"] == "checks_kwargs", "the DSN's own parameters are kept"


def test_a_dsn_option_only_the_publishs_libpq_knows_is_a_refusal_naming_it(serving_dsn: str) -> None:
    """psycopg (the publish) bundles a newer libpq than psycopg2-binary (the checks): an option only the newer knows
    connects the publish, but psycopg2 raised ProgrammingError (`invalid dsn: invalid connection option ...`), out of
    every ServingChecks* wording and runbook entry."""
    import psycopg2

    dsn = f"{serving_dsn}&max_protocol_version=3.0"  # libpq 18's
    assert psycopg2.__libpq_version__ < 180000, "psycopg2-binary's libpq is 18 now: the two libpqs agree on this option"
    psycopg.connect(dsn).close()  # the publish's libpq knows it
    with pytest.raises(serving_connection.ServingChecksRefused) as refused:
        serving_reconciliation.reconcile_serving(D, dsn=dsn, lake_figures={
            "fact_orders_rows": 1, "fact_events_rows": 1, "fact_orders_revenue": 1})
    said = str(refused.value)
    assert "the serving checks' libpq (libpq 17." in said and "does not know the connection option" in said, said
    assert "'max_protocol_version'" in said and "leave it out of the DSN" in said, said
    assert runbook.remedy_for(refused.value).kind == "serving checks refused"
    unknown = "does not know the connection option 'sslkeylogfile'"
    with pytest.raises(serving_connection.ServingChecksRefused, match=unknown):
        serving_connection.connect(f"host=/nonexistent sslkeylogfile={os.devnull}", "warehouse")  # key=value form


def test_the_checks_connection_is_closed_when_the_checks_file_cannot_be_found(serving_dsn: str, luigi_settings) -> None:
    """[checks] checks_dir unusable (BadSetting): raised after the connection was made, before the try that closed
    it; it stayed open as long as the error was kept (a task's failure handling keeps it)."""
    from pipeline.config import BadSetting

    luigi_settings("checks", checks_dir="")
    name = f"checks_leak_{os.getpid()}"
    with pytest.raises(BadSetting) as kept:  # noqa: F841 - kept: its traceback holds what reconcile_serving held
        serving_reconciliation.reconcile_serving(D, dsn=f"{serving_dsn}&application_name={name}", lake_figures={
            "fact_orders_rows": 1, "fact_events_rows": 1, "fact_orders_revenue": 1})
    with psycopg.connect(serving_dsn, autocommit=True) as conn:
        for _ in range(100):  # a closed connection's backend leaves soon after
            left = conn.execute("select count(*) from pg_stat_activity where application_name = %s", [name]).fetchone()
            if left == (0,):
                break
            time.sleep(0.05)
    assert left == (0,), "the serving checks' connection was left open"


def test_a_downgradable_serving_sslmode_setting_is_refused(luigi_settings) -> None:
    luigi_settings("checks", serving_sslmode="prefer")
    with pytest.raises(serving_reconciliation.ServingCheckError, match="serving_sslmode = 'prefer'"):
        serving_connection.sslmode_for("postgresql://u@db.example.com/db")
    assert serving_connection.sslmode_for("postgresql://u@localhost/db") == "disable"


@pytest.fixture(scope="module")
def serving_dsn(dsn_server) -> str:
    """A database on the session's Postgres with minimal warehouse.fact_orders_all / fact_events_all tables."""
    dsn = dsn_server.create_database("gate_serving")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""
            create schema if not exists warehouse;
            create table warehouse.fact_orders_all (
                order_id text, user_id text, product_id text, date_id integer, order_ts timestamp,
                quantity integer, unit_price numeric(18, 2), revenue numeric(18, 2), status text,
                net_revenue numeric(18, 2), is_known_product boolean, load_date date not null);
            create table warehouse.fact_events_all (
                event_id text, user_id text, product_id text, event_type text, event_ts timestamp,
                date_id integer, is_known_product boolean, load_date date not null);
        """)
    return dsn


def publish_facts(dsn: str) -> None:
    """What publish does for D, minimally: the lake's fact partitions copied into Postgres."""
    orders = pq.read_table(lake.partition_file("warehouse", "fact_orders", D)).to_pylist()
    events = pq.read_table(lake.partition_file("warehouse", "fact_events", D)).to_pylist()
    with psycopg.connect(dsn) as conn:
        conn.execute("delete from warehouse.fact_orders_all where load_date = %s", [D])
        conn.execute("delete from warehouse.fact_events_all where load_date = %s", [D])
        for table, rows in (("fact_orders_all", orders), ("fact_events_all", events)):
            columns = list(rows[0])
            with conn.cursor().copy(f"copy warehouse.{table} ({', '.join(columns)}) from stdin") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
        # another date's rows must not count
        conn.execute("insert into warehouse.fact_orders_all (order_id, revenue, load_date) values ('x', 5, %s)",
                     [D - dt.timedelta(days=1)])


def test_reconcile_serving_passes_on_equal_figures_and_raises_on_a_mismatch(
    lake_root: Path, serving_dsn: str
) -> None:
    write_day(clean_orders(), clean_events())
    publish_facts(serving_dsn)
    figures = serving_reconciliation.compute_lake_figures(D)
    assert figures["fact_orders_rows"] == 20 and figures["fact_events_rows"] == 60
    assert figures["fact_orders_revenue"] == sum(Decimal(o["quantity"]) * o["unit_price"] for o in clean_orders())

    result = serving_reconciliation.reconcile_serving(D, dsn=serving_dsn)
    assert (result.passed, result.blocked) == (3, False)

    with pytest.raises(ServingMismatch) as raised:
        serving_reconciliation.reconcile_serving(D, dsn=serving_dsn, lake_figures={
            **figures, "fact_orders_rows": 21, "fact_orders_revenue": figures["fact_orders_revenue"] + Decimal("0.01"),
        })
    message = str(raised.value)
    assert "warehouse.fact_orders_all rows for 2025-12-14: expected 21 (lake), found 20 (serving)" in message
    assert (f"warehouse.fact_orders_all revenue for 2025-12-14: expected {figures['fact_orders_revenue'] + Decimal('0.01')}"
            f" (lake), found {figures['fact_orders_revenue']} (serving)") in message
    assert "fact_events_all" not in message

    with psycopg.connect(serving_dsn) as conn:  # a row lost in publish
        conn.execute("delete from warehouse.fact_events_all where event_id = 'EVT_000007'")
    with pytest.raises(ServingMismatch, match=r"fact_events_all rows for 2025-12-14: expected 60 \(lake\), found 59"):
        serving_reconciliation.reconcile_serving(D, dsn=serving_dsn)


def test_a_dotenv_file_never_overrides_the_environment_of_a_scan(tmp_path: Path, monkeypatch) -> None:
    """soda-core's Scan() loads the first .env it finds (for a .venv inside the repository: the
    repository's, i.e. docker compose's credentials) with override=True; checks_soda switches that off."""
    import sys

    from soda.common.env_helper import EnvHelper
    from soda.scan import Scan

    (tmp_path / ".env").write_text("ECOMM_PG_DSN=postgresql://someone@elsewhere.invalid/db\nECOMM_DOTENV_PROBE=1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)  # python-dotenv then searches from the cwd
    monkeypatch.setenv("ECOMM_PG_DSN", "postgresql://me@localhost/mine")
    monkeypatch.delenv("ECOMM_DOTENV_PROBE", raising=False)
    EnvHelper.reset()
    try:
        Scan()
    finally:
        EnvHelper.reset()
    assert os.environ["ECOMM_PG_DSN"] == "postgresql://me@localhost/mine"
    assert "ECOMM_DOTENV_PROBE" not in os.environ


def _advices(node: object) -> list[str]:
    """Every `advice` attribute in a parsed checks file."""
    if isinstance(node, dict):
        return [found for key, value in node.items()
                for found in ([value] if key == "advice" and isinstance(value, str) else _advices(value))]
    return [found for value in node for found in _advices(value)] if isinstance(node, list) else []


def test_no_checks_advice_tells_a_warning_to_rerun_with_a_threshold_option() -> None:
    """Every check's advice, as a warning words it, keeps none of the threshold options that publish a blocked date
    (a warning blocks nothing); as a failure words it, it keeps them all."""
    from pipeline.quality.results import advice_for
    from pipeline.quality.soda_setup import parsed_checks
    from tests.support.paths import REPO

    advices = [advice for path in sorted((REPO / "checks").rglob("*.yml"))
               for advice in _advices(parsed_checks(path.read_text()))]
    with_option = [advice for advice in advices if "--checks-" in advice]
    assert len(with_option) >= 10, f"{len(with_option)} of {len(advices)} advices name a threshold option"
    for advice in advices:
        warned = advice_for("warn", advice) or ""
        assert "--checks-" not in warned, f"{advice!r} warned: {warned!r}"
        assert advice_for("fail", advice) == advice
