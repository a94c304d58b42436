"""The catalog client's transport: one bounded GET, and URLs shown with their secrets masked.

`get` sends one request and reads its answer within limits an unfriendly or broken server cannot stretch:

- a total deadline (`total_timeout`) over connecting, TLS, headers, redirects and body. The socket timeout
  bounds each read only, so a server dripping a byte a second would otherwise hold a request forever; at
  the deadline a watchdog shuts the connection down and `DeadlineExceeded` is raised;
- `max_bytes` on the body as sent and again as decompressed (a small gzip body can inflate to gigabytes):
  `ResponseTooLarge`;
- redirects only to the same scheme, host and port (`RedirectRefused` otherwise): data landed from another
  host would carry the configured host in its lineage, and the request's Authorization header must not
  reach anyone else.

`redact_url` is the one way a catalog URL reaches a person or the lineage columns: the password of its
userinfo and the values of query parameters whose names look secret (`api_key`, `access_token`,
`X-Amz-Signature` ...) become `***`.
"""
from __future__ import annotations

import dataclasses
import http.client
import re
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from types import TracebackType
from typing import Any

MASK = "***"
# Case-insensitive substrings of a query parameter's name that make its value a secret. Broad on purpose:
# masking `?keyword=` or `?author=` by mistake costs a less telling message; missing a key leaks it.
SECRET_NAME_PARTS = ("key", "token", "secret", "password", "passwd", "auth", "signature", "credential", "session")
# ... and short ones, as whole words of the name (`user_pwd`, `pass`, `sig`; not `passenger`, `compass`, `design`)
SECRET_NAME_WORDS = ("pass", "pw", "pwd", "sig")
CHUNK = 64 * 1024


class RedirectRefused(Exception):
    """The server redirected to another scheme, host or port."""


class ResponseTooLarge(Exception):
    """The answer holds more bytes (as sent or decompressed) than the client reads."""


class DeadlineExceeded(Exception):
    """The request did not complete within its total deadline."""


def is_secret_name(name: str) -> bool:
    """Whether a query parameter named `name` carries a secret (see SECRET_NAME_PARTS)."""
    lowered = name.lower()
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower())  # userPwd: user, pwd
    return any(part in lowered for part in SECRET_NAME_PARTS) or any(word in SECRET_NAME_WORDS for word in words)


def _mask_query(query: str) -> str:
    pieces = []
    for piece in query.split("&"):
        name, equals, value = piece.partition("=")
        if equals and value and is_secret_name(urllib.parse.unquote_plus(name)):
            piece = f"{name}={MASK}"
        pieces.append(piece)
    return "&".join(pieces)


def redact_url(url: str) -> str:
    """`url` for messages, logs and lineage: userinfo password and secret-looking query values as `***`.

    A user name without a password is masked as well (`token@host` is how some APIs take a key)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return f"<a URL that cannot be parsed, not shown: it may hold a secret ({len(url)} characters)>"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if colon else f"{MASK}@{hostport}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, _mask_query(parts.query),
                                    _mask_query(parts.fragment)))


def secrets_in(url: str, authorization: str | None) -> tuple[str, ...]:
    """The secret strings a server might echo back into an error body: masked in every message too."""
    found: list[str] = []
    try:
        parts = urllib.parse.urlsplit(url)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if is_secret_name(name) and value:
                found += [value, urllib.parse.quote_plus(value), urllib.parse.quote(value, safe="")]
        if parts.password:
            found.append(parts.password)
    except ValueError:
        pass
    if authorization:  # the credentials after the scheme word: a message may still say "Bearer ***"
        scheme, _, credentials = authorization.strip().partition(" ")
        found += [credentials.strip(), *credentials.split()] if credentials.strip() else [scheme]
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every one of `secrets` replaced by `***`."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return None


def same_origin(a: str, b: str) -> bool:
    """Whether two URLs share scheme, host and port (the default port of the scheme counted)."""
    origin = _origin(a)
    return origin is not None and origin == _origin(b)


class _Deadline:
    """Shuts down every connection a request opened once `seconds` have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []  # duplicates: they outlive the TLS wrapper's detach()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def register(self, sock: socket.socket) -> socket.socket:
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            if self.expired:
                _shutdown(duplicate)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    try:  # wakes a recv() blocked in another thread, which close() alone does not
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _connection_class(base: type[http.client.HTTPConnection], deadline: _Deadline) -> Any:
    class Connection(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            create = self._create_connection
            self._create_connection = lambda *a, **k: deadline.register(create(*a, **k))

    return Connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_connection_class(http.client.HTTPConnection, self._deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_connection_class(http.client.HTTPSConnection, self._deadline), req,
                            context=self._context)


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to the request's own scheme, host and port: the data then comes from the
    host the lineage names, and the Authorization header (copied to the new request) reaches no one else."""

    def http_error_302(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                       headers: Any) -> Any:
        target = headers.get("Location") or headers.get("URI")
        if target is not None:
            self._check(req, fp, code, urllib.parse.urljoin(req.full_url, target.strip()))
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        self._check(req, fp, code, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)

    @staticmethod
    def _check(req: urllib.request.Request, fp: Any, code: int, newurl: str) -> None:
        if not same_origin(req.full_url, newurl):
            fp.close()
            raise RedirectRefused(f"HTTP {code} redirect to {redact_url(newurl)}, another scheme, host or port"
                                  f" than {redact_url(req.full_url)}")


@dataclasses.dataclass(frozen=True)
class Answer:
    """A 2xx answer: its body as sent (not decompressed) and the headers the client reads."""

    body: bytes
    content_type: str
    encoding: str


def _read_capped(response: Any, max_bytes: int) -> bytes:
    length = (response.headers.get("Content-Length") or "").strip()
    if length.isdigit() and int(length) > max_bytes:
        raise ResponseTooLarge(f"Content-Length {int(length)} bytes, over the {max_bytes}-byte limit")
    chunks, size = [], 0
    while True:
        chunk = response.read(min(CHUNK, max_bytes + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(f"a body of more than {max_bytes} bytes as sent")
        chunks.append(chunk)


def gunzip_capped(body: bytes, max_bytes: int) -> bytes:
    """`body` gzip-decompressed (members one after another), never more than `max_bytes` of it held:
    `ResponseTooLarge` beyond; `EOFError` if cut off, `zlib.error` if not gzip."""
    out, size, data = [], 0, body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        piece = inflater.decompress(data, max_bytes + 1 - size)
        size += len(piece)
        if size > max_bytes:
            raise ResponseTooLarge(f"a gzip body that inflates to more than {max_bytes} bytes"
                                   f" ({len(body)} bytes as sent)")
        out.append(piece)
        if not inflater.eof:
            raise EOFError("the gzip stream ends before its end marker")
        data = inflater.unused_data.lstrip(b"\x00")  # zero padding after the last member, as gzip allows
        if not data:
            return b"".join(out)


def get(url: str, headers: dict[str, str], *, timeout: float, total_timeout: float, max_bytes: int) -> Answer:
    """GET `url` once within `total_timeout` seconds, reading at most `max_bytes`.

    Raises `urllib.error.HTTPError` for a non-2xx status (its `detail`: up to 300 bytes of the body),
    `RedirectRefused`, `ResponseTooLarge`, `DeadlineExceeded`, and for anything else what urllib raises."""
    deadline = _Deadline(total_timeout)
    opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline), _SameOriginRedirects())
    request = urllib.request.Request(url, headers=headers)
    try:
        with deadline:
            try:
                with opener.open(request, timeout=timeout) as response:
                    answer = Answer(_read_capped(response, max_bytes), response.headers.get("Content-Type", ""),
                                    response.headers.get("Content-Encoding", "identity").strip().lower())
            except urllib.error.HTTPError as err:
                try:
                    err.detail = err.read(300).decode("utf-8", "replace").strip()  # type: ignore[attr-defined]
                except (OSError, http.client.HTTPException):
                    err.detail = ""  # type: ignore[attr-defined]
                finally:
                    err.close()
                raise
    except (OSError, http.client.HTTPException) as err:
        if deadline.expired:
            raise DeadlineExceeded(f"no complete answer within the {total_timeout:g}s deadline") from err
        raise
    if deadline.expired:  # a body without a length ends at the shutdown as if complete: it may be cut off
        raise DeadlineExceeded(f"no complete answer within the {total_timeout:g}s deadline")
    return answer
