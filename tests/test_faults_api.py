"""The products API misbehaving, through the real Luigi task: bounded retries with backoff, then a clear error.

`luigi ... LandProducts` runs as a subprocess against a real local HTTP server (tests/dummyjson_server.py)
with faults queued. tests/test_catalog_api.py covers the client itself; here the whole chain is
exercised: luigi.cfg [catalog] (timeout, retries, backoff) -> the client -> the landing task's own
attempts at a transient failure ([catalog] attempts; Luigi runs it once) -> the exit code, the message
and the lake. A malformed catalog file fails at once, with the production luigi.cfg.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.dummyjson_server import DummyJsonServer
from tests.support.faults import clean_env
from tests.support.paths import REPO

D = "2025-12-15"  # a Monday: the API snapshot is landed for this very date
RETRIES = 3  # [catalog] retries in the test config: 4 attempts per page per task attempt
TASK_ATTEMPTS = 3  # luigi.cfg [catalog] attempts: the task's own, at an API failing transiently
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
retry_delay_seconds = 0.2
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


def luigi_attempts(output: str) -> int:
    return len(re.findall(r"running +LandProducts\(", output))


def test_an_api_down_for_a_whole_fetch_is_fetched_again_by_the_task_and_lands(tmp_path) -> None:
    """The client's retries used up on a 5xx: the task waits [catalog] retry_delay_seconds and fetches again."""
    with DummyJsonServer() as server:
        server.fail_next("500", times=RETRIES + 1)
        result = land_products(tmp_path, server.url)
        assert result.returncode == 0, result.stdout[-3000:]
        assert len(pages(server)) == RETRIES + 1 + 2  # a failed first attempt, then both pages
    assert re.search(r"landing the products snapshot failed: GET [^\n]*failed 4 times, last: HTTP 500[^\n]*;"
                     r" this can heal, will retry: attempt 2 of 3 at \d\d:\d\d:\d\d \S+ \(in 0.2s\)", result.stdout)
    assert luigi_attempts(result.stdout) == 1, "the task retried itself, in one Luigi attempt"
    assert landed(tmp_path)


def test_a_catalog_that_changed_while_read_is_fetched_again_by_the_task_and_lands_whole(tmp_path) -> None:
    """The second page's `total` is 5 lower in the first fetch only (items deleted while it was read): the task
    waits [catalog] retry_delay_seconds and fetches the whole catalog again from the first page."""
    with DummyJsonServer() as server:
        server.fail_next("total_dropped", after=1)
        result = land_products(tmp_path, server.url)
        assert result.returncode == 0, result.stdout[-3000:]
        assert pages(server) == ["/products?limit=100&skip=0", "/products?limit=100&skip=100"] * 2
    assert re.search(r"landing the products snapshot failed: GET [^\n]*skip=100: total=189, the first page said"
                     r" total=194; the catalog changed while it was read[^\n]*; this can heal, will retry: attempt 2"
                     r" of 3 at \d\d:\d\d:\d\d \S+ \(in 0.2s\)", result.stdout), result.stdout[-3000:]
    assert luigi_attempts(result.stdout) == 1, "the task fetched again itself, in one Luigi attempt"
    manifest = json.loads((tmp_path / "lake" / "raw" / "products" / f"load_date={D}" / "_manifest.json").read_text())
    assert manifest["rows"] == 194


def test_a_catalog_that_keeps_changing_while_read_fails_after_the_attempts_saying_so(tmp_path) -> None:
    """Every fetch's second page starts half a page early (the catalog keeps growing at its start): fetched again
    [catalog] attempts times, then the date fails naming the change and the runbook's entry for it."""
    with DummyJsonServer() as server:
        for _ in range(TASK_ATTEMPTS):
            server.fail_next("shifted", after=1)
        result = land_products(tmp_path, server.url)
        assert len(pages(server)) == TASK_ATTEMPTS * 2 and server.pending_faults() == 0
    assert result.returncode == 30, result.stdout[-3000:]
    assert result.stdout.count("this can heal, will retry") == TASK_ATTEMPTS - 1
    assert (f"CatalogChangedWhileRead: GET {server.url}/products?limit=100&skip=100: 50 of its 94 products came on an"
            " earlier page too (id 51 ...); the catalog changed while it was read") in result.stdout
    assert f"the catalog kept changing while it was read: gave up after {TASK_ATTEMPTS} attempts ([catalog] attempts)" \
        in result.stdout
    assert "what to do (catalog changing while read): the catalog kept changing while read: once its update is over," \
        " `luigi --module pipeline.tasks DailyPipeline --date 2025-12-15 --local-scheduler`" in result.stdout
    assert luigi_attempts(result.stdout) == 1 and not landed(tmp_path)
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize(
    ("fault", "attempts", "requests_per_attempt", "error", "message"),
    [
        ("500", TASK_ATTEMPTS, RETRIES + 1, "CatalogApiTransientError", f"failed {RETRIES + 1} times, last: HTTP 500"),
        ("html", 1, 1, "CatalogApiBadResponse", "did not return JSON (Content-Type 'text/html"),
        ("bad_shape", 1, 1, "CatalogApiBadResponse", "returned the wrong shape"),
        ("short", 1, RETRIES + 1, "CatalogApiBadResponse", "short page: limit says 100 items but it holds 33"),
    ],
    ids=["500-forever", "html-page", "wrong-shape", "short-page-forever"],
)
def test_a_broken_api_fails_the_task_after_bounded_retries_with_a_clear_error(
        tmp_path, fault, attempts, requests_per_attempt, error, message) -> None:
    """Only a transient failure is fetched again ([catalog] attempts); an answer that breaks the contract
    fails at once."""
    with DummyJsonServer() as server:
        server.fail_next(fault, times=1000)
        result = land_products(tmp_path, server.url)
        requests = len(pages(server))
    assert result.returncode == 30, result.stdout[-3000:]
    assert f"{error}: GET {server.url}/products?limit=100&skip=0" in result.stdout
    assert message in result.stdout
    assert "ECOMM_PRODUCTS_URL" in result.stdout, "the error says how to fall back to files"
    assert requests == attempts * requests_per_attempt, "retries are bounded: client x task"
    assert luigi_attempts(result.stdout) == 1, "Luigi runs the task once"
    assert result.stdout.count("this can heal, will retry") == attempts - 1
    if attempts > 1:
        assert f"gave up after {attempts} attempts ([catalog] attempts)" in result.stdout
    assert not landed(tmp_path), "nothing is landed from a broken API"
    assert "Traceback" not in result.stdout, "a failure the runbook knows is its line, not a traceback"
    assert "what to do (catalog API failing): check the URL and the API; once it answers, `luigi --module" \
        " pipeline.tasks DailyPipeline --date 2025-12-15 --local-scheduler`" in result.stdout


def test_a_malformed_catalog_file_fails_at_once_with_the_production_config(tmp_path) -> None:
    """luigi.cfg as it ships ([scheduler] retry_count 3, retry_delay 300): a catalog file that cannot be read
    is bad data, not an outage: the first attempt fails with the reason, no retry 5 minutes later."""
    folder = tmp_path / "incoming" / "products"
    folder.mkdir(parents=True)
    (folder / f"products_{D}.json").write_text('[{"id": 1, "title": "Mascara", "price": 9.99}, {"id": 2, "tit')
    env = clean_env(ECOMM_DATA_DIR=str(tmp_path / "incoming"), ECOMM_LAKE_DIR=str(tmp_path / "lake"),
                    ECOMM_PG_DATA=str(tmp_path / "no-postgres"))  # no LUIGI_CONFIG_PATH: luigi.cfg only
    started = time.monotonic()
    with subprocess.Popen(
            [sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "LandProducts", "--date", D,
             "--local-scheduler", "--no-lock"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            output, _ = proc.communicate(timeout=120)  # a Luigi retry would come after 300 s
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            pytest.fail(f"still running after 120 s: the malformed file waits for a retry\n{output[-3000:]}")
    assert proc.returncode == 30, output[-3000:]
    assert f"products_{D}.json" in output and "SourceFileInvalid" in output, output[-3000:]
    assert luigi_attempts(output) == 1 and "will retry" not in output
    assert time.monotonic() - started < 120
    assert not landed(tmp_path)


def test_a_snapshot_is_fetched_once_when_a_date_it_covers_runs_beside_its_own(tmp_path) -> None:
    """A backfill's two workers: the date a snapshot covers waits for the snapshot's own task, not a second fetch."""
    monday, wednesday = D, "2025-12-17"
    cfg = tmp_path / "luigi-test.cfg"
    cfg.write_text(TEST_CFG.replace("timeout_seconds = 0.5", "timeout_seconds = 5"))
    env = clean_env(ECOMM_PRODUCTS_URL="", ECOMM_DATA_DIR=str(tmp_path / "incoming"),
                    ECOMM_LAKE_DIR=str(tmp_path / "lake"), LUIGI_CONFIG_PATH=str(cfg),
                    ECOMM_PG_DATA=str(tmp_path / "no-postgres"))
    script = ("import datetime as dt, sys, luigi; from pipeline.tasks import LandProducts;"
              " ok = luigi.build([LandProducts(date=dt.date.fromisoformat(d)) for d in sys.argv[1:]],"
              " workers=2, local_scheduler=True); sys.exit(0 if ok else 1)")
    with DummyJsonServer(slow_seconds=1.0) as server:
        server.fail_next("timeout")  # the first page answers after 1 s: both tasks would be fetching at once
        env["ECOMM_PRODUCTS_URL"] = server.url
        result = subprocess.run([sys.executable, "-c", script, wednesday, monday], check=False, cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180)
        assert result.returncode == 0, result.stdout[-3000:]
        assert len(pages(server)) == 2, f"one fetch of both pages, not one per task: {pages(server)}"
    assert landed(tmp_path)
    assert not (tmp_path / "lake" / "raw" / "products" / f"load_date={wednesday}").exists()
