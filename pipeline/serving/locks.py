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
one; it waits for another pipeline process holding it up to [publish] pipeline_lock_timeout, and a
wait past NOTICE_MS is logged at WARNING once, naming the holder (`key_holder`: each holder also
takes a shared advisory lock on its key as a name tag, never waited for, see _KEY_HOLDER).

What BI can still do is read. A SELECT takes ACCESS SHARE on what it reads, and that is all BI can
take (LOCK TABLE in a stronger mode and SELECT ... FOR SHARE need UPDATE, DELETE or TRUNCATE
privileges). ACCESS SHARE conflicts only with ACCESS EXCLUSIVE, which the publish's final swap and
some migrations need, so a BI session idle in a transaction after one select would make them wait,
and every BI query arriving meanwhile would queue behind the waiting request. `retrying` bounds
that: each wait lasts at most [publish] lock_timeout; on a timeout the savepoint is rolled back,
which withdraws the request (the queued BI queries go on) and releases what the attempt locked;
after a backoff it tries again, [publish] lock_attempts times, then fails naming who holds the lock
(`holders`: one entry per session, a parent's partitions counted, not listed).
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import psycopg
from psycopg import sql

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
select l.pid, a.usename, a.application_name, a.state, l.mode, l.relation::regclass::text,
    (select i.inhparent::regclass::text from pg_inherits as i
     where i.inhrelid = l.relation and i.inhparent = any(%(relations)s::regclass[]))
from pg_locks as l
left join {activity} as a on a.pid = l.pid
where l.granted and l.pid <> pg_backend_pid() and l.locktype = 'relation'
    and (l.relation = any(%(relations)s::regclass[])
         or l.relation in (select inhrelid from pg_inherits where inhparent = any(%(relations)s::regclass[])))
order by l.pid, 6
"""

# Who holds a pipeline lock: a row lock's holder is not in pg_locks (only its waiters are), so each holder also
# takes a shared advisory lock on the key, a marker only: it is never waited for (a BI login could take it too,
# hence "try" and a result ignored) and shared ones do not conflict with each other. A session named must also
# hold the lock table in ROW SHARE, which only ecomm_writer can.
MARKER_CLASS = 1701
_MARK = "select pg_try_advisory_xact_lock_shared(%s, hashtext(%s))"
_KEY_HOLDER = """
select a.pid, a.usename, a.application_name, a.state,
    extract(epoch from clock_timestamp() - a.xact_start)::int, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 80)
from pg_locks as l
join {activity} as a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted and l.classid = %(class)s and l.objid = hashtext(%(key)s)::oid
    and l.objsubid = 2 and l.pid <> pg_backend_pid()
    and exists (select 1 from pg_locks as r where r.pid = l.pid and r.locktype = 'relation' and r.granted
                and r.relation = 'pipeline_lock.locks'::regclass and r.mode = 'RowShareLock')
order by a.pid
"""

# What ecomm_writer may see of other sessions (migration 052): their state, and the statements of the pipeline's own.
# A role that sees every session itself (a member of pg_read_all_stats, a superuser) reads pg_stat_activity, as does
# a migration waiting for a lock before 052 is applied.
_SESSIONS, _ACTIVITY = sql.SQL("pipeline_lock.sessions()"), sql.SQL("pg_stat_activity")


def _activity_rows(conn: psycopg.Connection, query: str, params: dict) -> list[tuple]:
    """`query`'s rows, its `{activity}` read from pipeline_lock.sessions() or pg_stat_activity (see above)."""
    with conn.transaction():  # a failed look-up must not abort the caller's transaction
        sees_all = conn.execute("select pg_has_role('pg_read_all_stats', 'USAGE')").fetchone()[0]
    for source in (_ACTIVITY,) if sees_all else (_SESSIONS, _ACTIVITY):
        try:
            with conn.transaction():
                return conn.execute(sql.SQL(query).format(activity=source), params).fetchall()
        except (psycopg.errors.UndefinedFunction, psycopg.errors.InsufficientPrivilege):
            continue
    return []


NOTICE_MS = 3000  # a wait for a pipeline lock longer than this is logged at WARNING, once, naming the holder


def _session(pid: int, *facts: str | None) -> str:
    said = ", ".join(f for f in facts if f)
    return f"pid {pid} ({said})" if said else f"pid {pid}"


_CLIENT_PID = re.compile(r"(?P<name>.*) pid=(?P<pid>\d+)")  # pg.libpq_params: a pipeline session's application_name


def _application(name: str | None) -> str | None:
    """A session's application_name as said, a pipeline process's pid named as such (the backend's pid is another)."""
    if not name:
        return None
    if client := _CLIENT_PID.fullmatch(name):
        return f"application {client['name']!r} of client process {client['pid']}"
    return f"application {name!r}"


def _described(rows: Sequence[tuple]) -> str:
    """One entry per session: its modes and its relations, a parent's partitions counted, not listed."""
    sessions: dict[int, tuple[str, list[str], dict[str, int], list[str]]] = {}
    for pid, user, application, state, mode, what, parent in rows:
        if pid not in sessions:
            sessions[pid] = (_session(pid, user, state, _application(application)),
                             [], {}, [])
        _, modes, partitions, direct = sessions[pid]
        if mode not in modes:
            modes.append(mode)
        if parent:
            partitions[parent] = partitions.get(parent, 0) + 1
        elif what not in direct:
            direct.append(what)
    entries = []
    for who, modes, partitions, direct in sessions.values():
        named = [f"{rel} and {partitions.pop(rel)} of its partitions" if rel in partitions else rel for rel in direct]
        named += [f"{n} partition{'s' if n > 1 else ''} of {rel}" for rel, n in partitions.items()]
        entries.append(f"{who} holding {', '.join(modes)} on {', '.join(named)}")
    return "; ".join(entries)


def holders(conn: psycopg.Connection, relations: Sequence[str]) -> str:
    """Who else holds locks on `relations` (or their partitions), one entry per session, for messages (best effort)."""
    if not relations:
        return "another session"
    try:
        rows = _activity_rows(conn, _HOLDERS, {"relations": list(relations)})
    except psycopg.Error:
        return "another session"
    return _described(rows) if rows else "another session (gone meanwhile)"


def key_holder(conn: psycopg.Connection, key: str) -> str:
    """Who holds the pipeline lock `key`: its session, what it is doing and for how long (best effort)."""
    try:
        rows = _activity_rows(conn, _KEY_HOLDER, {"class": MARKER_CLASS, "key": key})
    except psycopg.Error:
        rows = []
    if not rows:  # every holder of a pipeline lock has the table in ROW SHARE
        return holders(conn, ["pipeline_lock.locks"])
    return "; ".join(_session(pid, user, _application(application), state,
                              f"in a transaction for {seconds}s" if seconds is not None else None,
                              f"last statement {query!r}" if query else None)
                     for pid, user, application, state, seconds, query in rows)


def _take(conn: psycopg.Connection, key: str, timeout_ms: int) -> None:
    with conn.transaction():  # a savepoint: a timeout leaves the transaction usable for the message
        _set_lock_timeout(conn, f"{timeout_ms}ms")
        # a new key's row is inserted first (a concurrent inserter of the same key waits here)
        conn.execute("insert into pipeline_lock.locks (lock_key) values (%s) on conflict do nothing", [key])
        conn.execute("select 1 from pipeline_lock.locks where lock_key = %s for update", [key])
        conn.execute(_MARK, [MARKER_CLASS, key])  # who holds it, for a waiter's message (see _KEY_HOLDER)


def _milliseconds(conn: psycopg.Connection, value: str) -> int:
    """A Postgres time setting's value in ms (as lock_timeout reads it; 0 = no limit)."""
    with conn.transaction():
        _set_lock_timeout(conn, value)
        return int(conn.execute("select setting from pg_settings where name = 'lock_timeout'").fetchone()[0])


def hold(conn: psycopg.Connection, key: str, timeout: str | None = None) -> None:
    """Take the pipeline lock `key` for the rest of `conn`'s current transaction.

    Waits for another pipeline process holding it up to `timeout` (default [publish]
    pipeline_lock_timeout), then raises PipelineLockBusy (retryable: that process's transaction ends
    some time). A wait longer than NOTICE_MS says so at WARNING, once, naming the holder.
    """
    limit = timeout or publish_settings().pipeline_lock_timeout
    before = conn.execute("select current_setting('lock_timeout')").fetchone()[0]
    began = time.monotonic()
    total = _milliseconds(conn, limit)
    warned = False
    try:
        if total == 0 or total > NOTICE_MS:
            try:
                _take(conn, key, NOTICE_MS)
            except psycopg.errors.LockNotAvailable:
                warned = True
                logger.warning("waiting for the pipeline lock %r, held by %s; waiting up to %s in all"
                               " (%s), then failing", key, key_holder(conn, key), limit,
                               "its timeout" if timeout else "[publish] pipeline_lock_timeout")
                _take(conn, key, 0 if total == 0 else total - NOTICE_MS)
        else:
            _take(conn, key, total)
    except psycopg.errors.LockNotAvailable as err:
        raise PipelineLockBusy(
            f"the pipeline lock {key!r} stayed held by another pipeline process ({key_holder(conn, key)}) for longer"
            f" than {'' if timeout else '[publish] pipeline_lock_timeout '}({limit}); let it finish or stop it"
        ) from err
    _set_lock_timeout(conn, before)
    waited = time.monotonic() - began
    if warned:
        logger.warning("got the pipeline lock %r after waiting %.1fs", key, waited)
    elif waited > 1:
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
            held_by, locked = holders(conn, relations), ", ".join(relations) or "a relation it needs"
            if attempt >= attempts:
                raise LockWaitTimeout(
                    f"{what}: {locked} stayed locked by {held_by} through {attempts} waits of"
                    f" {settings.lock_timeout} ([publish] lock_timeout, lock_attempts); end that session"
                    " (or give its login the BI session timeouts), then run again"
                ) from None
            delay = pg_retry.backoff(attempt, settings.lock_backoff_seconds, settings.lock_backoff_max_seconds)
            logger.warning("%s: %s locked by %s; let go after %s so queued readers go on, will retry: %s",
                           what, locked, held_by, settings.lock_timeout,
                           pg_retry.retry_note(attempt + 1, attempts, delay))
            time.sleep(delay)
    raise AssertionError("unreachable")
