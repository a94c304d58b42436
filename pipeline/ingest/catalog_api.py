"""Client for the products/users HTTP API (DummyJSON contract): paginated, with timeouts and retries.

`fetch_all(base_url, "products")` pages through `GET {base_url}/products?limit=L&skip=S` until it
holds `total` items and returns them exactly as received (a gzip-compressed answer decompressed).
Field checks are not done here: items with missing fields are quarantined downstream. What would make the
catalog partial is refused instead (`CatalogApiBadResponse`, nothing landed): a short page, items past `total`,
and an id served twice within a page, ids compared as staging identifies them (91 and "91" are one product:
`catalog_ids`), since each repeat stands in for an item never served. A `total` that changes between pages and
an item of an earlier page served again mean the catalog changed while it was read: `CatalogChangedWhileRead`,
a `CatalogApiTransientError` (a fetch from the first page may read it whole). The errors live in
`catalog_errors` and are re-exported here.

Each request is bounded (`catalog_http`): a total deadline besides the per-read timeout, a size limit on
the body as sent and decompressed, redirects followed only within the same scheme, host and port, JSON
nested no deeper than MAX_JSON_DEPTH. A key the API wants goes in the Authorization header from
$ECOMM_CATALOG_AUTHORIZATION; one left in the URL's query is masked (`redact_url`) in every message and in
the lineage (`source_url`), and a URL with user:password@ is refused as a setting.
"""
from __future__ import annotations

import dataclasses
import email.utils
import http.client
import logging
import os
import time
import urllib.error
import urllib.parse
import zlib
from datetime import UTC
from typing import Any

from pipeline.config import BadSetting
from pipeline.ingest import catalog_http, json_numbers
from pipeline.ingest.catalog_errors import (CHANGED, CatalogApiBadResponse, CatalogApiError,
                                             CatalogApiTransientError, CatalogChangedWhileRead)
from pipeline.ingest.catalog_http import redact_url
from pipeline.ingest.catalog_ids import check_drift, distinct_count

# the errors are re-exported: callers catch them as catalog_api.CatalogApi...
__all__ = ["AUTHORIZATION_VARIABLE", "CatalogApiBadResponse", "CatalogApiError", "CatalogApiTransientError",
           "CatalogChangedWhileRead", "fetch_all", "page_url", "redact_url", "source_url"]

logger = logging.getLogger(__name__)

RESOURCES = ("products", "users")
# A server asking for a longer pause is down for maintenance, not throttling: fail now, run later.
MAX_RETRY_AFTER_SECONDS = 60.0
USER_AGENT = "ecomm-warehouse-catalog/0.1 (+python-urllib)"
# The Authorization header sent with every catalog request, from the environment only (a secret: never in
# luigi.cfg, never in a message). E.g. `Bearer <token>`, or `Basic <base64 of user:password>`.
AUTHORIZATION_VARIABLE = "ECOMM_CATALOG_AUTHORIZATION"
# Bytes read per answer, as sent and again decompressed: a DummyJSON page is a few KB, a whole catalog in one
# page a few MB. Beyond it the answer is refused (not retried) instead of filling the memory.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
# A request's total deadline, in multiples of the per-read timeout: a server dripping bytes slower than
# that resets the per-read timeout forever. Exceeded, it is retried like a timeout.
DEADLINE_TIMEOUTS = 6
# Lists/objects nested deeper than this are refused: a catalog page nests 4 or 5 levels.
MAX_JSON_DEPTH = 64


@dataclasses.dataclass(frozen=True)
class _Client:
    """What every request of one fetch shares."""

    headers: dict[str, str] = dataclasses.field(repr=False)  # may hold the Authorization header
    timeout: float
    deadline: float
    max_bytes: int


class _Retryable(Exception):
    """One attempt failed in a way worth another try."""

    def __init__(self, reason: str, retry_after: float | None = None, short: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.short = short


def _hint(resource: str) -> str:
    return (f"check the URL and that the API is up, or set [catalog] {resource}_url "
            f"(ECOMM_{resource.upper()}_URL) empty to use the file fallback")


def _resource_path(path: str, resource: str) -> str:
    path = path.rstrip("/")
    return path if path.endswith("/" + resource) else f"{path}/{resource}"


def page_url(base_url: str, resource: str, limit: int, skip: int) -> str:
    """The URL of one page; `base_url` may end in `/` or already in `/{resource}`."""
    parts = urllib.parse.urlsplit(base_url)
    path = _resource_path(parts.path, resource)
    query = urllib.parse.parse_qsl(parts.query) + [("limit", str(limit)), ("skip", str(skip))]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, urllib.parse.urlencode(query), ""))


def source_url(base_url: str, resource: str) -> str:
    """The lineage name of what `fetch_all(base_url, resource)` fetched: its URL without the paging
    parameters, secrets masked (`redact_url`)."""
    parts = urllib.parse.urlsplit(base_url)
    return redact_url(urllib.parse.urlunsplit((parts.scheme, parts.netloc, _resource_path(parts.path, resource),
                                               parts.query, "")))


def authorization_from_environment() -> str:
    """The Authorization header value from $ECOMM_CATALOG_AUTHORIZATION ("" = none); BadSetting if unusable."""
    value = os.environ.get(AUTHORIZATION_VARIABLE, "").strip()
    if any(ord(char) < 32 or ord(char) == 127 for char in value):  # its value is a secret: never shown
        raise BadSetting(f"{AUTHORIZATION_VARIABLE} holds a line break or control character; give one header"
                         " value, e.g. 'Bearer <token>'")
    return value


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def _get_json(url: str, resource: str, client: _Client) -> Any:
    """GET `url` once and parse its JSON body; transient failures raise `_Retryable`."""
    shown = redact_url(url)
    try:
        answer = catalog_http.get(url, client.headers, timeout=client.timeout, total_timeout=client.deadline,
                                  max_bytes=client.max_bytes)
    except urllib.error.HTTPError as err:
        detail = getattr(err, "detail", "")
        if err.code == 429 or err.code >= 500:
            wait = _retry_after(err.headers.get("Retry-After"))
            if wait is not None and wait > MAX_RETRY_AFTER_SECONDS:
                raise CatalogApiTransientError(
                    f"GET {shown} returned HTTP {err.code} asking to retry after {wait:.0f}s; "
                    f"run again later, or {_hint(resource)}") from err
            raise _Retryable(f"HTTP {err.code}", wait) from err
        raise CatalogApiBadResponse(
            f"GET {shown} returned HTTP {err.code} {err.reason} ({detail or 'no body'}); "
            f"not retried: {_hint(resource)}") from err
    except catalog_http.RedirectRefused as err:
        raise CatalogApiBadResponse(
            f"GET {shown} answered with an {err}; not followed (data from elsewhere would be landed under"
            f" this URL's name): set the URL to where the API really is, or {_hint(resource)}") from err
    except catalog_http.ResponseTooLarge as err:
        raise CatalogApiBadResponse(
            f"GET {shown} answered with {err}; not retried (a catalog page is a few KB): check the URL, or"
            f" {_hint(resource)}") from err
    except catalog_http.DeadlineExceeded as err:
        raise _Retryable(f"{err} (the server kept sending too slowly)") from err
    except TimeoutError as err:
        raise _Retryable(f"no answer within {client.timeout}s") from err
    except urllib.error.URLError as err:  # connection refused, DNS failure, timeout while connecting
        raise _Retryable(f"connection failed: {err.reason}") from err
    except (OSError, http.client.HTTPException) as err:  # reset, disconnected, truncated body
        raise _Retryable(f"connection failed: {err!r}") from err
    body = answer.body
    if answer.encoding == "gzip":  # asked for: DummyJSON and most APIs compress what they send
        try:
            body = catalog_http.gunzip_capped(body, client.max_bytes)
        except catalog_http.ResponseTooLarge as err:
            raise CatalogApiBadResponse(f"GET {shown} answered with {err}; not retried (a catalog page is a few"
                                        f" KB): check the URL, or {_hint(resource)}") from err
        except (zlib.error, EOFError) as err:  # cut off on the way (transient) or not gzip at all
            raise _Retryable(f"a gzip body that cannot be decompressed ({err})") from err
    elif answer.encoding not in ("identity", ""):
        raise CatalogApiBadResponse(f"GET {shown} answered with Content-Encoding {answer.encoding!r}, which this"
                                    f" client does not read (it asks for gzip or none); {_hint(resource)}")
    too_deep = False
    try:
        payload = json_numbers.loads(body)
    except RecursionError:  # raised below, from None: its chained traceback would be a thousand frames
        payload, too_deep = None, True
    except ValueError as err:
        start = body[:60].decode("utf-8", "replace")
        raise CatalogApiBadResponse(
            f"GET {shown} did not return JSON (Content-Type {answer.content_type!r}, body starts {start!r}): "
            f"{err}; {_hint(resource)}") from err
    if too_deep or _deeper_than(payload, MAX_JSON_DEPTH):
        raise CatalogApiBadResponse(f"GET {shown} returned JSON nested more than {MAX_JSON_DEPTH} levels deep"
                                    f" (a catalog page is 4 or 5); not retried: {_hint(resource)}") from None
    return payload


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests lists/objects more than `limit` levels deep (iterative: no recursion limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item))
    return False


def _check_page(payload: Any, url: str, resource: str, skip: int,
                first_total: int | None) -> tuple[list[dict[str, Any]], int, bool]:
    """The page's items, `total`, and whether it is a last page shorter than its `limit` (an echoed limit, or a
    `total` that counts one page: `_fetch_all` asks past it); wrong shapes and a `total` other than the first
    page's (`first_total`) raise, short pages raise `_Retryable`."""
    def bad(problem: str) -> CatalogApiBadResponse:
        return CatalogApiBadResponse(f"GET {redact_url(url)} returned the wrong shape: {problem}; {_hint(resource)}")

    if not isinstance(payload, dict):
        raise bad(f"a JSON {type(payload).__name__}, expected an object with {resource!r} and 'total'")
    items, total = payload.get(resource), payload.get("total")
    if not isinstance(items, list):
        raise bad(f"no list under {resource!r} (keys: {', '.join(sorted(payload)[:10]) or 'none'})")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise bad(f"'total' is {total!r}, expected a non-negative integer")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad(f"item {index} under {resource!r} is a JSON {type(item).__name__}, expected an object")
    echoed = payload.get("skip")
    if isinstance(echoed, int) and echoed != skip:
        raise bad(f"asked for skip={skip} but got skip={echoed}; the API ignores pagination")
    claimed = payload.get("limit")
    if first_total is not None and total != first_total:  # before the short-page checks: a page's retry cannot mend it
        raise CatalogChangedWhileRead(f"GET {redact_url(url)}: total={total}, the first page said"
                                      f" total={first_total}; {CHANGED}")
    if items and skip >= total:  # asked past `total` after a full last page (_fetch_all): it was no catalog's size
        raise _past_total(url, resource, items, skip, total)
    if not items and skip < total:
        raise _Retryable(f"short page: 0 items at skip={skip} although total is {total}", short=True)
    # The real DummyJSON says limit = items returned; an API echoing the limit asked for is short only where
    # the page is not the last (a last page holds total - skip items, whatever `limit` says).
    if isinstance(claimed, int) and len(items) < claimed and skip + len(items) != total:
        raise _Retryable(f"short page: limit says {claimed} items but it holds {len(items)}", short=True)
    if skip + len(items) > total:
        raise _Retryable(f"short page: items run to {skip + len(items)}, past total {total}", short=True)
    return items, total, isinstance(claimed, int) and len(items) < claimed


def _past_total(url: str, resource: str, items: list[dict[str, Any]], skip: int, total: int) -> CatalogApiBadResponse:
    """Items after the last page `total` allowed for: the API's total is not the catalog's size."""
    return CatalogApiBadResponse(
        f"GET {redact_url(url)}: {len(items)} more {resource} at skip={skip}, past total={total}: the API's total is"
        f" not the number of {resource} it holds (a page's count?), so a catalog ending there would be partial;"
        f" {_hint(resource)}")


def _fetch_page(url: str, resource: str, skip: int, *, client: _Client, retries: int, backoff: float,
                first_total: int | None = None) -> tuple[list[dict[str, Any]], int, bool]:
    for attempt in range(retries + 1):
        try:
            return _check_page(_get_json(url, resource, client), url, resource, skip, first_total)
        except _Retryable as err:
            if attempt == retries:
                error = CatalogApiBadResponse if err.short else CatalogApiTransientError
                raise error(f"GET {redact_url(url)} failed {attempt + 1} times, last: {err.reason}; "
                            f"{_hint(resource)}") from err
            delay = backoff * 2 ** attempt
            if err.retry_after is not None:
                delay = max(delay, err.retry_after)
            logger.warning("GET %s failed (%s); retry %d of %d in %.2fs",
                           redact_url(url), err.reason, attempt + 1, retries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def fetch_all(base_url: str, resource: str, *, page_size: int = 100, timeout: float = 10.0,
              retries: int = 3, backoff: float = 0.5, max_pages: int = 1000, authorization: str | None = None,
              deadline: float | None = None, max_response_bytes: int | None = None) -> list[dict[str, Any]]:
    """Every item of `resource` ("products" or "users") from the API at `base_url`, as received.

    `authorization`: the Authorization header of every request (None: $ECOMM_CATALOG_AUTHORIZATION, "": none).
    `deadline`: seconds one request may take in all (None: DEADLINE_TIMEOUTS x `timeout`).
    `max_response_bytes`: bytes read of one answer, as sent and decompressed (None: MAX_RESPONSE_BYTES)."""
    if resource not in RESOURCES:
        raise ValueError(f"resource must be one of {RESOURCES}, not {resource!r}")
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"base_url must be an http(s) URL, not {redact_url(base_url)!r}")
    if "@" in parts.netloc:  # urllib would send user:password as part of the host name, and print it
        raise BadSetting(f"the {resource} API URL {redact_url(base_url)} holds credentials (user:password@),"
                         f" which this client does not send and which would show in every message: remove them"
                         f" from the URL and set {AUTHORIZATION_VARIABLE}='Basic <base64 of user:password>'"
                         " in the environment instead (docs/security.md)")
    if page_size < 1 or retries < 0 or max_pages < 1 or timeout <= 0:
        raise ValueError("page_size and max_pages must be >= 1, retries >= 0 and timeout > 0")
    deadline = DEADLINE_TIMEOUTS * timeout if deadline is None else deadline
    max_response_bytes = MAX_RESPONSE_BYTES if max_response_bytes is None else max_response_bytes
    if deadline <= 0 or max_response_bytes < 1:
        raise ValueError("deadline and max_response_bytes must be > 0")
    if authorization is None:
        authorization = authorization_from_environment()
    headers = {"Accept": "application/json", "Accept-Encoding": "gzip", "User-Agent": USER_AGENT}
    if authorization:
        headers["Authorization"] = authorization
    client = _Client(headers, timeout, deadline, max_response_bytes)
    secrets = catalog_http.secrets_in(base_url, authorization)
    try:
        return _fetch_all(base_url, resource, client, page_size=page_size, retries=retries, backoff=backoff,
                          max_pages=max_pages)
    except CatalogApiError as err:  # a server may echo a key back in an error body
        err.args = tuple(catalog_http.scrub(arg, secrets) if isinstance(arg, str) else arg for arg in err.args)
        raise


def _fetch_all(base_url: str, resource: str, client: _Client, *, page_size: int, retries: int, backoff: float,
               max_pages: int) -> list[dict[str, Any]]:
    collected: list[dict[str, Any]] = []
    skip, total, seen, repeated = 0, 0, set(), None
    for _ in range(max_pages):
        url = page_url(base_url, resource, page_size, skip)
        first_total = total if collected else None
        items, total, short_last = _fetch_page(url, resource, skip, client=client, retries=retries, backoff=backoff,
                                               first_total=first_total)
        within = check_drift(url, resource, items, seen)
        repeated = (within, skip) if repeated is None and within is not None else repeated
        collected.extend(items)
        skip += len(items)
        logger.info("Fetched %s page skip=%d: %d items (%d of %d)",
                    resource, skip - len(items), len(items), len(collected), total)
        if skip >= total:
            if len(items) >= page_size or short_last:  # a full last page, or one short of its `limit` (an API that
                # caps pages and echoes the limit asked for): ask once past it (a `total` counting one page)
                url = page_url(base_url, resource, page_size, skip)
                more, _, _ = _fetch_page(url, resource, skip, client=client, retries=retries, backoff=backoff)
                if more:
                    raise _past_total(url, resource, more, skip, total)
            break
    else:
        raise CatalogApiBadResponse(
            f"{resource}: still {len(collected)} of {total} items after max_pages={max_pages} pages "
            f"from {redact_url(base_url)}; raise page_size or max_pages")
    if len(collected) != total:  # a safeguard: a `total` that changed between pages is refused by _check_page
        raise CatalogChangedWhileRead(
            f"{resource}: short page: fetched {len(collected)} items but the API now says total={total}; {CHANGED}")
    # Every item a distinct id (those without one are quarantined downstream): a repeat within a page stands in
    # for an item never served, though the count of items matches `total`.
    distinct = distinct_count(collected, seen)
    if distinct != total:
        example = f"id {repeated[0]!r} came twice on the page at skip={repeated[1]}" if repeated else "ids repeat"
        raise CatalogApiBadResponse(
            f"{resource}: only {distinct} distinct {resource} of total={total} from {source_url(base_url, resource)}"
            f" ({example}), so {total - distinct} were never served; nothing was landed: the API serves an item twice"
            f" in place of another (tell its owner), or set [catalog] {resource}_url (ECOMM_{resource.upper()}_URL)"
            " empty to use the file fallback")
    logger.info("Fetched %d %s from %s", len(collected), resource, redact_url(base_url))
    return collected
