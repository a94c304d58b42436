"""Locks of the pipeline's Postgres writers: ones a read-only login can neither take nor hold up for long.

Why not advisory locks: `pg_advisory_lock(key)` is open to every role, so a BI login calling it on
the publish's key stalled every publish until it disconnected. Revoking EXECUTE on the advisory
lock functions from PUBLIC is no remedy: they belong to pg_catalog, and on managed Postgres (RDS,
Cloud SQL, Azure) the pipeline's admin role is no superuser and cannot revoke it (nor would a
revoke survive a major-version upgrade or a restore into a new cluster).

Instead, row locks: `select ... for update` on one row of `pipeline_lock.locks` per key
(`schema` for migrations, `publish` for the global bookkeeping, `date:YYYY-MM-DD` per date).
FOR UPDATE needs the UPDATE privilege on the table and USAGE on its schema; the schema is revoked
from PUBLIC and only ecomm_writer is granted them, so a BI login can neither take nor wait on these
locks. They end with the transaction, so a killed process never leaves one behind. `hold` takes
one; it waits for another pipeline process holding it up to [publish] pipeline_lock_timeout.

What BI can still do is read. A SELECT takes ACCESS SHARE on what it reads, and that is all BI can
take (LOCK TABLE in a stronger mode and SELECT ... FOR SHARE need UPDATE, DELETE or TRUNCATE
privileges). ACCESS SHARE conflicts only with ACCESS EXCLUSIVE, which the publish's final swap and
some migrations need, so a BI session idle in a transaction after one select would make them wait,
and every BI query arriving meanwhile would queue behind the waiting request. `retrying` bounds
that: each wait lasts at most [publish] lock_timeout; on a timeout the savepoint is rolled back,
which withdraws the request (the queued BI queries go on) and releases what the attempt locked;
after a backoff it tries again, [publish] lock_attempts times, then fails naming who holds the lock.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import psycopg

from pipeline.serving import retry as pg_retry
from pipeline.serving.settings import publish as publish_settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_KEY = "schema"  # serialises migration appliers
PUBLISH_KEY = "publish"  # serialises the bookkeeping part of publishes of different dates

# Run by serving.apply_schema before it takes the `schema` lock (so it exists before any migration).
BOOTSTRAP = """
create schema if not exists pipeline_lock;
revoke all on schema pipeline_lock from public;
create table if not exists pipeline_lock.locks (
    lock_key text primary key,
    created_at timestamptz not null default now()
);
revoke all on pipeline_lock.locks from public;
"""


class PipelineLockBusy(RuntimeError):
    """Another pipeline process held a lock longer than [publish] pipeline_lock_timeout."""

    retryable = True  # it ends with that process's transaction


class LockWaitTimeout(RuntimeError):
    """A relation stayed locked by another session through every bounded wait ([publish] lock_attempts)."""

    retryable = False  # already retried lock_attempts times: end that session, then run again


def date_key(day: dt.date) -> str:
    """The lock key of one load date."""
    return f"date:{day.isoformat()}"


def _set_lock_timeout(conn: psycopg.Connection, value: str) -> None:
    conn.execute("select set_config('lock_timeout', %s, true)", [value])


_HOLDERS = """
select l.pid, a.usename, a.application_name, a.state, l.mode, l.relation::regclass::text
from pg_locks as l
left join pg_stat_activity as a on a.pid = l.pid
where l.granted and l.pid <> pg_backend_pid() and l.locktype = 'relation'
    and (l.relation = any(%(relations)s::regclass[])
         or l.relation in (select inhrelid from pg_inherits where inhparent = any(%(relations)s::regclass[])))
order by l.pid
"""


def _holders(conn: psycopg.Connection, relations: Sequence[str]) -> str:
    """Who else holds locks on `relations` (or their partitions), for messages (best effort)."""
    if not relations:
        return "another session"
    try:
        rows = conn.execute(_HOLDERS, {"relations": list(relations)}).fetchall()
    except psycopg.Error:
        return "another session"
    if not rows:
        return "another session (gone meanwhile)"
    held: dict[tuple[str, str], list[str]] = {}
    for pid, user, application, state, mode, what in rows:
        facts = ", ".join(f for f in (user, state, f"application {application!r}" if application else None) if f)
        who = f"pid {pid} ({facts})" if facts else f"pid {pid}"
        modes = held.setdefault((who, what), [])
        if mode not in modes:
            modes.append(mode)
    return "; ".join(f"{who} with {', '.join(modes)} on {what}" for (who, what), modes in held.items())


def hold(conn: psycopg.Connection, key: str) -> None:
    """Take the pipeline lock `key` for the rest of `conn`'s current transaction.

    Waits for another pipeline process holding it up to [publish] pipeline_lock_timeout, then
    raises PipelineLockBusy (retryable: that process's transaction ends some time).
    """
    settings = publish_settings()
    before = conn.execute("select current_setting('lock_timeout')").fetchone()[0]
    began = time.monotonic()
    try:
        with conn.transaction():  # a savepoint: a timeout leaves the transaction usable for the message
            _set_lock_timeout(conn, settings.pipeline_lock_timeout)
            # a new key's row is inserted first (a concurrent inserter of the same key waits here)
            conn.execute("insert into pipeline_lock.locks (lock_key) values (%s) on conflict do nothing", [key])
            conn.execute("select 1 from pipeline_lock.locks where lock_key = %s for update", [key])
    except psycopg.errors.LockNotAvailable as err:
        holders = _holders(conn, ["pipeline_lock.locks"])  # every holder of a pipeline lock has it in ROW SHARE
        raise PipelineLockBusy(
            f"the pipeline lock {key!r} stayed held by another pipeline process ({holders}) for longer than"
            f" [publish] pipeline_lock_timeout ({settings.pipeline_lock_timeout}); let it finish or stop it"
        ) from err
    _set_lock_timeout(conn, before)
    waited = time.monotonic() - began
    if waited > 1:
        logger.info("waited %.1fs for the pipeline lock %r (another pipeline process held it)", waited, key)


def retrying(conn: psycopg.Connection, what: str, action: Callable[[], T], relations: Sequence[str]) -> T:
    """Run `action` in a savepoint whose lock waits are bounded; retry it after a lock timeout.

    For statements that need locks a BI session may hold up (ACCESS EXCLUSIVE on a relation BI
    reads). `relations` (schema.name) name them in the messages. See the module doc.
    """
    settings = publish_settings()
    attempts = max(1, int(settings.lock_attempts))
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():
                _set_lock_timeout(conn, settings.lock_timeout)
                return action()
        except psycopg.errors.LockNotAvailable:
            holders = _holders(conn, relations)
            if attempt >= attempts:
                raise LockWaitTimeout(
                    f"{what}: {', '.join(relations)} stayed locked by {holders} through {attempts} waits of"
                    f" {settings.lock_timeout} ([publish] lock_timeout, lock_attempts); end that session"
                    " (or give its login the BI session timeouts), then run again"
                ) from None
            delay = pg_retry.backoff(attempt, settings.lock_backoff_seconds, settings.lock_backoff_max_seconds)
            logger.warning("%s: %s locked by %s; let go after %s so queued readers go on, will retry: %s",
                           what, ", ".join(relations), holders, settings.lock_timeout,
                           pg_retry.retry_note(attempt + 1, attempts, delay))
            time.sleep(delay)
    raise AssertionError("unreachable")
