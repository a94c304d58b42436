"""A read-only BI login (bi_reader) can neither stall publishing nor read the raw payloads of rejected data.

Each way a BI session used to stop a publish has its test: holding an advisory lock on the
publish's keys, trying the new locks, staying idle in a transaction after a select on the facts,
and querying while a publish waits for its final lock. Every wait is bounded (threads joined with
a timeout, statement_timeout on the BI sessions): without the protections these tests fail, they
never hang.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pipeline.ingest import landing
from pipeline.serving import migrations, publish
from pipeline.tasks import runbook
from pipeline.transform import staging
from tests.support.serving import event, order, write_facts

D1, D2 = dt.date(2025, 12, 14), dt.date(2025, 12, 15)
BOUND = 60  # seconds any background publish may take before the test calls it stalled

# The advisory lock keys the pipeline used before (publish's per-date and global keys, the Publish
# task's per-date key, the migrations' key): a BI login holding them must change nothing now.
OLD_ADVISORY_KEYS = [(0x7075626C, D1.toordinal()), (0x7075626C, D2.toordinal()), (0x7075626C, 0),
                     (0x7461736B, D1.toordinal()), (0x7461736B, D2.toordinal()), (0x65636F6D, 0x73636865)]


class Background(threading.Thread):
    """Run a call in a thread; `finished(timeout)` tells whether it ended within the bound."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.call, self.result, self.error = call, None, None

    def run(self) -> None:
        try:
            self.result = self.call()
        except BaseException as err:  # noqa: BLE001 - the test asserts on it
            self.error = err

    def finished(self, timeout: float = BOUND) -> bool:
        self.join(timeout)
        return not self.is_alive()


def bi_session(target, **kwargs: Any) -> psycopg.Connection:
    """A bi_reader session whose own statements can never wait longer than 30 s."""
    return psycopg.connect(target.as_user("bi_reader"), options="-c statement_timeout=30s", **kwargs)


def published(target) -> list[dt.date]:
    with target.connect() as conn:
        return [d for (d,) in conn.execute("select load_date from audit.publish_log order by 1").fetchall()]


@pytest.fixture
def two_dates(fresh_db, serving_lake):
    """D1 published; D2 in the lake, ready to publish (the roles exist: migrations ran)."""
    write_facts(D1, [order("ORD_1", D1)], [event("EVT_1", D1)])
    write_facts(D2, [order("ORD_2", D2)], [event("EVT_2", D2)])
    publish.publish(D1)
    return fresh_db


@pytest.fixture
def quick_locks(luigi_settings):
    """Short lock waits, so a test sees several bounded attempts within seconds."""
    def configure(attempts: int, timeout: str = "200ms", backoff: float = 0.05) -> None:
        luigi_settings("publish", lock_timeout=timeout, lock_attempts=attempts, lock_backoff_seconds=backoff,
                       lock_backoff_max_seconds=backoff)
    return configure


# ------------------------------------------------------------------------------ locks BI cannot take
def test_bi_holding_the_old_advisory_keys_and_trying_the_new_locks_blocks_no_publish(two_dates, tmp_path) -> None:
    sql_dir = tmp_path / "serving"
    shutil.copytree(migrations.SERVING_SQL_DIR, sql_dir)
    (sql_dir / "900_later.sql").write_text(  # a migration still to apply, so the migrations' lock is taken
        "create table if not exists warehouse.later (x int primary key);\n"
        "comment on table warehouse.later is 'Test table. Grain: one row per x.';\n"
        "comment on column warehouse.later.x is 'A number.';\n")
    with bi_session(two_dates, autocommit=True) as bi:
        for key in OLD_ADVISORY_KEYS:
            assert bi.execute("select pg_try_advisory_lock(%s, %s)", key).fetchone() == (True,)
        for statement in ("select * from pipeline_lock.locks for update",
                          "lock table pipeline_lock.locks in exclusive mode",
                          "select * from warehouse.fact_orders_all for share",
                          "lock table warehouse.fact_orders_all in share mode",
                          "lock table audit.publish_log in exclusive mode"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), bi.transaction():
                bi.execute("set transaction read write")  # a session can undo its read-only default: no matter
                bi.execute(statement)

        def migrate() -> list[str]:
            with two_dates.connect() as conn:
                return migrations.apply_schema(conn, sql_dir)

        migration = Background(migrate)
        migration.start()
        migrated = migration.finished()
        publishing = Background(lambda: publish.publish(D2))
        publishing.start()
        done = publishing.finished()
    # the BI session is closed here: a stalled thread finishes now, and the assertions below report it
    assert migrated and migration.error is None, migration.error or "the migration waited for bi_reader"
    assert migration.result == ["900_later.sql"]
    assert done and publishing.error is None, publishing.error or "the publish waited for bi_reader"
    assert published(two_dates) == [D1, D2]


# ----------------------------------------------------------------------- BI idle in a transaction
def test_bi_idle_in_a_transaction_makes_the_publish_fail_clearly_after_bounded_waits(two_dates, quick_locks) -> None:
    quick_locks(attempts=3)
    with bi_session(two_dates) as bi:
        bi.execute("select count(*) from warehouse.fact_orders").fetchone()  # and then the BI tool sits idle
        pid = bi.info.backend_pid
        publishing = Background(lambda: publish.publish(D2))
        publishing.start()
        done = publishing.finished()
        bi.rollback()
    assert done, "the publish waited for the idle BI session without bound"
    assert isinstance(publishing.error, publish.PublishError), publishing.error
    message = str(publishing.error)
    assert message.startswith(f"publishing {D2} failed: swapping in the partitions of {D2}: warehouse.fact_orders_all,"
                              " warehouse.fact_events_all stayed locked by ")
    assert "AccessShareLock on warehouse.fact_orders_all" in message
    # the publish looks as ecomm_writer, which sees BI sessions' state (pipeline_lock.sessions(), migration 052)
    assert f"pid {pid} (bi_reader, idle in transaction" in message, message
    assert "through 3 waits of 200ms" in message and "end that session" in message
    assert published(two_dates) == [D1], "nothing of D2 is visible"


def test_bi_sessions_end_themselves_when_idle_in_a_transaction_and_the_publish_then_completes(
        two_dates, quick_locks, caplog) -> None:
    with psycopg.connect(two_dates.as_user("bi_reader")) as bi:
        limits = {name: bi.execute(sql.SQL("show {}").format(sql.Identifier(name))).fetchone()[0]
                  for name in ("idle_in_transaction_session_timeout", "statement_timeout")}
    assert limits == {"idle_in_transaction_session_timeout": "1min", "statement_timeout": "5min"}, \
        "bi_reader's role settings (migration 010)"
    # the same mechanism, faster: this database's bi_reader sessions end after 1 s idle in a transaction
    with two_dates.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("alter role bi_reader in database {} set idle_in_transaction_session_timeout = '1s'")
                      .format(sql.Identifier(two_dates.database)))
    quick_locks(attempts=400, timeout="100ms")  # up to ~60 s of bounded waits
    caplog.set_level(logging.WARNING, logger="pipeline.serving.locks")
    with bi_session(two_dates) as bi:
        bi.execute("select count(*) from warehouse.fact_orders").fetchone()
        publishing = Background(lambda: publish.publish(D2))
        publishing.start()
        done = publishing.finished()
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            bi.execute("select 1")
    assert done and publishing.error is None, publishing.error
    assert published(two_dates) == [D1, D2]
    retries = [r.getMessage() for r in caplog.records if "will retry" in r.getMessage()]
    assert retries, "the publish let go of its lock request and retried while BI held the facts"
    assert re.search(r"attempt 2 of 400 at \d\d:\d\d:\d\d", retries[0]), retries[0]
    assert "bi_reader" in retries[0] and "so queued readers go on" in retries[0]


def waiting_for_the_swap(target, day_locks: str = "warehouse.fact_orders_all") -> bool:
    with target.connect(autocommit=True) as conn:
        return conn.execute(
            "select exists (select 1 from pg_locks where not granted and mode = 'AccessExclusiveLock'"
            " and relation = %s::regclass)", [day_locks]).fetchone()[0]


def test_bi_queries_issued_while_a_publish_waits_are_not_queued_behind_it(two_dates, quick_locks) -> None:
    """A publish waiting for its final lock lets go after lock_timeout: a BI query that arrives meanwhile
    runs (without the bound it would wait behind the publish until its own statement_timeout)."""
    quick_locks(attempts=1000, timeout="500ms", backoff=0.1)
    with bi_session(two_dates) as idle:
        idle.execute("select count(*) from warehouse.fact_orders").fetchone()
        publishing = Background(lambda: publish.publish(D2))
        publishing.start()
        for _ in range(600):  # until the publish asks for ACCESS EXCLUSIVE (bounded: 60 s)
            if waiting_for_the_swap(two_dates) or not publishing.is_alive():
                break
            threading.Event().wait(0.1)
        assert publishing.is_alive(), publishing.error
        with bi_session(two_dates, autocommit=True) as other:
            # waits at most for the publish's lock_timeout, then runs; a stall would end in QueryCanceled
            assert other.execute("select count(*) from warehouse.fact_orders").fetchone() == (1,)
            assert other.execute("select count(*) from warehouse.fact_events_all").fetchone() == (1,)
        idle.rollback()  # the BI tool finally ends its transaction: the publish gets its lock
        assert publishing.finished(), "the publish did not complete once BI let go"
    assert publishing.error is None, publishing.error
    assert published(two_dates) == [D1, D2]


def test_a_migration_waits_for_an_idle_bi_session_only_within_bounds(two_dates, quick_locks, tmp_path) -> None:
    """A migration altering a table BI reads needs ACCESS EXCLUSIVE: its waits are bounded like the publish's."""
    quick_locks(attempts=3)
    sql_dir = tmp_path / "serving"
    shutil.copytree(migrations.SERVING_SQL_DIR, sql_dir)
    (sql_dir / "900_segment.sql").write_text(
        "alter table warehouse.dim_user add column if not exists segment text;\n"
        "comment on column warehouse.dim_user.segment is 'Marketing segment.';\n")

    def migrate() -> list[str]:
        with two_dates.connect() as conn:
            return migrations.apply_schema(conn, sql_dir)

    with bi_session(two_dates) as bi:
        bi.execute("select count(*) from warehouse.dim_user").fetchone()
        migration = Background(migrate)
        migration.start()
        done = migration.finished()
        bi.rollback()
    assert done, "the migration waited for the idle BI session without bound"
    assert isinstance(migration.error, migrations.MigrationError), migration.error
    assert "900_segment.sql" in str(migration.error) and "(bi_reader" in str(migration.error)
    assert "AccessShareLock on warehouse.dim_user" in str(migration.error)
    # the lock's own entry (end the session, limit BI's), not "fix the migration"
    assert runbook.remedy_for(migration.error).kind == "publish locked"
    assert migrate() == ["900_segment.sql"], "applied once BI let go"


def test_a_migration_altering_a_mart_names_the_bi_session_reading_it(two_dates, quick_locks, tmp_path) -> None:
    quick_locks(attempts=2)
    sql_dir = tmp_path / "serving"
    shutil.copytree(migrations.SERVING_SQL_DIR, sql_dir)
    (sql_dir / "900_kpi_note.sql").write_text("alter table marts.daily_kpis add column if not exists note text;\n")
    with bi_session(two_dates) as bi:
        bi.execute("select count(*) from marts.daily_kpis").fetchone()
        pid = bi.info.backend_pid
        with two_dates.connect() as conn:
            with pytest.raises(migrations.MigrationError) as failed:
                migrations.apply_schema(conn, sql_dir)
        bi.rollback()
    assert f"stayed locked by pid {pid} (bi_reader, idle in transaction" in str(failed.value), failed.value
    assert "AccessShareLock on marts.daily_kpis" in str(failed.value)


# -------------------------------------------------------------------------- what BI can read
CARD, CARD_DIGITS, CVV, EMAIL = "4929 3813 3266 4295", "4929381332664295", "9517", "jane.doe.secret@example.com"


def write_incoming(root: Path, day: dt.date) -> None:
    """An orders file whose quarantined orders carry a card, a CVV and an e-mail in unknown and known
    fields, and an events file with a rejected line and a quarantined event that carry them too."""
    good = {"order_id": "ORD_1", "user_id": "USER_1", "product_id": "PROD_0001", "quantity": 1, "price": 10.0,
            "timestamp": f"{day}T12:00:00", "status": "paid"}
    orders = [
        good,
        {**good, "order_id": "ORD_2", "price": "abc", "card_number": CARD, "cvv": CVV, "email": EMAIL},
        {**good, "order_id": "ORD_3", "price": CARD},  # a card number where the price goes
        {**good, "order_id": "ORD_4", "quantity": CARD_DIGITS, "payment": {"cvv": CVV, "holder_email": EMAIL}},
    ]
    (root / "orders" / day.isoformat()).mkdir(parents=True)
    (root / "orders" / day.isoformat() / "orders.json").write_text(json.dumps(orders))
    lines = [
        "event_id,user_id,product_id,event_type,event_ts,customer_email",
        f"EVT_1,USER_1,PROD_0001,view_product,{day}T12:00:00,",
        f"EVT_2,USER_1,PROD_0001,teleport,{day}T12:00:00,{EMAIL}",  # quarantined: unknown event type
        f"EVT_3,USER_1,PROD_0001,view_product,{day}T12:00:00,{EMAIL},{CARD},cvv {CVV}",  # rejected: extra fields
        f"EVT_4,USER_1,PROD_0001,view_product,{day}T12:00:00,",
    ]
    (root / "events" / day.isoformat()).mkdir(parents=True)
    (root / "events" / day.isoformat() / "events.csv").write_text("\n".join(lines) + "\n")


def planted(text: str, system: bool) -> list[str]:
    lowered = text.lower()
    found = [token for token in (CARD, CARD_DIGITS, EMAIL, "cvv") if token in lowered]
    if not system and CVV in lowered:  # four digits also occur in catalogs' numbers
        found.append(CVV)
    return found


SELECTABLE = """
select n.nspname, c.oid::regclass::text, c.oid
from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm', 'f') and has_schema_privilege(n.oid, 'USAGE')
    and has_any_column_privilege(c.oid, 'SELECT')
order by 1, 2
"""


def scan_as_bi(target) -> tuple[dict[str, int], dict[str, list[str]], dict[str, str]]:
    """Every column of every relation bi_reader can select: rows read, planted values found, errors."""
    rows, leaks, errors = {}, {}, {}
    with bi_session(target, autocommit=True) as bi:
        for schema, relation, oid in bi.execute(SELECTABLE).fetchall():
            columns = [name for (name,) in bi.execute(
                "select attname from pg_attribute where attrelid = %s and attnum > 0 and not attisdropped"
                " and has_column_privilege(attrelid, attnum, 'SELECT') order by attnum", [oid]).fetchall()]
            query = sql.SQL("select {} from {}").format(
                sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns), sql.SQL(relation))
            try:
                values = bi.execute(query).fetchall()
            except psycopg.Error as err:
                errors[relation] = type(err).__name__
                continue
            rows[relation] = len(values)
            system = schema in ("pg_catalog", "information_schema")
            found = sorted({t for row in values for v in row if v is not None for t in planted(v, system)})
            if found:
                leaks[relation] = found
    return rows, leaks, errors


def test_bi_reads_no_raw_payload_of_rejected_data(fresh_db, serving_lake, tmp_path, monkeypatch) -> None:
    incoming = tmp_path / "incoming"
    monkeypatch.setenv("ECOMM_DATA_DIR", str(incoming))
    write_incoming(incoming, D1)
    landing.land_orders(D1)
    landing.land_events(D1)
    staging.stage("orders", D1)
    staging.stage("events", D1)
    write_facts(D1, [order("ORD_1", D1)], [event("EVT_1", D1), event("EVT_4", D1)])
    publish.publish(D1)
    with fresh_db.connect() as conn:  # the operator sees everything, so the planted values did reach Postgres
        kept = conn.execute("select string_agg(raw_record || ' ' || coalesce(failing_value, ''), ' ')"
                            " from quarantine.bad_records").fetchone()[0] + " " + conn.execute(
            "select string_agg(raw_text, ' ') from quarantine.rejected_lines").fetchone()[0]
        assert set(planted(kept, system=False)) == {CARD, CARD_DIGITS, EMAIL, "cvv", CVV}
        assert conn.execute("select count(*) from quarantine.rejected_lines").fetchone() == (1,)
    rows, leaks, errors = scan_as_bi(fresh_db)
    assert leaks == {}, "bi_reader can read raw payloads of rejected data"
    assert rows["audit.bad_records"] == 4 and rows["audit.rejected_lines"] == 1, "BI still sees what was rejected"
    assert "quarantine.bad_records" not in rows and "quarantine.rejected_lines" not in rows
    assert len(rows) > 100, "the scan covered the catalogs too"
    assert set(errors.values()) <= {"InsufficientPrivilege"}, errors  # catalog views only superusers may read
    with bi_session(fresh_db) as bi:
        assert bi.execute("select source_table, row_number, reason_code is not null from audit.bad_records"
                          " order by 1, 2").fetchall() == [
            ("stg_events", 2, True), ("stg_orders", 2, True), ("stg_orders", 3, True), ("stg_orders", 4, True)]
        assert bi.execute("select source_table, line_number, error_type from audit.rejected_lines").fetchall() == [
            ("events", 4, "TOO MANY COLUMNS")]
        for statement in ("select * from quarantine.bad_records", "select raw_text from quarantine.rejected_lines"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                bi.execute(statement)
            bi.rollback()


def test_a_migration_s_own_notice_is_a_warning_and_names_in_other_schemas_do_not_fail_it(
        two_dates, tmp_path, caplog) -> None:
    """A notice (050's "not granted ... as a superuser run ...") was dropped: psycopg shows none without a handler.
    Names of relations in a schema the migrating role may not use made to_regclass raise: the migration failed."""
    sql_dir = tmp_path / "serving"
    shutil.copytree(migrations.SERVING_SQL_DIR, sql_dir)
    (sql_dir / "900_notice.sql").write_text(
        "create table if not exists warehouse.dim_date (date_id int);  -- Postgres's notice: already exists\n"
        "drop table if exists warehouse.no_such_table;  -- Postgres's notice, SQLSTATE 00000 as a raised one\n"
        "do $$ begin raise notice 'grant it by hand: %', 'a superuser runs it'; end $$;\n"
        "do $$ begin raise warning 'cannot set it'; end $$;\n")
    with two_dates.connect() as conn:
        conn.execute("create schema if not exists probe_secret")
        conn.execute("create table if not exists probe_secret.zz (x int)")
        conn.commit()
        with caplog.at_level(logging.DEBUG, logger="pipeline.serving.migrations"):
            assert migrations.apply_schema(conn, sql_dir) == ["900_notice.sql"]
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.getMessage().startswith("migration 900_notice")]
    assert (logging.WARNING, "migration 900_notice.sql: grant it by hand: a superuser runs it") in said, said
    assert (logging.WARNING, "migration 900_notice.sql: cannot set it") in said, said
    assert [level for level, message in said if "already exists" in message or "does not exist" in message] \
        == [logging.DEBUG, logging.DEBUG], said
    with psycopg.connect(two_dates.as_user("bi_reader")) as bi:  # no USAGE on probe_secret
        text = "alter table probe_secret.zz add column y int; -- see serving.md, e.g. warehouse.fact_orders\n"
        assert migrations._relations(bi, text) == ["probe_secret.zz"]
