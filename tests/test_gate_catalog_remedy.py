"""A date the quality gate blocks on a catalog's checks is told to restate that catalog's snapshot, not the date.

A catalog snapshot is landed once, under its own date, and feeds later dates: when its checks block a date, the
fix is the catalog (the API's answer or the snapshot file) and `restate --catalog KIND --date S` for each failing
catalog (`pipeline.tasks.gate_remedy`); `restate --date D` finds the date's daily files unchanged and says which
command it is. Real `luigi` and `python -m pipeline` runs against a local DummyJSON server and the embedded Postgres.
"""
from __future__ import annotations

import datetime as dt

import pytest

from pipeline.quality import gate
from pipeline.quality.results import CheckResult
from pipeline.tasks import runbook
from tests.support.dummyjson_server import DummyJsonServer
from tests.support.ops import SEED_DAY, Ops

D = dt.date(2025, 12, 15)
FIX_CATALOG = "fix the catalog (the API's answer or the snapshot file) and "
LOST = "--checks-lost-fail-pct 100"
UNKNOWN = "S"  # no snapshot covers the date (no incoming catalog, no API): the line says what S is
PRODUCTS_LOST = ("source_loss", "share of products thrown away (quarantined or rejected)")
ORDERS_LOST = ("source_loss", "share of orders thrown away (quarantined or rejected)")
USERS_CITY = ("catalog_snapshots", "share of catalog users without a city")


def restate(kind: str, day: dt.date | str = SEED_DAY) -> str:
    return f"`python -m pipeline restate --catalog {kind} --date {day}`"


def test_which_catalog_a_check_is_about_comes_from_its_checks_file_and_its_tables_model() -> None:
    from pipeline.tasks import gate_remedy

    assert gate_remedy.check_catalogs(*PRODUCTS_LOST) == {"products"}  # its `source_table: stg_products`
    assert gate_remedy.check_catalogs(*USERS_CITY) == {"users"}  # its `catalog: users`
    assert gate_remedy.check_catalogs("dim_product_history", "x") == {"products"}  # reads the snapshots only
    # dim_product and dim_user read the day's facts too, and an unknown product or user is the catalog's or a daily
    # file's (a changed id): not the catalog's alone, so the daily fix is named too
    for daily in (ORDERS_LOST, ("fact_orders", "no duplicate order line"), ("dim_product", "x"), ("dim_user", "x"),
                  ("fact_orders", "unknown product share of order lines"),
                  ("unknown_users", "unknown user share of events"), ("daily_metrics", "x"), ("reconciliation", "x"),
                  ("dim_date", "x")):
        assert gate_remedy.check_catalogs(*daily) == set(), daily


def test_a_date_blocked_by_daily_files_and_a_catalog_is_told_both(lake_root, incoming) -> None:
    said = [f"... rerun it with {LOST}."] * 2
    fix = runbook.gate_fix(D, said, local_scheduler=True, checks=[ORDERS_LOST, PRODUCTS_LOST])
    assert (f"{FIX_CATALOG}{restate('products', UNKNOWN)} (S: the date in the name of its snapshot covering the date)"
            " (lands the catalog's snapshot") in fix, fix
    assert f"; the other failing checks: fix the file and `python -m pipeline restate --date {D}`" in fix, fix
    # the threshold that publishes a catalog mostly quarantined is qualified, not offered as a day's
    assert "published without the catalog's quarantined members" in fix and fix.endswith(f"rerun it with `{LOST}`")
    # a daily file's checks alone: today's text
    daily = runbook.gate_fix(D, said[:1], local_scheduler=True, checks=[ORDERS_LOST])
    assert daily.endswith(f"fix the file and `python -m pipeline restate --date {D}`; a day that really is unusual:"
                          f" rerun it with `{LOST}`"), daily


def test_a_failed_gate_tasks_explanation_names_the_snapshot_covering_the_date(lake_root, incoming, monkeypatch) -> None:
    """What luigid shows and the failure e-mail carries (`runbook.explain`): a Wednesday's catalogs from the API are
    the snapshots of its week's Monday."""
    for kind in ("PRODUCTS", "USERS"):
        monkeypatch.setenv(f"ECOMM_{kind}_URL", "http://127.0.0.1:9")  # never asked: the snapshot day is computed
    wednesday, monday = D + dt.timedelta(days=2), D
    failed = [CheckResult(name, table, "user-defined", "fail", "72", f"... rerun it with {LOST}.")
              for table, name in (PRODUCTS_LOST, USERS_CITY)]
    error = gate.QualityGateFailed(gate.GateResult(wednesday, failed, dt.datetime(2025, 12, 18)))
    what = next(line for line in runbook.explain("QualityGate", wednesday, error, local_scheduler=True).splitlines()
                if line.startswith("What to do (gate blocked): "))
    assert f"{FIX_CATALOG}{restate('products', monday)} and {restate('users', monday)} (" in what, what
    assert "fix the file" not in what and "restate --date" not in what.replace("`restate --date` does not", ""), what


def test_the_runbook_table_says_what_a_catalogs_checks_need() -> None:
    row = next(line for line in runbook.markdown_table().splitlines() if line.startswith("| gate blocked |"))
    assert "fix the file and `python -m pipeline restate --date D`" in row
    assert f"{FIX_CATALOG}`python -m pipeline restate --catalog KIND --date S`" in row, row


def _strip(server: DummyJsonServer, kind: str, fields: tuple[str, ...], count: int) -> list[dict]:
    """The API's `kind` with its first `count` items lacking `fields`; returns the items as they were."""
    before = [dict(item) for item in server.data[kind]]
    for item in server.data[kind][:count]:
        for field in fields:
            item.pop(field, None)
    return before


def _what_to_do(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if "what to do (gate blocked)" in line)


@pytest.mark.slow
def test_a_date_an_api_catalog_blocks_is_told_each_failing_catalogs_restatement(ops: Ops) -> None:
    with DummyJsonServer() as server:
        ops.extra_env.update(ECOMM_PRODUCTS_URL=server.url, ECOMM_USERS_URL=server.url)
        products = _strip(server, "products", ("price", "title", "category"), 150)
        users = _strip(server, "users", ("firstName", "address"), 150)
        blocked = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
        assert blocked.returncode == 30, blocked.stderr[-3000:]
        assert "BLOCKED" in blocked.stdout and "FAIL source_loss: share of products" in blocked.stdout, blocked.stdout
        what = _what_to_do(blocked.stdout)
        # the seed day is a Monday, the API's snapshot day: the snapshot covering it is its own
        assert f"{FIX_CATALOG}{restate('products')} and {restate('users')}" in what, what
        # its products' losses leave order lines of unknown products: the day's data as much as the catalog's
        assert f"; the other failing checks: fix the file and `python -m pipeline restate --date {SEED_DAY}`" in what

        # the API answers right again: restating the date finds its daily files unchanged, and names the catalogs'
        server.data["products"], server.data["users"] = products, users
        nothing = ops.pipeline("restate", "--date", str(SEED_DAY))
        said = nothing.stdout + nothing.stderr
        assert nothing.returncode == 2, said[-3000:]  # what to restate is a catalog: as for a changed snapshot
        assert f"nothing to restate for {SEED_DAY}" in said and "users catalogs, whose snapshots feed it" in said, said
        assert f"run {restate('products')} and {restate('users')}" in said, said

        # the users snapshot restated: the products one still blocks, and only it is named
        server.data["products"] = [dict(item) for item in products]
        _strip(server, "products", ("price", "title", "category"), 150)
        half = ops.pipeline("restate", "--catalog", "users", "--date", str(SEED_DAY))
        assert half.returncode == 30, half.stdout[-3000:] + half.stderr[-2000:]
        what = _what_to_do(half.stdout)
        assert f"{FIX_CATALOG}{restate('products')} (" in what and "--catalog users" not in what, what

        server.data["products"] = products
        done = ops.pipeline("restate", "--catalog", "products", "--date", str(SEED_DAY))
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
