"""Client for the products/users HTTP API (DummyJSON contract): paginated, with timeouts and retries.

`fetch_all(base_url, "products")` pages through `GET {base_url}/products?limit=L&skip=S` until it
holds `total` items and returns them exactly as received (a gzip-compressed answer decompressed).
Field checks are not done here: items with missing fields are quarantined downstream.
"""
from __future__ import annotations

import email.utils
import gzip
import http.client
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC
from typing import Any

from pipeline.ingest import json_numbers

logger = logging.getLogger(__name__)

RESOURCES = ("products", "users")
# A server asking for a longer pause is down for maintenance, not throttling: fail now, run later.
MAX_RETRY_AFTER_SECONDS = 60.0
USER_AGENT = "ecomm-warehouse-catalog/0.1 (+python-urllib)"


class CatalogApiError(Exception):
    """The products/users API did not give a usable answer."""


class CatalogApiTransientError(CatalogApiError):
    """The API kept failing (5xx, 429, timeout or connection error) until the retries ran out."""


class CatalogApiBadResponse(CatalogApiError):
    """The API answered with something unusable: a 4xx, non-JSON, the wrong shape or short pages."""


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


def page_url(base_url: str, resource: str, limit: int, skip: int) -> str:
    """The URL of one page; `base_url` may end in `/` or already in `/{resource}`."""
    parts = urllib.parse.urlsplit(base_url)
    path = parts.path.rstrip("/")
    if not path.endswith("/" + resource):
        path = f"{path}/{resource}"
    query = urllib.parse.parse_qsl(parts.query) + [("limit", str(limit)), ("skip", str(skip))]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, urllib.parse.urlencode(query), ""))


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


def _get_json(url: str, resource: str, timeout: float) -> Any:
    """GET `url` once and parse its JSON body; transient failures raise `_Retryable`."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "Accept-Encoding": "gzip",
                                                   "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            content_type = response.headers.get("Content-Type", "")
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    except urllib.error.HTTPError as err:
        try:
            detail = err.read(300).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException):
            detail = ""
        finally:
            err.close()
        if err.code == 429 or err.code >= 500:
            wait = _retry_after(err.headers.get("Retry-After"))
            if wait is not None and wait > MAX_RETRY_AFTER_SECONDS:
                raise CatalogApiTransientError(
                    f"GET {url} returned HTTP {err.code} asking to retry after {wait:.0f}s; "
                    f"run again later, or {_hint(resource)}") from err
            raise _Retryable(f"HTTP {err.code}", wait) from err
        raise CatalogApiBadResponse(
            f"GET {url} returned HTTP {err.code} {err.reason} ({detail or 'no body'}); "
            f"not retried: {_hint(resource)}") from err
    except TimeoutError as err:
        raise _Retryable(f"no answer within {timeout}s") from err
    except urllib.error.URLError as err:  # connection refused, DNS failure, timeout while connecting
        raise _Retryable(f"connection failed: {err.reason}") from err
    except (OSError, http.client.HTTPException) as err:  # reset, disconnected, truncated body
        raise _Retryable(f"connection failed: {err!r}") from err
    if encoding == "gzip":  # asked for: DummyJSON and most APIs compress what they send
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as err:  # cut off on the way (transient) or not gzip at all
            raise _Retryable(f"a gzip body that cannot be decompressed ({err})") from err
    elif encoding not in ("identity", ""):
        raise CatalogApiBadResponse(f"GET {url} answered with Content-Encoding {encoding!r}, which this client"
                                    f" does not read (it asks for gzip or none); {_hint(resource)}")
    try:
        return json_numbers.loads(body)
    except ValueError as err:
        start = body[:60].decode("utf-8", "replace")
        raise CatalogApiBadResponse(
            f"GET {url} did not return JSON (Content-Type {content_type!r}, body starts {start!r}): "
            f"{err}; {_hint(resource)}") from err


def _check_page(payload: Any, url: str, resource: str, skip: int) -> tuple[list[dict[str, Any]], int]:
    """The page's items and `total`; wrong shapes raise, short pages raise `_Retryable`."""
    def bad(problem: str) -> CatalogApiBadResponse:
        return CatalogApiBadResponse(f"GET {url} returned the wrong shape: {problem}; {_hint(resource)}")

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
    if not items and skip < total:
        raise _Retryable(f"short page: 0 items at skip={skip} although total is {total}", short=True)
    if isinstance(claimed, int) and len(items) < claimed:
        raise _Retryable(f"short page: limit says {claimed} items but it holds {len(items)}", short=True)
    if skip + len(items) > total:
        raise _Retryable(f"short page: items run to {skip + len(items)}, past total {total}", short=True)
    return items, total


def _fetch_page(url: str, resource: str, skip: int, *, timeout: float, retries: int,
                backoff: float) -> tuple[list[dict[str, Any]], int]:
    for attempt in range(retries + 1):
        try:
            return _check_page(_get_json(url, resource, timeout), url, resource, skip)
        except _Retryable as err:
            if attempt == retries:
                error = CatalogApiBadResponse if err.short else CatalogApiTransientError
                raise error(f"GET {url} failed {attempt + 1} times, last: {err.reason}; "
                            f"{_hint(resource)}") from err
            delay = backoff * 2 ** attempt
            if err.retry_after is not None:
                delay = max(delay, err.retry_after)
            logger.warning("GET %s failed (%s); retry %d of %d in %.2fs",
                           url, err.reason, attempt + 1, retries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _check_drift(url: str, resource: str, items: list[dict[str, Any]], total: int, first_total: int | None,
                 seen: set[int | str]) -> None:
    """A later page of a catalog that changed while it was read: another `total`, or items of an earlier page again
    (offset pagination shifted). Either would drop items as duplicates or as never fetched, and the date would
    publish a partial catalog without a word; `seen` collects the ids fetched so far."""
    changed = "the catalog changed while it was read (offset pagination is not a snapshot): run again"
    if first_total is not None and total != first_total:
        raise CatalogApiBadResponse(f"GET {url}: total={total}, the first page said total={first_total}; {changed}")
    ids = [item.get("id") for item in items if isinstance(item.get("id"), (int, str))]
    again = [item_id for item_id in ids if item_id in seen]
    if again:
        raise CatalogApiBadResponse(f"GET {url}: {len(again)} of its {len(items)} {resource} came on an earlier"
                                    f" page too (id {again[0]!r} ...); {changed}")
    seen.update(ids)


def fetch_all(base_url: str, resource: str, *, page_size: int = 100, timeout: float = 10.0,
              retries: int = 3, backoff: float = 0.5, max_pages: int = 1000) -> list[dict[str, Any]]:
    """Every item of `resource` ("products" or "users") from the API at `base_url`, as received."""
    if resource not in RESOURCES:
        raise ValueError(f"resource must be one of {RESOURCES}, not {resource!r}")
    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
        raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
    if page_size < 1 or retries < 0 or max_pages < 1 or timeout <= 0:
        raise ValueError("page_size and max_pages must be >= 1, retries >= 0 and timeout > 0")
    collected: list[dict[str, Any]] = []
    skip, total, seen = 0, 0, set()
    for _ in range(max_pages):
        url = page_url(base_url, resource, page_size, skip)
        first_total = total if collected else None
        items, total = _fetch_page(url, resource, skip, timeout=timeout, retries=retries, backoff=backoff)
        _check_drift(url, resource, items, total, first_total, seen)
        collected.extend(items)
        skip += len(items)
        logger.info("Fetched %s page skip=%d: %d items (%d of %d)",
                    resource, skip - len(items), len(items), len(collected), total)
        if skip >= total:
            break
    else:
        raise CatalogApiBadResponse(
            f"{resource}: still {len(collected)} of {total} items after max_pages={max_pages} pages "
            f"from {base_url}; raise page_size or max_pages")
    if len(collected) != total:  # only if `total` shrank between pages: the catalog changed mid-fetch
        raise CatalogApiBadResponse(
            f"{resource}: short page: fetched {len(collected)} items but the API now says total={total}; "
            "the catalog changed during the fetch, run again")
    logger.info("Fetched %d %s from %s", len(collected), resource, base_url)
    return collected
