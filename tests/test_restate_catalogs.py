"""Both catalog snapshots of one date corrected after it was published: one `restate --catalog` restates both.

Real `luigi` and `python -m pipeline` command lines against a fresh database on the session's embedded Postgres,
with the seed fixture days as the incoming files.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.ops import SEED_DAY, Ops
from tests.test_restate import moved_to_garden, users_snapshot
from tests.test_restate_resume import killed_while_running

PERSON = {"first_name": "A", "last_name": "B", "email": "a@b.example", "signup_date": "2020-01-01"}


def _published_with_both_catalogs(ops: Ops) -> list[dict]:
    """The seed days published with a users and a products snapshot of the seed day; returns the users listed."""
    users = [{"user_id": "USER_0307", "city": "Oldtown", "country": "Freedonia", **PERSON}]
    users_snapshot(ops, users)
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY - dt.timedelta(days=1)),
                         "--stop", str(SEED_DAY + dt.timedelta(days=1)), "--local-scheduler")
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    return users


def _both_corrected(ops: Ops, users: list[dict]) -> None:
    users_snapshot(ops, [{**users[0], "city": "Newtown"}])
    products = ops.incoming / "products" / f"products_{SEED_DAY}.json"
    products.write_text(json.dumps(moved_to_garden(json.loads(products.read_text())), indent=2))


def _assert_both_restated(ops: Ops, restated) -> None:
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert f"restating the users and products snapshots of {SEED_DAY}" in restated.stdout, restated.stdout[-2000:]
    assert ops.query("select city from warehouse.dim_user where user_id = 'USER_0307'") == [("Newtown",)]
    assert ops.query("select category, current_price from warehouse.dim_product where product_id = 'PROD_0003'") \
        == [("Garden", Decimal("9.99"))]
    record = json.loads((ops.lake / "audit" / "restatements" / f"load_date={SEED_DAY}" / "restatement.json")
                        .read_text())
    assert (record["status"], sorted(record["sources"])) == ("published", ["products", "users"])
    assert record["snapshots"] == {"users": str(SEED_DAY), "products": str(SEED_DAY)}
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0


@pytest.mark.slow
def test_naming_one_catalog_restates_the_other_changed_snapshot_of_its_date_too(ops: Ops) -> None:
    """The command a changed snapshot's refusal names (`restate --catalog users --date S`) restates the products
    snapshot of S too, which changed as well: the run of S would refuse it, leaving the restatement pending."""
    _both_corrected(ops, _published_with_both_catalogs(ops))
    restated = ops.pipeline("restate", "--catalog", "users", "--date", str(SEED_DAY))
    assert f"the products snapshot of {SEED_DAY} changed too" in restated.stdout, restated.stdout[-2000:]
    _assert_both_restated(ops, restated)


@pytest.mark.slow
def test_both_catalogs_named_are_restated_in_one_command(ops: Ops) -> None:
    """`--catalog` repeated: both snapshots of S are landed again and the dates they feed run once."""
    _both_corrected(ops, _published_with_both_catalogs(ops))
    restated = ops.pipeline("restate", "--catalog", "users", "--catalog", "products", "--date", str(SEED_DAY))
    _assert_both_restated(ops, restated)


@pytest.mark.slow
def test_naming_one_catalog_after_an_interrupted_restatement_of_both_finishes_both(ops: Ops, tmp_path: Path) -> None:
    """`restate --catalog users --date S` killed once both snapshots were archived, then run again: the products
    snapshot, no longer landed (so no longer "changed"), is landed again and its dates published with the users'."""
    _both_corrected(ops, _published_with_both_catalogs(ops))
    out = killed_while_running(ops, tmp_path, "--catalog", "users", "--date", str(SEED_DAY))
    assert "restating the users and products snapshots" in out, out[-3000:]
    assert not (ops.lake / "raw" / "products" / f"load_date={SEED_DAY}" / "_manifest.json").exists()

    again = ops.pipeline("restate", "--catalog", "users", "--date", str(SEED_DAY))
    assert f"the products snapshot of {SEED_DAY} is pending too" in again.stdout, again.stdout[-2000:]
    _assert_both_restated(ops, again)
    assert (ops.lake / "raw" / "products" / f"load_date={SEED_DAY}" / "_manifest.json").exists()
