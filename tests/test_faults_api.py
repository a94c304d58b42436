"""The products API misbehaving, through the real Luigi task: bounded retries with backoff, then a clear error.

`luigi ... LandProducts` runs as a subprocess against a real local HTTP server (tests/dummyjson_server.py)
with faults queued. tests/test_catalog_api.py covers the client itself; here the whole chain is
exercised: luigi.cfg [catalog] (timeout, retries, backoff) -> the client -> the landing task -> Luigi's
own retries ([scheduler] retry_count) -> the exit code, the message and the lake.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dummyjson_server import DummyJsonServer
from tests.support.faults import clean_env
from tests.support.paths import REPO

D = "2025-12-15"  # a Monday: the API snapshot is landed for this very date
RETRIES = 3  # [catalog] retries in the test config: 4 attempts per page per task attempt
LUIGI_ATTEMPTS = 3  # luigi.cfg [scheduler] retry_count (the task does not override it)
TEST_CFG = f"""\
[scheduler]
retry_delay = 1
[worker]
wait_interval = 0.1
wait_jitter = 0
[catalog]
timeout_seconds = 0.5
retries = {RETRIES}
backoff_seconds = 0.1
page_size = 100
"""

pytestmark = pytest.mark.slow


def land_products(tmp_path: Path, url: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "luigi-test.cfg"
    cfg.write_text(TEST_CFG)
    env = clean_env(ECOMM_PRODUCTS_URL=url, ECOMM_DATA_DIR=str(tmp_path / "incoming"),
                    ECOMM_LAKE_DIR=str(tmp_path / "lake"), LUIGI_CONFIG_PATH=str(cfg),
                    ECOMM_PG_DATA=str(tmp_path / "no-postgres"))  # nothing here needs Postgres
    return subprocess.run(
        [sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "LandProducts", "--date", D,
         "--local-scheduler", "--no-lock"],
        check=False, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180)


def landed(tmp_path: Path) -> bool:
    return (tmp_path / "lake" / "raw" / "products" / f"load_date={D}").exists()


def pages(server: DummyJsonServer) -> list[str]:
    return [p for p in server.requests if p.startswith("/products?")]


def test_500_then_429_then_timeout_are_retried_with_backoff_and_the_snapshot_lands(tmp_path) -> None:
    with DummyJsonServer(slow_seconds=1.5) as server:
        for kind in ("500", "429", "timeout"):
            server.fail_next(kind)
        result = land_products(tmp_path, server.url)
        assert result.returncode == 0, result.stdout[-3000:]
        assert len(pages(server)) == 3 + 2  # three failed attempts at the first page, then both pages
    delays = [float(d) for d in re.findall(r"retry \d of 3 in ([0-9.]+)s", result.stdout)]
    assert delays == [0.1, 0.2, 0.4], "exponential backoff from [catalog] backoff_seconds"
    for reason in ("HTTP 500", "HTTP 429", "no answer within 0.5s"):
        assert reason in result.stdout
    manifest = json.loads((tmp_path / "lake" / "raw" / "products" / f"load_date={D}" / "_manifest.json").read_text())
    assert manifest["rows"] == 194 and manifest["source_file"] == f"{server.url}/products"


@pytest.mark.parametrize(
    ("fault", "requests_per_attempt", "error", "message"),
    [
        ("500", RETRIES + 1, "CatalogApiTransientError", f"failed {RETRIES + 1} times, last: HTTP 500"),
        ("html", 1, "CatalogApiBadResponse", "did not return JSON (Content-Type 'text/html"),
        ("short", RETRIES + 1, "CatalogApiBadResponse", "short page: limit says 100 items but it holds 33"),
    ],
    ids=["500-forever", "html-page", "short-page-forever"],
)
def test_a_broken_api_fails_the_task_after_bounded_retries_with_a_clear_error(
        tmp_path, fault, requests_per_attempt, error, message) -> None:
    with DummyJsonServer() as server:
        server.fail_next(fault, times=1000)
        result = land_products(tmp_path, server.url)
        requests = len(pages(server))
    assert result.returncode == 30, result.stdout[-3000:]
    assert f"{error}: GET {server.url}/products?limit=100&skip=0" in result.stdout
    assert message in result.stdout
    assert "ECOMM_PRODUCTS_URL" in result.stdout, "the error says how to fall back to files"
    assert requests == LUIGI_ATTEMPTS * requests_per_attempt, "retries are bounded: client x Luigi"
    assert not landed(tmp_path), "nothing is landed from a broken API"
