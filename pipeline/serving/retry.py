"""Which Postgres failures can heal, and the bounded retry of the tasks that write to Postgres.

Luigi retries a failed task as a whole and cannot tell one exception from another, so the Publish
and Preload tasks have `retry_count = 1` and retry inside the task (`call`), only what can heal:

- the server cannot be reached or is not ready yet: connection refused, timed out or dropped,
  "the database system is starting up / shutting down / in recovery", too many clients
  (SQLSTATE class 08, 57P01, 57P02, 57P03, 53300, or libpq's connection errors, which have none);
  connection slots full (53300, "too many clients", "remaining connection slots are reserved") is
  retried once only (`slots_full`): other sessions hold the slots, and minutes of retries rarely free one;
- a lock wait that timed out (55P03), a serialization failure (40001), a deadlock (40P01).

Everything else fails at once with its reason: a data error (SQLSTATE class 22), a constraint
violation (class 23), a program limit (54000, e.g. an index row too large), a missing or invalid
lake partition, a server that answers but refuses us (unknown database or role, wrong password), a
connection setting that cannot work (`sslmode=require` against a server without SSL, an invalid
option value, a missing password or certificate: see `connection_setting_error`).

Attempts and backoff come from `[publish]` (attempts, retry_backoff_seconds doubling up to
retry_backoff_max_seconds). Every retry logs one line: what failed, that it will retry, and when.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

from pipeline import clock
from pipeline.serving.settings import publish as publish_settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_SQLSTATES = frozenset({
    "55P03",  # lock_not_available (lock_timeout)
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up)
    "53300",  # too_many_connections
})
TRANSIENT_CLASSES = frozenset({"08"})  # connection_exception

# What a server says when it is there but cannot take a connection now (libpq gives no SQLSTATE)
_SLOTS_FULL = ("too many clients", "remaining connection slots")
_TRANSIENT_FATAL = ("the database system is starting up", "the database system is shutting down",
                    "the database system is in recovery mode", *_SLOTS_FULL)
TOO_MANY_CONNECTIONS = "53300"
SLOTS_FULL_ATTEMPTS = 2  # connection slots full: other sessions (BI logins) hold them; one retry, not minutes of them


# What libpq says, without a FATAL from the server, when the connection settings themselves cannot work
_SETTINGS_ERRORS = re.compile("|".join((
    r"server does not support SSL, but SSL was required",  # sslmode=require|verify-* against a server without SSL
    r"invalid \w+ value",  # invalid sslmode / gssencmode / target_session_attrs / channel_binding ... value
    r"invalid (port number|integer value)",
    r"invalid when \w+ support is not compiled in",  # e.g. sslmode=require with a libpq built without SSL
    r"GSSAPI encryption required",
    r"channel binding (is )?required",
    r"authentication method requirement",  # require_auth
    r"no password supplied",
    r"certificate",  # verify failed, root certificate file missing, host name mismatch
    r"private key",
)), re.IGNORECASE)


def connection_setting_error(text: str) -> bool:
    """Whether libpq's text of a failed connection names a setting that cannot work (see _SETTINGS_ERRORS).

    A list of known setting errors, not of known outages, on purpose: what an outage looks like is
    open-ended (the OS's own words for refused, timed out, unreachable, reset; a socket file that is
    gone; translated messages), and an outage taken for a setting would stop the whole date at
    scheduling, lake steps included. An error on neither list keeps the old verdict, transient.
    A host name that does not resolve stays transient too: a stopped compose service's does not either.
    """
    return _SETTINGS_ERRORS.search(text) is not None


def postgres_unreachable(err: psycopg.OperationalError | str) -> bool:
    """Whether a connection error (or its text) is transient (no answer, refused, starting up), not a wrong setting.

    A server that answers with FATAL (unknown database or role, wrong password) is misconfigured, and
    so is a connection that libpq refuses to make as configured (`connection_setting_error`):
    retrying will not help. libpq gives no SQLSTATE for connection errors, hence the text.
    """
    text = str(err)
    if "FATAL:" in text:
        return any(reason in text for reason in _TRANSIENT_FATAL)
    return not connection_setting_error(text)


def slots_full(err: BaseException | str) -> bool:
    """Whether a failure (or its text) is the server refusing a session for want of connection slots (53300).

    Every slot a non-superuser may use is taken, usually by BI sessions: waiting minutes rarely frees one
    (runbook: "Postgres connection slots full"; docs/serving.md#connection-slots).
    """
    if isinstance(err, str):
        return any(words in err for words in _SLOTS_FULL)
    for current in _causes(err):
        if isinstance(current, psycopg.Error) and current.sqlstate == TOO_MANY_CONNECTIONS:
            return True
        if any(words in str(current) for words in _SLOTS_FULL):
            return True
    return False


def unless_unreachable(ask: Callable[[], T], otherwise: T, meaning: str) -> T:
    """`ask()`, or `otherwise` while Postgres cannot be reached (logged: "Postgres is unreachable (...): <meaning>").

    For the tasks' complete() checks: an unreachable Postgres makes a task run, fail and be retried
    as transient, instead of failing the whole schedule. A server that answers and refuses (unknown
    database or role, wrong password) is a setting to fix: that error is raised.
    """
    try:
        return ask()
    except psycopg.OperationalError as err:
        if not postgres_unreachable(err):
            raise
        reason = one_line(err)
        if reason not in _announced:  # once per process and reason: every task's check says the same
            _announced.add(reason)
            logger.warning("%s", slots_plan(reason) if slots_full(reason) else unreachable_plan(reason))
        logger.info("Postgres is unreachable: %s", meaning)
        return otherwise


_announced: set[str] = set()


def unreachable_plan(reason: str) -> str:
    """What a run does while Postgres is unreachable, with the [publish] attempts and when they happen."""
    settings = publish_settings()
    attempts = max(1, int(settings.attempts))
    waits = [backoff(n, settings.retry_backoff_seconds, settings.retry_backoff_max_seconds) for n in range(1, attempts)]
    spacing = f", {', '.join(f'{w:g}s' for w in waits)} apart (about {sum(waits):g}s in all)" if waits else ""
    return (f"Postgres is unreachable ({reason}). The lake steps (land, stage, model, gate) go on; each Postgres"
            f" step (the fact preloads, the publish) will try {attempts} time(s){spacing} ([publish] attempts,"
            " retry_backoff_seconds), logging each retry, then fail the date if Postgres is still down")


def slots_plan(reason: str) -> str:
    """What a run does while Postgres has no connection slot free for the pipeline's login."""
    return (f"Postgres has no connection slot free for the pipeline ({reason}): other sessions, BI logins most"
            f" likely, hold them all. The lake steps go on; each Postgres step will try {SLOTS_FULL_ATTEMPTS} times,"
            " then fail the date (runbook: Postgres connection slots full; docs/serving.md#connection-slots)")


def _causes(err: BaseException):
    """The exception and what it was raised from (explicit cause, else unsuppressed context)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def transient(err: BaseException) -> bool:
    """Whether retrying the operation that raised `err` can succeed (see module doc).

    An exception may decide for itself with a class attribute `retryable` (True/False); otherwise
    the first Postgres error it was raised from decides.
    """
    for current in _causes(err):
        verdict = getattr(current, "retryable", None)
        if verdict is not None:
            return bool(verdict)
        if isinstance(current, psycopg.Error):
            state = current.sqlstate
            if state:
                return state in TRANSIENT_SQLSTATES or state[:2] in TRANSIENT_CLASSES
            return isinstance(current, psycopg.OperationalError) and postgres_unreachable(current)
    return False


def backoff(attempt: int, first: float, cap: float) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): first, 2 x first, 4 x first ..., at most cap."""
    return max(0.0, min(cap, first * 2 ** (attempt - 1)))


def one_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an error, for a log line."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def retry_note(attempt: int, attempts: int, delay: float) -> str:
    """'attempt k of n at HH:MM:SS ZONE (in Ns)': when the next attempt starts (local time, `pipeline.clock`)."""
    at = clock.local(time.time() + delay)  # seconds, not a local wall time plus seconds (a DST change between)
    return f"attempt {attempt} of {attempts} at {at} (in {delay:g}s)"


def call(action: Callable[[], T], what: str, *, notify: Callable[[str], None] | None = None) -> T:
    """Run `action`; retry it while it fails transiently, [publish] attempts in all; re-raise the rest.

    `what` names the operation in the log ("publishing 2025-12-14"); `notify`, if given, receives
    each retry line too (e.g. the task's status in the scheduler UI).
    """
    settings = publish_settings()
    attempts = max(1, int(settings.attempts))
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as err:
            if not transient(err):
                raise
            if slots_full(err) and attempts > SLOTS_FULL_ATTEMPTS:
                attempts = max(attempt, SLOTS_FULL_ATTEMPTS)
            if attempt >= attempts:
                logger.error("%s failed again (%s); this kind of failure can heal, but all %d attempts are used up",
                             what, one_line(err), attempts)
                err.add_note(f"gave up after {attempts} attempts ([publish] attempts)")
                raise
            delay = backoff(attempt, settings.retry_backoff_seconds, settings.retry_backoff_max_seconds)
            detail = one_line(err)
            failed = detail if detail.startswith(f"{what} failed") else f"{what} failed: {detail}"
            line = f"{failed}; this can heal, will retry: {retry_note(attempt + 1, attempts, delay)}"
            logger.warning("%s", line)
            if notify is not None:
                notify(line)
            time.sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises
