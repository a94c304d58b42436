"""The pipeline's Postgres write transactions: run as ecomm_writer, lock waits bounded, the date's lock held.

Every transaction that publishes, preloads or records a date's quality outcomes starts with
`begin_writing` (its per-transaction settings); the ones that change a date's published state hold
the date's pipeline lock (`date_transaction`, the one place that takes it): a publish, a
publish_audit_only and a discard of preloads of the same date run one after the other.

When the connecting role may act as `ecomm_writer` (and that role owns the facts), the transaction
runs as it, so what it creates is owned by that role and writing needs no more than its privileges.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import duckdb
import psycopg
from psycopg import sql

from pipeline.serving import locks, migrations, pg
from pipeline.serving.publish_errors import Progress, describe
from pipeline.serving.settings import publish as publish_settings


def _act_as_writer(conn: psycopg.Connection) -> None:
    """Run the transaction as ecomm_writer when allowed and it owns the facts (see module doc)."""
    may = conn.execute(
        """select exists (select 1 from pg_roles where rolname = 'ecomm_writer')
                  and pg_has_role(current_user, 'ecomm_writer', 'MEMBER')
                  and pg_get_userbyid((select relowner from pg_class where oid = 'warehouse.fact_orders_all'::regclass))
                      = 'ecomm_writer'"""
    ).fetchone()[0]
    if may:
        conn.execute("set local role ecomm_writer")


def begin_writing(conn: psycopg.Connection) -> None:
    """Per-transaction settings of a publish or preload (first in the transaction)."""
    _act_as_writer(conn)
    settings = publish_settings()
    conn.execute(sql.SQL("set local maintenance_work_mem = {}").format(sql.Literal(settings.maintenance_work_mem)))
    # every lock wait is bounded; the ones BI can hold up are retried (locks.retrying). The
    # transaction idles on purpose between those attempts: a server-wide idle timeout must not end it.
    conn.execute("select set_config('lock_timeout', %s, true),"
                 " set_config('idle_in_transaction_session_timeout', '0', true)", [settings.lock_timeout])


@contextlib.contextmanager
def date_transaction(conn: psycopg.Connection, day: dt.date) -> Iterator[None]:
    """A transaction on `conn` (as ecomm_writer when allowed) holding the date's pipeline lock."""
    with conn.transaction():
        begin_writing(conn)
        locks.hold(conn, locks.date_key(day))
        yield


@contextlib.contextmanager
def date_locked(day: dt.date) -> Iterator[psycopg.Connection]:
    """A new connection (schema up to date) in a `date_transaction` of the date."""
    with pg.connect() as conn:
        migrations.ensure_schema(conn)
        with date_transaction(conn, day):
            yield conn


def failure(doing: str, err: BaseException, progress: Progress, duck: duckdb.DuckDBPyConnection | None) -> str:
    """'<doing> failed: <table.column, record>: <reason>; ... rolled back' (see publish_errors)."""
    what = describe(err, progress.target, duck) if isinstance(err, psycopg.Error) else str(err)
    # a table dropped after this process checked the schema (ensure_schema checks once per process)
    gone = ("; a serving table is gone (dropped by hand?): `python -m pipeline migrate` names it and its repair"
            if isinstance(err, psycopg.errors.UndefinedTable) else "")
    return f"{doing} failed: {what}; it was rolled back, Postgres is unchanged{gone}"
