"""The catalog API client against a real local HTTP server serving the DummyJSON fixtures (no mocks)."""
from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.ingest.catalog_api import (  # noqa: E402
    CatalogApiBadResponse,
    CatalogApiError,
    CatalogApiTransientError,
    CatalogChangedWhileRead,
    fetch_all,
    page_url,
)
from tests.support.dummyjson_server import DummyJsonServer

FAST = {"backoff": 0.01, "timeout": 2.0}


@pytest.fixture(scope="module")
def server() -> Iterator[DummyJsonServer]:
    with DummyJsonServer(slow_seconds=2.0) as srv:
        yield srv


@pytest.fixture
def api(server: DummyJsonServer) -> Iterator[DummyJsonServer]:
    """The shared server with an empty request log and no faults left over from another test."""
    server.requests.clear()
    assert server.pending_faults() == 0, "a previous test left faults queued"
    yield server
    server.clear_faults()


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def page_requests(api: DummyJsonServer, resource: str) -> list[str]:
    return [path for path in api.requests if path.startswith(f"/{resource}?")]


# --- the server's contract ---------------------------------------------------------------------

def test_server_pages_like_dummyjson(api: DummyJsonServer) -> None:
    status, page = get_json(f"{api.url}/products?limit=10&skip=190")
    assert status == 200
    assert (page["total"], page["skip"], page["limit"]) == (194, 190, 4)
    assert [p["id"] for p in page["products"]] == [191, 192, 193, 194]
    _, default = get_json(f"{api.url}/users")
    assert (default["limit"], len(default["users"]), default["total"]) == (30, 30, 208)


def test_server_limit_zero_returns_everything(api: DummyJsonServer) -> None:
    _, products = get_json(f"{api.url}/products?limit=0")
    _, users = get_json(f"{api.url}/users?limit=0&skip=200")
    assert (len(products["products"]), products["limit"], products["total"]) == (194, 194, 194)
    assert (len(users["users"]), users["limit"], users["total"]) == (8, 8, 208)


def test_server_single_product_and_404(api: DummyJsonServer) -> None:
    status, product = get_json(f"{api.url}/products/7")
    assert status == 200 and product["id"] == 7
    status, missing = get_json(f"{api.url}/products/999")
    assert status == 404
    assert missing == {"message": "Product with id '999' not found"}


def test_server_rejects_unknown_fault(api: DummyJsonServer) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        api.fail_next("teapot")


# --- the client: happy paths -------------------------------------------------------------------

def test_fetches_every_product_across_pages_as_received(api: DummyJsonServer) -> None:
    products = fetch_all(api.url, "products", page_size=50, **FAST)
    assert [p["id"] for p in products] == list(range(1, 195))
    assert page_requests(api, "products") == [
        f"/products?limit=50&skip={skip}" for skip in (0, 50, 100, 150)]
    assert products == api.data["products"]  # nested dimensions/reviews/meta kept untouched
    assert isinstance(products[0]["dimensions"], dict) and isinstance(products[0]["reviews"], list)
    assert sum(1 for p in products if "brand" not in p) == 92


def test_fetches_every_user_across_pages(api: DummyJsonServer) -> None:
    users = fetch_all(api.url + "/", "users", **FAST)  # trailing slash on the base URL
    assert len(users) == 208 and len({u["id"] for u in users}) == 208
    assert users[0]["address"]["city"]
    assert len(page_requests(api, "users")) == 3


def test_page_url_accepts_base_urls_in_several_forms() -> None:
    expected = "http://h:1/api/products?limit=5&skip=10"
    for base in ("http://h:1/api", "http://h:1/api/", "http://h:1/api/products"):
        assert page_url(base, "products", 5, 10) == expected
    assert page_url("http://h/?key=a b", "users", 1, 0) == "http://h/users?key=a+b&limit=1&skip=0"


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="resource"):
        fetch_all("http://127.0.0.1:1", "carts")
    with pytest.raises(ValueError, match="http"):
        fetch_all("127.0.0.1:1", "products")


# --- the client: transient faults are retried ---------------------------------------------------

@pytest.mark.parametrize("kind", ["500", "503", "429"])
def test_transient_status_is_retried_then_succeeds(
        api: DummyJsonServer, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    api.fail_next(kind)
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest.catalog_api"):
        products = fetch_all(api.url, "products", **FAST)
    assert len(products) == 194
    assert page_requests(api, "products") == [
        "/products?limit=100&skip=0", "/products?limit=100&skip=0", "/products?limit=100&skip=100"]
    assert f"HTTP {kind}" in caplog.text and "retry 1 of 3" in caplog.text


def test_long_retry_after_fails_at_once(api: DummyJsonServer) -> None:
    api.fail_next("429")
    api.retry_after = "3600"
    try:
        with pytest.raises(CatalogApiTransientError, match="retry after 3600s"):
            fetch_all(api.url, "products", **FAST)
    finally:
        api.retry_after = "0"
    assert len(api.requests) == 1


def test_persistent_500_gives_up_after_retries_plus_one_attempts(api: DummyJsonServer) -> None:
    api.fail_next("500", times=10)
    with pytest.raises(CatalogApiTransientError, match="HTTP 500") as caught:
        fetch_all(api.url, "products", retries=2, **FAST)
    assert len(api.requests) == 3
    assert f"{api.url}/products?limit=100&skip=0" in str(caught.value)
    assert "products_url" in str(caught.value)  # tells the user about the file fallback
    assert isinstance(caught.value, CatalogApiError)


def test_failure_on_a_later_page_retries_that_page_only(api: DummyJsonServer) -> None:
    api.fail_next("503", times=2, after=1)
    assert len(fetch_all(api.url, "products", page_size=100, **FAST)) == 194
    assert page_requests(api, "products") == [
        "/products?limit=100&skip=0"] + ["/products?limit=100&skip=100"] * 3


def test_timeout_is_retried_then_succeeds(api: DummyJsonServer) -> None:
    # the server answers the first request after 2 s, in full: had the client waited for it, the
    # first page would have been asked for once
    api.fail_next("timeout")
    products = fetch_all(api.url, "products", timeout=0.3, backoff=0.01)
    assert len(products) == 194
    assert page_requests(api, "products") == [
        "/products?limit=100&skip=0", "/products?limit=100&skip=0", "/products?limit=100&skip=100"]


def test_persistent_timeout_raises_transient(api: DummyJsonServer) -> None:
    api.fail_next("timeout", times=2)
    with pytest.raises(CatalogApiTransientError, match=r"no answer within 0\.3s"):
        fetch_all(api.url, "products", timeout=0.3, retries=1, backoff=0.01)
    assert len(api.requests) == 2


def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CatalogApiTransientError, match="connection failed") as caught:
        fetch_all(f"http://127.0.0.1:{port}", "users", retries=1, **FAST)
    assert f"127.0.0.1:{port}/users" in str(caught.value) and "2 times" in str(caught.value)


# --- the client: unusable answers ---------------------------------------------------------------

def test_a_gzip_compressed_answer_is_read(api: DummyJsonServer) -> None:
    api.fail_next("gzip", times=2)  # both pages, as a server compressing what it sends would
    products = fetch_all(api.url, "products", page_size=100, **FAST)
    assert products == api.data["products"] and api.pending_faults() == 0


def test_html_body_is_rejected_without_retry(api: DummyJsonServer) -> None:
    api.fail_next("html")
    with pytest.raises(CatalogApiBadResponse, match="did not return JSON") as caught:
        fetch_all(api.url, "products", **FAST)
    assert "text/html" in str(caught.value) and "<html>" in str(caught.value)
    assert len(api.requests) == 1


def test_wrong_shape_is_rejected(api: DummyJsonServer) -> None:
    api.fail_next("bad_shape")
    with pytest.raises(CatalogApiBadResponse, match="no list under 'products'") as caught:
        fetch_all(api.url, "products", **FAST)
    assert "wrong shape" in str(caught.value) and "/products?limit=100&skip=0" in str(caught.value)
    assert len(api.requests) == 1


@pytest.mark.parametrize("kind", ["short", "empty"])
def test_short_page_once_is_retried(api: DummyJsonServer, kind: str) -> None:
    api.fail_next(kind)
    assert len(fetch_all(api.url, "users", **FAST)) == 208
    assert len(api.requests) == 4


@pytest.mark.parametrize("kind", ["short", "empty"])
def test_persistent_short_page_is_a_bad_response(api: DummyJsonServer, kind: str) -> None:
    api.fail_next(kind, times=3, after=1)  # the second page stays short on every attempt
    with pytest.raises(CatalogApiBadResponse, match="short page") as caught:
        fetch_all(api.url, "users", retries=2, **FAST)
    assert "/users?limit=100&skip=100" in str(caught.value) and "3 times" in str(caught.value)
    assert len(api.requests) == 4


def test_a_page_repeating_items_of_an_earlier_page_says_the_catalog_changed(api: DummyJsonServer) -> None:
    """The catalog grew while it was read: the second page starts with the end of the first. Taken as it came, its
    items would collapse as duplicates in staging and the last ones would never be fetched, the date published.
    A transient error: a fetch from the first page may read it whole (the land task fetches again)."""
    api.fail_next("shifted", after=1)
    with pytest.raises(CatalogChangedWhileRead) as caught:
        fetch_all(api.url, "products", **FAST)
    assert str(caught.value).startswith(f"GET {api.url}/products?limit=100&skip=100: 50 of its 94 products came on an"
                                        " earlier page too (id 51 ...); the catalog changed while it was read"), caught.value
    assert "run again" in str(caught.value)


def test_a_total_that_changes_between_pages_says_the_catalog_changed(api: DummyJsonServer) -> None:
    """The second page says the catalog ends with it (total 147 of 194): not a short catalog to accept."""
    api.fail_next("shrunk", after=1)
    with pytest.raises(CatalogChangedWhileRead, match=r"total=147, the first page said total=194; the catalog changed"):
        fetch_all(api.url, "products", **FAST)


def test_a_total_that_counts_one_page_is_a_bad_response_not_a_partial_catalog(api: DummyJsonServer) -> None:
    """An API whose `total` ends with each page: the first full page looked like the whole catalog (100 of 194
    products landed, the rest recorded nowhere, the date published). A full last page is followed by one more ask."""
    api.total_is_page = True
    try:
        with pytest.raises(CatalogApiBadResponse) as caught:
            fetch_all(api.url, "products", **FAST)
    finally:
        api.total_is_page = False
    assert str(caught.value).startswith(f"GET {api.url}/products?limit=100&skip=100: 94 more products at skip=100,"
                                        " past total=100: the API's total is not the number of products it holds")
    assert page_requests(api, "products") == ["/products?limit=100&skip=0", "/products?limit=100&skip=100"]


def test_a_catalog_that_ends_with_a_full_page_is_fetched_with_one_more_ask(api: DummyJsonServer) -> None:
    every = api.data["products"]
    api.data["products"] = every[:100]
    try:
        products = fetch_all(api.url, "products", **FAST)
    finally:
        api.data["products"] = every
    assert len(products) == 100
    assert page_requests(api, "products") == ["/products?limit=100&skip=0", "/products?limit=100&skip=100"]


def test_missing_fields_are_passed_through_for_downstream_quarantine(api: DummyJsonServer) -> None:
    api.fail_next("missing_fields")
    products = fetch_all(api.url, "products", page_size=50, **FAST)
    assert len(products) == 194
    assert all("price" not in p and "title" not in p for p in products[:50])
    assert all("price" in p and "title" in p for p in products[50:])


def test_404_is_not_retried(api: DummyJsonServer) -> None:
    with pytest.raises(CatalogApiBadResponse, match="HTTP 404") as caught:
        fetch_all(api.url + "/v2", "products", **FAST)
    assert len(api.requests) == 1
    assert f"{api.url}/v2/products" in str(caught.value) and "not retried" in str(caught.value)


# --- ids compared as staging identifies them; a catalog that changed; a last page echoing the limit ------------

def test_ids_of_an_earlier_page_again_as_text_say_the_catalog_changed(api: DummyJsonServer) -> None:
    """The second page repeats products 51..100 with ids "51".."100": staging makes both PROD_0051, so these are the
    same products again, and as many later ones were never fetched (the tester's rc=0 publish, 7 "Unknown product")."""
    api.fail_next("shifted_text_ids", after=1)
    with pytest.raises(CatalogChangedWhileRead) as caught:
        fetch_all(api.url, "products", **FAST)
    assert str(caught.value).startswith(f"GET {api.url}/products?limit=100&skip=100: 50 of its 94 products came on an"
                                        " earlier page too (id '51' ...); the catalog changed while it was read")


@pytest.mark.parametrize(("resource", "total"), [("products", 194), ("users", 208)])
def test_ids_repeated_within_one_page_are_a_bad_response(api: DummyJsonServer, resource: str, total: int) -> None:
    """The first page holds items 1..90, then 1..10 again: as many items as `total`, but 91..100 never served. Not
    a catalog that changed while it was read: the API serves it so every time, so it is not transient."""
    api.fail_next("repeats_within")
    with pytest.raises(CatalogApiBadResponse) as caught:
        fetch_all(api.url, resource, **FAST)
    assert not isinstance(caught.value, CatalogApiTransientError)
    assert str(caught.value) == (
        f"{resource}: only {total - 10} distinct {resource} of total={total} from {api.url}/{resource} (id 1 came twice"
        f" on the page at skip=0), so 10 were never served; nothing was landed: the API serves an item twice in place"
        f" of another (tell its owner), or set [catalog] {resource}_url (ECOMM_{resource.upper()}_URL) empty to use"
        " the file fallback")


def test_ids_that_differ_only_as_text_and_integer_are_distinct_items_when_not_repeated(api: DummyJsonServer) -> None:
    every = api.data["products"]
    api.data["products"] = [{**item, "id": str(item["id"])} if item["id"] % 2 else item for item in every]
    try:
        assert len(fetch_all(api.url, "products", page_size=30, **FAST)) == 194
    finally:
        api.data["products"] = every


@pytest.mark.parametrize(("resource", "first", "now"), [("products", 194, 189), ("users", 208, 203)])
def test_a_catalog_that_shrinks_mid_fetch_says_so_at_once(api: DummyJsonServer, resource: str, first: int,
                                                          now: int) -> None:
    """The second page's `total` is 5 lower while its items still run to the old end: the catalog changed, which a
    retry of that page cannot mend (products used to fail "short page: items run to 194" after 4 tries)."""
    api.fail_next("total_dropped", after=1)
    with pytest.raises(CatalogChangedWhileRead) as caught:
        fetch_all(api.url, resource, **FAST)
    assert str(caught.value).startswith(f"GET {api.url}/{resource}?limit=100&skip=100: total={now}, the first page"
                                        f" said total={first}; the catalog changed while it was read"), caught.value
    assert len(page_requests(api, resource)) == 2


@pytest.mark.parametrize(("resource", "total"), [("products", 194), ("users", 208)])
def test_a_last_page_echoing_the_limit_asked_for_is_accepted(api: DummyJsonServer, resource: str, total: int) -> None:
    """`{"limit": 100}` on a last page of 94 (or 8) items: they are the items up to `total`, nothing is missing."""
    api.echo_limit = True
    try:
        assert len(fetch_all(api.url, resource, **FAST)) == total
    finally:
        api.echo_limit = False
    # each page once, nothing retried, and one ask past the end: a page short of an echoed limit may be a capped one
    assert len(page_requests(api, resource)) == total // 100 + 2


def test_a_short_middle_page_is_refused_though_the_api_echoes_the_limit(api: DummyJsonServer) -> None:
    api.echo_limit = True
    api.fail_next("short", times=3, after=1)
    try:
        with pytest.raises(CatalogApiBadResponse, match="short page: limit says 100 items but it holds 33"):
            fetch_all(api.url, "users", retries=2, **FAST)
    finally:
        api.echo_limit = False


def test_a_last_page_short_of_an_echoed_limit_is_followed_by_one_more_ask(api: DummyJsonServer) -> None:
    """An API that caps its pages (33 of the 100 asked for), echoes the limit asked for and counts one page in
    `total`: its first page looked like a whole catalog of 33 (a short last page is accepted when `limit` is echoed)."""
    api.echo_limit, api.total_is_page = True, True
    api.fail_next("short", times=1)
    try:
        with pytest.raises(CatalogApiBadResponse):
            fetch_all(api.url, "products", **FAST)
    finally:
        api.echo_limit, api.total_is_page = False, False
    assert page_requests(api, "products")[-1] == "/products?limit=100&skip=33"


def test_id_key_is_stagings_catalog_id() -> None:
    """The client's id_key against the staging macros it stands in for (sql/staging/macros.sql catalog_id)."""
    import duckdb

    from pipeline.ingest.catalog_ids import id_key
    from pipeline.transform import staging

    ids: list[Any] = [91, "91", " 91 ", "0091", "091", 7, "12345", 123456, "0123456", "00091", "000091", "0", "00000", "\u00a042\t", "\ufeff91",
                      "\u200b91", "\x1c91", "PROD_0091", -91, "+91", "91.0", "\u0669\u0661", "", " "]
    with duckdb.connect() as con:
        staging.define_macros(con)
        for value in ids:
            record = json.dumps({"id": value})
            sql = "select catalog_id('', clean_text(json_extract_string($r, '$.id')))"
            assert con.execute(sql, {"r": record}).fetchone()[0] == id_key(value), value
    assert id_key(None) is None and id_key(True) is None and id_key(9.5) is None
    # leading zeros dropped before padding: a padded id is the same item however many zeros it was sent with
    assert [id_key(v) for v in ("00091", "0000091", 91, "0123456", "0")] == ["0091", "0091", "0091", "123456", "0000"]
