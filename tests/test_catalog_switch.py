"""Switching the products catalog from files to the API: the dates built from files keep their snapshots.

A lake begun on a Saturday has that Saturday's products file, and the week's Monday has none. Once
`ECOMM_PRODUCTS_URL` is set, the week's API snapshot day of that Saturday is the Monday before it, which
was taken for the snapshot covering it: the first API run's history needed the Saturday's staging, whose
task asked the API for the Monday. With the API down the run named a date before the lake ("Needed by
...: <Monday>: FAILED", a command that cannot work); with it up, today's catalog was landed as that old
Monday's snapshot and every date built from the files turned `published, catalog LATE` (and `restate
--catalog products` of that Monday republished them all with today's catalog).
"""
from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from tests.support.dummyjson_server import DummyJsonServer
from tests.support.ops import Ops

SATURDAY = dt.date(2025, 12, 20)  # the lake's first date: the generator writes a products file for it
WEEK_DAY = dt.date(2025, 12, 15)  # the API's snapshot day ([catalog] weekday = Monday) of SATURDAY's week
SWITCHED = dt.date(2025, 12, 29)  # a Monday: the first date run from the API

pytestmark = pytest.mark.slow


def landed(ops: Ops) -> set[str]:
    return {path.name.removeprefix("load_date=") for path in (ops.lake / "raw" / "products").iterdir()}


def test_the_first_api_snapshot_is_landed_for_the_date_run_not_before_the_files(ops: Ops) -> None:
    shutil.rmtree(ops.incoming)
    ops.generate(SATURDAY, 3, orders=100, events=500, dirty=0)  # products files of SATURDAY and Monday 12-22
    built = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SATURDAY), "--stop", "2025-12-23",
                      "--local-scheduler")
    assert built.returncode == 0 and "3 of 3 date(s) published" in built.stdout, built.stderr[-3000:]
    ops.generate(SWITCHED, 1, orders=100, events=500, dirty=0)
    (ops.incoming / "products" / f"products_{SWITCHED}.json").unlink()  # from now on the API serves products

    ops.extra_env["ECOMM_PRODUCTS_URL"] = "http://127.0.0.1:9/products"  # the API down: nothing listens there
    down = ops.luigi("DailyPipeline", "--date", str(SWITCHED), "--local-scheduler", "--catalog-attempts", "1",
                     "--catalog-retries", "0")
    assert down.returncode == 30 and "LandProducts: CatalogApiTransientError" in down.stdout, down.stdout[-3000:]
    assert str(WEEK_DAY) not in down.stdout and "Needed by" not in down.stdout, down.stdout[-3000:]
    assert landed(ops) == {str(SATURDAY), "2025-12-22"}

    with DummyJsonServer() as server:
        ops.extra_env["ECOMM_PRODUCTS_URL"] = server.url
        up = ops.luigi("DailyPipeline", "--date", str(SWITCHED), "--local-scheduler")
        assert up.returncode == 0 and "1 of 1 date(s) published" in up.stdout, up.stdout[-3000:] + up.stderr[-3000:]
        assert len([p for p in server.requests if p.startswith("/products?")]) == 2, "one fetch: two pages"
    assert landed(ops) == {str(SATURDAY), "2025-12-22", str(SWITCHED)}, "today's catalog is the switched date's"
    manifest = json.loads((ops.lake / "raw" / "products" / f"load_date={SWITCHED}" / "_manifest.json").read_text())
    assert manifest["source_file"] == f"{server.url}/products"
    assert "late catalog" not in up.stdout, up.stdout[-3000:]
    summary = ops.pipeline("summary", "--start", str(SATURDAY), "--stop", "2025-12-23")
    assert summary.returncode == 0, summary.stdout[-3000:]  # no date built from the files turned LATE
    assert "LATE" not in summary.stdout and "3 of 3 date(s) published" in summary.stdout, summary.stdout

    # a file's snapshot is not fetched again from the API in its place, and the Monday before it was never landed
    refused = ops.pipeline("restate", "--catalog", "products", "--date", str(SATURDAY))
    assert refused.returncode == 2 and f"the products snapshot of {SATURDAY} was landed from " in refused.stderr, \
        refused.stderr[-3000:]
    assert "ECOMM_PRODUCTS_URL unset and [catalog] products_url empty" in refused.stderr, refused.stderr[-3000:]
    never = ops.pipeline("restate", "--catalog", "products", "--date", str(WEEK_DAY))
    assert never.returncode == 2 and f"no products snapshot of {WEEK_DAY} was landed" in never.stderr, never.stderr
    assert landed(ops) == {str(SATURDAY), "2025-12-22", str(SWITCHED)}


def test_a_switch_in_mid_week_lands_the_api_snapshot_as_of_the_first_date_it_feeds(ops: Ops) -> None:
    """Weekly files on Saturdays, the API from a Wednesday on: Monday and Tuesday keep the Saturday's file."""
    wednesday = dt.date(2025, 12, 24)
    shutil.rmtree(ops.incoming)
    ops.generate(SATURDAY, 4, orders=100, events=500, dirty=0)
    (ops.incoming / "products" / "products_2025-12-22.json").unlink()  # the files come on Saturdays only
    built = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SATURDAY), "--stop", str(wednesday),
                      "--local-scheduler")
    assert built.returncode == 0 and "4 of 4 date(s) published" in built.stdout, built.stderr[-3000:]
    ops.generate(wednesday, 2, orders=100, events=500, dirty=0)
    for path in (ops.incoming / "products").glob("products_2025-12-2[4-5].json"):
        path.unlink()

    with DummyJsonServer() as server:
        ops.extra_env["ECOMM_PRODUCTS_URL"] = server.url
        for day in (wednesday, wednesday + dt.timedelta(days=1)):
            run = ops.luigi("DailyPipeline", "--date", str(day), "--local-scheduler")
            assert run.returncode == 0 and "1 of 1 date(s) published" in run.stdout, run.stdout[-3000:]
            assert "late catalog" not in run.stdout, run.stdout[-3000:]
        assert len([p for p in server.requests if p.startswith("/products?")]) == 2, "one fetch: two pages"
    assert landed(ops) == {str(SATURDAY), str(wednesday)}, "as of the first date the API fed, not Monday 12-22"
    summary = ops.pipeline("summary", "--start", str(SATURDAY), "--stop", "2025-12-26")
    assert summary.returncode == 0 and "LATE" not in summary.stdout, summary.stdout
    assert "6 of 6 date(s) published" in summary.stdout, summary.stdout
