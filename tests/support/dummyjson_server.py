"""A local HTTP server speaking the DummyJSON products/users contract, with programmable faults.

Serves the real fixture payloads (`products.json`, `users.json`) so the catalog client is tested
against a real socket, real HTTP and real pagination, never a mock:

    GET /products?limit=L&skip=S -> {"products": [...], "total": 194, "skip": S, "limit": <returned>}
    GET /users?limit=L&skip=S    -> {"users": [...], "total": 208, "skip": S, "limit": <returned>}
    GET /products/{id}           -> one product, or 404 {"message": "Product with id 'X' not found"}

`limit=0` returns everything; the default limit is 30. `server.fail_next(kind, times)` queues faults,
one consumed per request (whatever its path), in order; `after=N` lets N requests through first.
Kinds:

    "500", "503"      that status with a JSON error body
    "429"             429 with `Retry-After: 0` (or `server.retry_after`)
    "timeout"         sleep `slow_seconds` (default 1 s) before answering normally
    "html"            200 with a text/html page
    "short"           200 page holding a third of its items while `limit` claims them all
    "empty"           200 page with no items although `skip` is below `total`
    "missing_fields"  200 page whose items lack `price` and `title` (`email`, `username` for users)
    "bad_shape"       200 JSON object without the resource key
    "shifted"         200 page starting half a page early: it repeats items of the page before (the
                      catalog grew at its start while it was read)
    "shifted_text_ids" the same, the repeated items' ids written as strings ("51" after 51): one id to staging
    "repeats_within"  200 page whose last tenth is its first tenth again (items 1-90, then 1-10 again): items
                      91-100 are never served
    "shrunk"          200 page holding half its items, and a `total` that ends with them
    "total_dropped"   200 page as usual but with a `total` 5 lower (items were deleted after the first page)
    "gzip"            the answer compressed with gzip, sent with `Content-Encoding: gzip`
    "precise_prices"  200 page whose items' prices are written with 22 decimals, digits no double holds
                      (9.99 as 9.9900000000000000000001: Python's json would read that back as 9.99)
    "nested_text"     200 page whose items' text is nested JSON: products' `category` an object
                      (`{"slug": "beauty", "name": "Beauty"}`), users' `address.city` (`{"name": "Phoenix"}`)
    "redirect"        302 to `server.redirect_to` + the request's path ("" by default: the same server, a
                      relative Location); point it at another server, port or scheme to test the client
    "gzip_bomb"       200 with `Content-Encoding: gzip`: a valid empty page padded with `bomb_bytes` spaces
                      (default 64 MiB), a few dozen KB as sent
    "huge"            200 page padded with `huge_bytes` spaces (default 2 MiB), sent as is
    "drip"            200 with an empty page's Content-Length, then its body one byte every `drip_seconds`
                      (default 0.1 s), padded with `drip_bytes` spaces (default 10): each read gets a byte
                      within any timeout over 0.1 s, the whole takes about 6 s
    "deep"            200 body of `deep_levels` nested arrays (default 100 000): `[[[...]]]`

`server.total_is_page = True` makes every page's `total` end with that page (an API counting one page, not the
catalog). `server.echo_limit = True` makes every page's `limit` the one asked for, not the number of items returned
(a last page of 94 says 100). `server.require_authorization = "Bearer x"` makes every request without exactly that
Authorization header a 401 whose body quotes the header received (as careless APIs do); `server.authorizations`
records the Authorization header of each request (None: none sent).

Page-shaped faults ("short", "empty", "missing_fields", "bad_shape", "shifted", "shifted_text_ids", "repeats_within",
"total_dropped", "shrunk", "precise_prices", "nested_text") on a single-item request are consumed and ignored.
Payloads are read and written with each number's text as the fixture (or the fault) writes it
(`pipeline.ingest.json_numbers`). Run standalone with `python -m tests.support.dummyjson_server --port 8000`.
"""
from __future__ import annotations

import argparse
import gzip
import logging
import os
import threading
import time
import urllib.parse
import zlib
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.ingest import json_numbers
from tests.support.paths import DUMMYJSON

logger = logging.getLogger(__name__)

FAULT_KINDS = ("500", "503", "429", "timeout", "html", "short", "empty", "missing_fields", "bad_shape", "shifted",
               "shifted_text_ids", "repeats_within", "total_dropped", "shrunk", "precise_prices", "nested_text", "gzip",
               "redirect", "gzip_bomb", "huge", "drip", "deep")
RESOURCES = {"products": "Product", "users": "User"}
MISSING_FIELDS = {"products": ("price", "title"), "users": ("email", "username")}
DEFAULT_LIMIT = 30


def default_fixtures_dir() -> Path:
    """Where the DummyJSON fixtures live: $DUMMYJSON_FIXTURES, else the copy in devtools/generate/dummyjson."""
    if os.environ.get("DUMMYJSON_FIXTURES"):
        return Path(os.environ["DUMMYJSON_FIXTURES"])
    return DUMMYJSON


class DummyJsonServer:
    """A threaded HTTP server on 127.0.0.1 serving the fixtures; use as a context manager."""

    def __init__(self, fixtures_dir: str | os.PathLike[str] | None = None, port: int = 0,
                 slow_seconds: float = 1.0) -> None:
        fixtures = Path(fixtures_dir) if fixtures_dir is not None else default_fixtures_dir()
        self.data: dict[str, list[dict[str, Any]]] = {}
        for resource in RESOURCES:
            path = fixtures / f"{resource}.json"
            if not path.is_file():
                raise FileNotFoundError(f"DummyJSON fixture {path} is missing; pass fixtures_dir "
                                        "or set DUMMYJSON_FIXTURES to the folder holding it")
            payload = json_numbers.loads(path.read_text(encoding="utf-8"))
            # Accept both a bare array and a saved API answer ({"products": [...], ...}).
            self.data[resource] = payload[resource] if isinstance(payload, dict) else payload
        self.slow_seconds = slow_seconds
        self.retry_after = "0"  # the Retry-After header sent with the "429" fault
        self.total_is_page = False  # True: `total` counts the page's items only, as a broken API's does
        self.echo_limit = False  # True: `limit` is the limit asked for, not the number of items returned
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []
        self.require_authorization: str | None = None
        self.redirect_to = ""  # the "redirect" fault's target: this base URL + the request's path
        self.bomb_bytes = 64 * 1024 * 1024
        self.huge_bytes = 2 * 1024 * 1024
        self.drip_seconds = 0.1
        self.drip_bytes = 10
        self.deep_levels = 100_000
        self._stopped = threading.Event()
        self._faults: deque[str | None] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, kind: str, times: int = 1, after: int = 0) -> None:
        """Queue `times` faults of `kind` behind `after` normal answers; each request consumes one."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; choose one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.extend([None] * after + [kind] * times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def _record(self, path: str, authorization: str | None) -> str | None:
        with self._lock:
            self.requests.append(path)
            self.authorizations.append(authorization)
            return self._faults.popleft() if self._faults else None

    def start(self) -> DummyJsonServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="dummyjson", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()  # ends a "drip" answer still being sent
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> DummyJsonServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _handler_for(server: DummyJsonServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        compress = False  # this request's answer goes out gzip-compressed (the "gzip" fault)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            logger.debug("%s " + format, self.address_string(), *args)

        def send_body(self, status: int, body: bytes, content_type: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the "timeout" fault); nothing left to answer

        def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            body = json_numbers.dumps(payload).encode("utf-8")
            if self.compress:
                body, headers = gzip.compress(body), {**(headers or {}), "Content-Encoding": "gzip"}
            self.send_body(status, body, headers=headers)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            authorization = self.headers.get("Authorization")
            fault = server._record(self.path, authorization)
            if server.require_authorization is not None and authorization != server.require_authorization:
                return self.send_json(401, {"message": f"Invalid authorization {authorization!r}"})
            self.compress = fault == "gzip"
            if fault == "redirect":
                return self.send_body(302, b"", headers={"Location": server.redirect_to + self.path})
            if fault == "gzip_bomb":
                return self.send_body(200, _bomb(server.bomb_bytes), headers={"Content-Encoding": "gzip"})
            if fault == "deep":
                levels = server.deep_levels
                return self.send_body(200, b"[" * levels + b"]" * levels)
            if fault == "drip":
                return self.drip()
            if fault in ("500", "503"):
                return self.send_json(int(fault), {"message": f"Injected HTTP {fault}"})
            if fault == "429":
                retry_after = {"Retry-After": server.retry_after}
                return self.send_json(429, {"message": "Too many requests"}, retry_after)
            if fault == "html":
                html = b"<html><head><title>Maintenance</title></head><body>Back soon</body></html>"
                return self.send_body(200, html, "text/html; charset=utf-8")
            if fault == "timeout":
                time.sleep(server.slow_seconds)
            self.route(fault)

        def drip(self) -> None:
            body = json_numbers.dumps({"products": [], "total": 0, "skip": 0, "limit": 0}).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                padding = server.drip_bytes
                self.send_header("Content-Length", str(len(body) + padding))
                self.end_headers()
                for byte in [body[i:i + 1] for i in range(len(body))] + [b" "] * padding:  # spaces: valid JSON
                    if server._stopped.wait(server.drip_seconds):
                        break
                    self.wfile.write(byte)
                    self.wfile.flush()
            except OSError:
                pass  # the client gave up, as it should
            self.close_connection = True

        def route(self, fault: str | None) -> None:
            parts = urllib.parse.urlsplit(self.path)
            segments = [s for s in parts.path.split("/") if s]
            if not segments or segments[0] not in RESOURCES or len(segments) > 2:
                return self.send_json(404, {"message": f"Route {parts.path!r} not found"})
            resource = segments[0]
            if len(segments) == 2:
                return self.one(resource, segments[1])
            query = urllib.parse.parse_qs(parts.query)
            try:
                limit = int(query.get("limit", [DEFAULT_LIMIT])[0])
                skip = int(query.get("skip", [0])[0])
                if limit < 0 or skip < 0:
                    raise ValueError
            except ValueError:
                return self.send_json(400, {"message": "limit and skip must be non-negative integers"})
            self.page(resource, limit, skip, fault)

        def one(self, resource: str, item_id: str) -> None:
            for item in server.data[resource]:
                if str(item.get("id")) == item_id:
                    return self.send_json(200, item)
            self.send_json(404, {"message": f"{RESOURCES[resource]} with id '{item_id}' not found"})

        def page(self, resource: str, limit: int, skip: int, fault: str | None) -> None:
            rows = server.data[resource]
            total = len(rows)
            items = rows[skip:] if limit == 0 else rows[skip:skip + limit]
            claimed = len(items)
            if fault in ("shifted", "shifted_text_ids"):
                start = max(0, skip - max(1, limit // 2))
                items = rows[start:start + claimed]
                if fault == "shifted_text_ids":
                    items = [{**item, "id": str(item["id"])} if index < skip - start else item
                             for index, item in enumerate(items)]
            elif fault == "repeats_within":
                tenth = len(items) // 10
                items = items[: len(items) - tenth] + items[:tenth]
            elif fault == "total_dropped":
                total -= 5
            elif fault == "shrunk":
                items = items[: len(items) // 2]
                claimed, total = len(items), skip + len(items)
            elif fault == "short":
                items = items[: claimed // 3]
            elif fault == "empty":
                items, claimed = [], 0
            elif fault == "missing_fields":
                drop = MISSING_FIELDS[resource]
                items = [{k: v for k, v in item.items() if k not in drop} for item in items]
            elif fault == "precise_prices":
                items = [{**item, "price": json_numbers.Number(f"{float(item['price']):.2f}00000000000000000001")}
                         if "price" in item else item for item in items]
            elif fault == "nested_text" and resource == "products":
                items = [{**item, "category": {"slug": item["category"], "name": item["category"].title()}}
                         for item in items]
            elif fault == "nested_text":
                items = [{**item, "address": {**item["address"], "city": {"name": item["address"]["city"]}}}
                         for item in items]
            if server.total_is_page:
                total = skip + len(items)
            if server.echo_limit and limit:
                claimed = limit
            key = "items" if fault == "bad_shape" else resource
            if fault == "huge":
                body = json_numbers.dumps({key: items, "total": total, "skip": skip, "limit": claimed}).encode()
                return self.send_body(200, body + b" " * server.huge_bytes)
            self.send_json(200, {key: items, "total": total, "skip": skip, "limit": claimed})

    return Handler


_BOMBS: dict[int, bytes] = {}


def _bomb(size: int) -> bytes:
    """A gzip body of a valid empty products page padded with `size` spaces, compressed as it is made."""
    if size not in _BOMBS:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        parts = [compressor.compress(b'{"products": [], "total": 0, "skip": 0, "limit": 0')]
        block = b" " * (1024 * 1024)
        for start in range(0, size, len(block)):
            parts.append(compressor.compress(block[: size - start]))
        parts.append(compressor.compress(b"}") + compressor.flush())
        _BOMBS[size] = b"".join(parts)
    return _BOMBS[size]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fixtures", default=None, help="folder with products.json and users.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(message)s")
    with DummyJsonServer(args.fixtures, port=args.port) as server:
        print(f"Serving DummyJSON fixtures at {server.url} (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
