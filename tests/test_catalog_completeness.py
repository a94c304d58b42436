"""The gate's rules on the catalog snapshot covering a date (sql/gate/catalog_snapshots.sql,
checks/staging/catalog_snapshots.yml, pipeline/quality/gate_catalogs.py): the share of its members without a
descriptive field (products' category, users' city and country), and its members against the previous
snapshot's. A catalog export that lost a field or was cut off passes every row rule.

The sample generator's catalogs (194 products, 200 users) changed as a sender's export would, landed, staged,
modelled and gated by the pipeline's own code; and snapshots written straight into the lake for the
thresholds (tests/support/gate_day.py).
"""
from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import config, lake
from pipeline.ingest import landing
from pipeline.quality import gate
from pipeline.transform import staging
from tests.support.gate_day import D, by_name, clean_events, clean_orders, outcomes, run_day, write_day

MONDAY = D + dt.timedelta(days=1)  # the generator's next weekly snapshot (D is a Sunday, its first generated day)
TABLE = "catalog_snapshots"
CATEGORY = (TABLE, "share of catalog products without a category")
CITY = (TABLE, "share of catalog users without a city")
COUNTRY = (TABLE, "share of catalog users without a country")
PRODUCTS_SIZE = (TABLE, "catalog products against the previous snapshot")
USERS_SIZE = (TABLE, "catalog users against the previous snapshot")
PRODUCTS_CONFLICTS = (TABLE, "catalog products listed more than once with different values")
USERS_CONFLICTS = (TABLE, "catalog users listed more than once with different values")
CHECKS = (CATEGORY, CITY, COUNTRY, PRODUCTS_SIZE, USERS_SIZE, PRODUCTS_CONFLICTS, USERS_CONFLICTS)


def generated_day(incoming: Path, day: dt.date, change: Callable[[str, list[dict]], list[dict]] | None = None, *,
                  snapshot: bool = True) -> gate.GateResult:
    """The generator's day with its catalog snapshot (`snapshot` false: none, the day is covered by an earlier
    one), each catalog file passed through `change` (kind, records) -> records as a changed export would be,
    then landed, staged, modelled and gated."""
    from devtools.generate import generate

    generate(day, 1, out=incoming, orders_per_day=400, events_per_day=2000, users=200, dirty_rate=0.05)
    for kind in ("products", "users"):
        path = incoming / kind / f"{kind}_{day}.json"
        if not snapshot:
            path.unlink()
        elif change is not None:
            path.write_text(json.dumps(change(kind, json.loads(path.read_text())), indent=2))
        landing.land_catalog(kind, day)
    result = run_day(incoming, day)
    assert result is not None
    return result


def catalog_outcomes(result: gate.GateResult) -> dict[tuple[str, str], tuple[str, str | None]]:
    checked = by_name(result)
    return {name: (checked[name].outcome, checked[name].value) for name in CHECKS}


def test_a_normal_week_passes(lake_root: Path, incoming: Path) -> None:
    first = generated_day(incoming, D)
    second = generated_day(incoming, MONDAY)

    assert not first.blocked and not second.blocked
    assert catalog_outcomes(second) == {CATEGORY: ("pass", "0"), CITY: ("pass", "0"), COUNTRY: ("pass", "0"),
                                        PRODUCTS_SIZE: ("pass", "1"), USERS_SIZE: ("pass", "1"),
                                        PRODUCTS_CONFLICTS: ("pass", "0"), USERS_CONFLICTS: ("pass", "0")}
    # the first snapshot has nothing to compare with: the size rule does not apply
    assert catalog_outcomes(first)[USERS_SIZE] == ("pass", None)
    assert by_name(first)[USERS_SIZE].message.startswith(
        f"not evaluated: the users snapshot of {D} (200 users) has nothing to compare with: it is the first")
    assert not {name for name in outcomes(second, "warn") if name[0] == TABLE}


def without(field: str, kind: str = "products") -> Callable[[str, list[dict]], list[dict]]:
    return lambda k, records: [{n: v for n, v in r.items() if n != field} for r in records] if k == kind else records


def test_a_products_snapshot_without_category_blocks_every_date_it_covers(lake_root: Path, incoming: Path) -> None:
    assert not generated_day(incoming, D).blocked
    result = generated_day(incoming, MONDAY, without("category"))

    assert result.blocked
    failed = by_name(result)[CATEGORY]
    assert (failed.outcome, failed.value) == ("fail", "100")
    assert failed.message.startswith(
        f"products: 194 of the 194 products of the snapshot of {MONDAY} (covering {MONDAY}) have no category: 100 %")
    assert "python -m pipeline restate --catalog products" in failed.message
    assert "--checks-catalog-field-missing-fail-pct 100" in failed.message
    # the next day has no snapshot of its own: its facts join Monday's, so it is judged by it too
    tuesday = generated_day(incoming, MONDAY + dt.timedelta(days=1), snapshot=False)
    assert CATEGORY in outcomes(tuesday, "fail")
    assert f"snapshot of {MONDAY} (covering {MONDAY + dt.timedelta(days=1)})" in by_name(tuesday)[CATEGORY].message
    # a rerun of the earlier date reads no later snapshot: the same verdict
    assert catalog_outcomes(gate.run_gate(D)) == catalog_outcomes(gate.run_gate(D))
    assert not gate.run_gate(D).blocked


def test_users_whose_city_was_renamed_block_the_first_snapshot(lake_root: Path, incoming: Path) -> None:
    def town(kind: str, records: list[dict]) -> list[dict]:
        if kind != "users":
            return records
        return [{("town" if n == "city" else n): v for n, v in r.items()} for r in records]

    result = generated_day(incoming, D, town)

    assert result.blocked
    assert catalog_outcomes(result)[CITY] == ("fail", "100")
    assert catalog_outcomes(result)[COUNTRY] == ("pass", "0")
    assert by_name(result)[CITY].message.startswith(
        f"users: 200 of the 200 users of the snapshot of {D} (covering {D}) have no city: 100 %")


def test_a_users_snapshot_cut_to_half_blocks(lake_root: Path, incoming: Path) -> None:
    assert not generated_day(incoming, D).blocked
    result = generated_day(incoming, MONDAY, lambda kind, records: records[:99] if kind == "users" else records)

    assert result.blocked
    failed = by_name(result)[USERS_SIZE]
    assert (failed.outcome, failed.value) == ("fail", "0.495")
    assert failed.message.startswith(f"users: the snapshot of {MONDAY} (covering {MONDAY}) lists 99 users, 0.495 x"
                                     f" the 200 of the previous snapshot ({D})")
    assert "restate --catalog users" in failed.message and "--checks-catalog-size-fail-low-ratio 0" in failed.message
    assert catalog_outcomes(result)[PRODUCTS_SIZE] == ("pass", "1")
    from pipeline.tasks import runbook

    fix = runbook.gate_fix(MONDAY, [r.message for r in result.results if r.outcome == "fail"], local_scheduler=True)
    assert "`--checks-catalog-size-fail-low-ratio 0`" in fix, fix


def test_an_id_listed_twice_with_different_values_warns_on_every_date_the_snapshot_covers(
        lake_root: Path, incoming: Path, luigi_settings) -> None:
    def twice(kind: str, records: list[dict]) -> list[dict]:
        """PROD_0004 (USER_0007) again at the end, changed: the later line wins; PROD_0005 again unchanged."""
        key, changed, copied = {"products": ("product_id", {"product_name": "Red Lipstick v2", "current_price": 1.0},
                                             "PROD_0005"),
                                "users": ("user_id", {"first_name": "Changed"}, None)}[kind]
        first = {"products": "PROD_0004", "users": "USER_0007"}[kind]
        (record,) = [r for r in records if r[key] == first]
        return records + [{**record, **changed}] + [r for r in records if r[key] == copied]

    result = generated_day(incoming, D, twice)

    assert not result.blocked
    products, users = by_name(result)[PRODUCTS_CONFLICTS], by_name(result)[USERS_CONFLICTS]
    assert (products.outcome, products.value, users.outcome, users.value) == ("warn", "1", "warn", "1")
    assert products.message.startswith(
        f"products: the snapshot of {D} (covering {D}) lists 1 id more than once with different values: PROD_0004;"
        " the later line of each is staged, the other versions (1) are quarantined as duplicate_id_conflict."
        " Staging cannot tell which version is right"), products.message
    assert "python -m pipeline restate --catalog products --date <the snapshot's date>" in products.message
    assert "with different values: USER_0007;" in users.message
    # 1 of 196 products thrown away, 1 collapsed: under the shares' thresholds, which saw nothing
    assert by_name(result)[("source_loss", "share of products thrown away (quarantined or rejected)")].outcome == "pass"
    assert by_name(result)[("source_loss", "share of products rows collapsed as exact duplicates")].outcome == "pass"
    # the next day joins the same snapshot: judged by it too
    tuesday = generated_day(incoming, MONDAY, snapshot=False)
    assert {PRODUCTS_CONFLICTS, USERS_CONFLICTS} <= outcomes(tuesday, "warn")
    assert f"the snapshot of {D} (covering {MONDAY}) lists 1 id" in by_name(tuesday)[PRODUCTS_CONFLICTS].message
    # a sender allowed one conflicting id ([checks] catalog_conflict_warn_count, or
    # --checks-catalog-conflict-warn-count 1 for one run): the one is not a warning any more
    luigi_settings("checks", catalog_conflict_warn_count="1")
    allowed = by_name(gate.run_gate(MONDAY))
    assert (allowed[PRODUCTS_CONFLICTS].outcome, allowed[PRODUCTS_CONFLICTS].value) == ("pass", "1")
    assert allowed[PRODUCTS_CONFLICTS].message.endswith("[pass: measured 1; rule: warn when > 1]")


# ------------------------------------------------------------------- snapshots written into the lake
def snapshot(kind: str, day: dt.date, count: int, *, missing: int = 0) -> None:
    """A staged snapshot of `day` with `count` members, the first `missing` without category (users: city)."""
    table = staging.staging_table(kind)
    lineage = {"snapshot_date": day, "load_date": day, "_source_file": "x", "_row_number": 1}
    if kind == "products":
        rows = [{"product_id": f"PROD_{i:04d}", "product_name": "p", "category": None if i < missing else "c",
                 "brand": None, "current_price": 1, **lineage} for i in range(count)]
    else:
        rows = [{"user_id": f"USER_{i:04d}", "city": None if i < missing else "Paris", "country": "FR", **lineage}
                for i in range(count)]
    path = lake.partition_file("staging", table, day)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    schema = staging.STAGING_SCHEMAS[table]
    pq.write_table(pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema), path)


def test_a_share_between_the_thresholds_warns_and_the_settings_decide(lake_root: Path, luigi_settings) -> None:
    write_day(clean_orders(), clean_events())
    snapshot("products", D - dt.timedelta(days=7), 100)
    snapshot("products", D - dt.timedelta(days=1), 85, missing=10)  # 10 of 85: 11.76 %; 0.85 x

    checked = by_name(gate.run_gate(D))

    assert (checked[CATEGORY].outcome, checked[CATEGORY].value) == ("warn", "11.7647")
    assert "10 of the 85 products" in checked[CATEGORY].message and "11.76 %" in checked[CATEGORY].message
    assert (checked[PRODUCTS_SIZE].outcome, checked[PRODUCTS_SIZE].value) == ("warn", "0.85")
    assert f"previous snapshot ({D - dt.timedelta(days=7)})" in checked[PRODUCTS_SIZE].message

    luigi_settings("checks", catalog_field_missing_warn_pct="12", catalog_size_warn_low_ratio="0.8")
    checked = by_name(gate.run_gate(D))
    assert (checked[CATEGORY].outcome, checked[PRODUCTS_SIZE].outcome) == ("pass", "pass")


def test_a_later_snapshot_does_not_change_a_dates_verdict(lake_root: Path) -> None:
    write_day(clean_orders(), clean_events(), unlisted_users=None)
    snapshot("users", D - dt.timedelta(days=7), 100)
    snapshot("users", D, 100)
    before = catalog_outcomes(gate.run_gate(D))
    snapshot("users", D + dt.timedelta(days=7), 10, missing=10)  # a later, broken snapshot

    assert catalog_outcomes(gate.run_gate(D)) == before
    assert before[USERS_SIZE] == ("pass", "1") and before[CITY] == ("pass", "0")


@pytest.mark.parametrize("settings, match", [
    ({"catalog_field_missing_warn_pct": "60"}, r"catalog_field_missing_warn_pct <= catalog_field_missing_fail_pct"),
    ({"catalog_size_fail_low_ratio": "0.95"}, r"catalog_size_fail_low_ratio <= catalog_size_warn_low_ratio <= 1"),
    ({"catalog_size_warn_low_ratio": "1.5"}, r"catalog_size_fail_low_ratio <= catalog_size_warn_low_ratio <= 1"),
])
def test_contradicting_thresholds_are_refused(lake_root: Path, luigi_settings, settings: dict, match: str) -> None:
    luigi_settings("checks", **settings)
    with pytest.raises(config.BadSetting, match=match):
        gate.check_settings()
