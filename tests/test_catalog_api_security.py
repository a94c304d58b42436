"""The catalog API client against hostile or careless servers: secrets in URLs and headers, redirects,
oversized and endless answers, deep JSON. A real local server (tests/support/dummyjson_server.py), no mocks."""
from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from pipeline import lake
from pipeline.config import BadSetting
from pipeline.ingest import catalog_api, landing
from pipeline.ingest.catalog_api import CatalogApiBadResponse, CatalogApiTransientError, fetch_all
from tests.support.dummyjson_server import DummyJsonServer

FAST = {"backoff": 0.01, "timeout": 2.0}
AUTHORIZATION = "ECOMM_CATALOG_AUTHORIZATION"
MiB = 1024 * 1024
KEY = "SEKRET-0123456789"
D = dt.date(2025, 12, 15)  # a Monday: the catalog's snapshot day


@pytest.fixture(scope="module")
def server() -> Iterator[DummyJsonServer]:
    with DummyJsonServer() as srv:
        yield srv


@pytest.fixture
def api(server: DummyJsonServer) -> Iterator[DummyJsonServer]:
    server.requests.clear()
    server.authorizations.clear()
    assert server.pending_faults() == 0, "a previous test left faults queued"
    yield server
    server.clear_faults()
    server.require_authorization = None
    server.redirect_to = ""


@pytest.fixture
def other() -> Iterator[DummyJsonServer]:
    """A second server on another port: where a hostile redirect points."""
    with DummyJsonServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def no_authorization_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTHORIZATION, raising=False)


# --- 1a: URLs shown with their secrets masked ----------------------------------------------------

@pytest.mark.parametrize(("url", "shown"), [
    ("https://api.example.com/products?api_key=SEKRET", "https://api.example.com/products?api_key=***"),
    ("https://h/p?limit=5&Access_Token=a%20b&skip=0", "https://h/p?limit=5&Access_Token=***&skip=0"),
    ("https://b.s3.amazonaws.com/p.json?X-Amz-Credential=AK%2F1&X-Amz-Signature=ab12&X-Amz-Expires=60",
     "https://b.s3.amazonaws.com/p.json?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60"),
    ("http://u:s3cret@h:8080/x?sig=1&session_id=2&PASSWD=3&client_secret=4&auth=5",
     "http://u:***@h:8080/x?sig=1&session_id=***&PASSWD=***&client_secret=***&auth=***".replace("sig=1", "sig=***")),
    ("https://tok123@h/x", "https://***@h/x"),
    ("https://h/x?limit=10&skip=0&key=", "https://h/x?limit=10&skip=0&key="),
    ("https://h/x#access_token=abc", "https://h/x#access_token=***"),
    ("https://h/x?user=svc&pwd=1&pass=2&PW=3&user_pwd=4&userPwd=5",
     "https://h/x?user=svc&pwd=***&pass=***&PW=***&user_pwd=***&userPwd=***"),
    ("https://h/x?passenger=1&compass=2&design=3", "https://h/x?passenger=1&compass=2&design=3"),  # not secrets
])
def test_redact_url_masks_passwords_and_secret_looking_parameters(url: str, shown: str) -> None:
    assert catalog_api.redact_url(url) == shown


def test_messages_name_the_url_with_the_key_masked(api: DummyJsonServer) -> None:
    api.fail_next("500", times=2)
    with pytest.raises(CatalogApiTransientError) as caught:
        fetch_all(f"{api.url}/?api_key={KEY}", "products", retries=1, **FAST)
    message = str(caught.value)
    assert KEY not in message and f"{api.url}/products?api_key=***&limit=100&skip=0" in message
    assert api.requests[0] == f"/products?api_key={KEY}&limit=100&skip=0"  # the key is still sent


def test_retry_warnings_mask_the_key(api: DummyJsonServer, caplog: pytest.LogCaptureFixture) -> None:
    api.fail_next("503")
    fetch_all(f"{api.url}?access_token={KEY}", "users", **FAST)
    assert "retry 1 of 3" in caplog.text and KEY not in caplog.text and "access_token=***" in caplog.text


def test_lineage_names_the_api_url_with_the_key_masked(api: DummyJsonServer, lake_root: Path, incoming: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOMM_PRODUCTS_URL", f"{api.url}/?api_key={KEY}")
    manifest = landing.land_catalog("products", D)
    assert manifest["rows"] == 194
    expected = f"{api.url}/products?api_key=***"
    stored = (Path(lake.partition_dir("raw", "products", D)) / "_manifest.json").read_text()
    assert KEY not in stored and json.loads(stored)["source_file"] == expected
    for layer, table in (("raw", "products"), ("staging", "stg_products")):
        path = lake.partition_file(layer, table, D)
        if not Path(path).exists():
            continue
        columns = [c for c in duckdb.sql("select * from read_parquet($p)", params={"p": path}).columns
                   if "source_file" in c]
        assert columns, f"{layer}.{table} has no lineage column"
        for column in columns:
            values = duckdb.sql(f'select distinct "{column}" from read_parquet($p)', params={"p": path}).fetchall()
            assert values == [(expected,)], (layer, column, values)
    assert catalog_api.source_url(f"{api.url}/api/?api_key={KEY}", "users") == f"{api.url}/api/users?api_key=***"


def test_an_api_without_records_is_refused_with_the_key_masked(api: DummyJsonServer, lake_root: Path,
                                                                incoming: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(api.data, "products", [])
    monkeypatch.setenv("ECOMM_PRODUCTS_URL", f"{api.url}/?api_key={KEY}")
    with pytest.raises(catalog_api.CatalogApiBadResponse) as caught:
        landing.land_catalog("products", D)
    assert str(caught.value) == f"{api.url}/products?api_key=***: the API returned no records; nothing was landed"


def test_the_settings_check_and_restate_do_not_repeat_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import config
    from pipeline.tasks import restate_catalog

    monkeypatch.setenv("ECOMM_PRODUCTS_URL", f"api.example.com/products?api_key={KEY}")  # the scheme forgotten
    with pytest.raises(config.BadSetting) as caught:
        config.products_url()
    assert KEY not in str(caught.value) and "'api.example.com/products?...'" in str(caught.value)
    monkeypatch.setenv("ECOMM_PRODUCTS_URL", f"https://api.example.com/?api_key={KEY}")
    assert restate_catalog._catalog_reason("products", D, None) == (
        f"the products snapshot of {D} is fetched again from https://api.example.com/?api_key=***")


# --- 1b: the Authorization header from the environment -------------------------------------------

def test_authorization_header_from_the_environment_is_sent_with_every_request(
        api: DummyJsonServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    api.require_authorization = f"Bearer {KEY}"
    monkeypatch.setenv(AUTHORIZATION, f"Bearer {KEY}")
    api.fail_next("503")
    products = fetch_all(api.url, "products", backoff=0.01, timeout=2.0)
    assert len(products) == 194 and api.authorizations == [f"Bearer {KEY}"] * 3
    assert KEY not in caplog.text


def test_a_refused_authorization_is_not_shown_even_if_the_server_echoes_it(
        api: DummyJsonServer, monkeypatch: pytest.MonkeyPatch) -> None:
    api.require_authorization = "Bearer right"
    monkeypatch.setenv(AUTHORIZATION, f"Bearer {KEY}")
    with pytest.raises(CatalogApiBadResponse, match="HTTP 401") as caught:
        fetch_all(api.url, "products", backoff=0.01, timeout=2.0)
    assert KEY not in str(caught.value) and "Bearer ***" in str(caught.value)


def test_an_authorization_with_a_line_break_is_a_setting_error_that_does_not_show_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTHORIZATION, f"Bearer {KEY}\r\nX-Injected: 1")
    with pytest.raises(BadSetting, match=AUTHORIZATION) as caught:
        fetch_all("http://127.0.0.1:9", "products", retries=0)
    assert KEY not in str(caught.value)


# --- 6: user:password@ in the URL ---------------------------------------------------------------

def test_credentials_in_the_url_are_a_setting_error_not_retried(api: DummyJsonServer) -> None:
    url = api.url.replace("http://", f"http://reader:{KEY}@")
    started = time.monotonic()
    with pytest.raises(BadSetting) as caught:
        fetch_all(url, "products", retries=3, backoff=1.0, timeout=2.0)
    message = str(caught.value)
    assert time.monotonic() - started < 0.5 and api.requests == []
    assert KEY not in message and "reader:***@127.0.0.1" in message
    assert AUTHORIZATION in message and "\n" not in message


# --- 2: redirects -------------------------------------------------------------------------------

def test_a_redirect_within_the_same_server_is_followed_with_the_authorization(
        api: DummyJsonServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTHORIZATION, f"Bearer {KEY}")
    api.fail_next("redirect")  # Location: the same path on the same server
    products = fetch_all(api.url, "products", **FAST)
    assert len(products) == 194
    assert api.authorizations == [f"Bearer {KEY}"] * 3


def test_a_redirect_to_another_port_is_refused_and_nothing_reaches_it(
        api: DummyJsonServer, other: DummyJsonServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTHORIZATION, f"Bearer {KEY}")
    api.redirect_to = other.url
    api.fail_next("redirect")
    with pytest.raises(CatalogApiBadResponse, match="redirect") as caught:
        fetch_all(f"{api.url}?api_key={KEY}", "products", **FAST)
    assert other.requests == [] and other.authorizations == []
    assert len(api.requests) == 1  # not retried
    message = str(caught.value)
    assert f"HTTP 302 redirect to {other.url}/products?api_key=***&limit=100&skip=0" in message
    assert KEY not in message


@pytest.mark.parametrize("target", ["ftp://127.0.0.1:{port}", "https://127.0.0.1:{port}", "http://localhost:{port}"])
def test_a_redirect_to_another_scheme_or_host_is_refused(api: DummyJsonServer, target: str) -> None:
    api.redirect_to = target.format(port=api.port)
    api.fail_next("redirect")
    with pytest.raises(CatalogApiBadResponse, match="another scheme, host or port"):
        fetch_all(api.url, "products", **FAST)
    assert len(api.requests) == 1


# --- 3: size ------------------------------------------------------------------------------------

@pytest.fixture
def one_mib_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_api, "MAX_RESPONSE_BYTES", MiB, raising=False)


def test_the_default_limit_is_generous() -> None:
    assert catalog_api.MAX_RESPONSE_BYTES == 256 * MiB  # a real page is a few KB


def test_a_gzip_bomb_is_refused_without_inflating_it(api: DummyJsonServer, one_mib_limit: None) -> None:
    api.fail_next("gzip_bomb")  # 64 MiB of JSON, 65 KB as sent
    with pytest.raises(CatalogApiBadResponse, match=r"inflates to more than 1048576 bytes") as caught:
        fetch_all(api.url, "products", **FAST)
    assert "not retried" in str(caught.value) and len(api.requests) == 1


def test_a_body_over_the_limit_as_sent_is_refused(api: DummyJsonServer, one_mib_limit: None) -> None:
    api.fail_next("huge")  # 2 MiB
    with pytest.raises(CatalogApiBadResponse, match=r"over the 1048576-byte limit"):
        fetch_all(api.url, "products", **FAST)
    assert len(api.requests) == 1


def test_answers_under_the_limit_are_read(api: DummyJsonServer) -> None:
    api.fail_next("gzip", times=2)
    api.fail_next("huge")  # 2 MiB of padding after the first page's JSON: under a 4 MiB limit
    assert len(fetch_all(api.url, "products", max_response_bytes=4 * MiB, **FAST)) == 194


# --- 4: a total deadline --------------------------------------------------------------------------

@pytest.fixture
def one_second_deadline(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """A 0.2 s per-read timeout, and a total deadline of 5 of them."""
    monkeypatch.setattr(catalog_api, "DEADLINE_TIMEOUTS", 5, raising=False)
    return {"timeout": 0.2, "backoff": 0.01}


def test_a_dripping_server_hits_the_deadline_and_is_retried(
        api: DummyJsonServer, one_second_deadline: dict[str, float]) -> None:
    api.fail_next("drip", times=2)  # a byte every 0.1 s for 6 s: never 0.2 s without one
    started = time.monotonic()
    with pytest.raises(CatalogApiTransientError, match=r"no complete answer within the 1s deadline") as caught:
        fetch_all(api.url, "products", retries=1, **one_second_deadline)
    assert time.monotonic() - started < 3.5
    assert "2 times" in str(caught.value) and len(api.requests) == 2


def test_a_dripping_answer_once_is_retried_then_succeeds(
        api: DummyJsonServer, one_second_deadline: dict[str, float]) -> None:
    api.fail_next("drip")
    started = time.monotonic()
    assert len(fetch_all(api.url, "products", **one_second_deadline)) == 194
    assert time.monotonic() - started < 2.5 and len(api.requests) == 3


def test_a_deadline_can_be_given(api: DummyJsonServer) -> None:
    api.fail_next("drip")
    started = time.monotonic()
    with pytest.raises(CatalogApiTransientError, match=r"within the 0\.8s deadline"):
        fetch_all(api.url, "products", timeout=0.2, deadline=0.8, retries=0)
    assert time.monotonic() - started < 2.0
    assert catalog_api.DEADLINE_TIMEOUTS == 6  # 60 s for the default 10 s timeout


# --- 5: deep JSON -------------------------------------------------------------------------------

@pytest.mark.parametrize("levels", [100_000, 200])
def test_deeply_nested_json_is_a_bad_response(api: DummyJsonServer, levels: int) -> None:
    api.deep_levels = levels
    api.fail_next("deep")
    with pytest.raises(CatalogApiBadResponse, match="nested") as caught:
        fetch_all(api.url, "products", **FAST)
    assert caught.value.__cause__ is None and len(api.requests) == 1
