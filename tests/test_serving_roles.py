"""Roles on a real Postgres: bi_reader reads everything and changes nothing; ecomm_writer publishes."""
from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from pipeline.serving import migrations, publish
from tests.support.serving import event, order, write_facts

DAY = dt.date(2025, 12, 14)
READABLE = ["warehouse.fact_orders", "warehouse.fact_events", "warehouse.fact_orders_all", "warehouse.dim_product",
            "warehouse.dim_user", "warehouse.dim_date", "warehouse.daily_metrics", "audit.publish_log",
            "audit.dq_failures", "audit.bad_records", "audit.pipeline_runs", "audit.schema_migrations"]


@pytest.fixture
def published(fresh_db, serving_lake):
    write_facts(DAY, [order("ORD_1", DAY)], [event("EVT_1", DAY)])
    publish.publish(DAY)
    return fresh_db


def test_roles_exist_with_the_right_shape(published) -> None:
    with published.connect() as conn:
        roles = dict(conn.execute(
            "select rolname, rolcanlogin from pg_roles where rolname in ('ecomm_reader', 'ecomm_writer', 'bi_reader')"
        ).fetchall())
        members = conn.execute(
            "select pg_has_role('bi_reader', 'ecomm_reader', 'member'), pg_has_role('bi_reader', 'ecomm_writer', 'member')"
        ).fetchone()
        passwords = conn.execute("select rolname from pg_authid where rolpassword is not null").fetchall()
    assert roles == {"ecomm_reader": False, "ecomm_writer": False, "bi_reader": True}
    assert members == (True, False)
    assert passwords == [], "the repository never sets a password"


def test_the_reader_roles_comment_names_every_schema_it_reads(published) -> None:
    with published.connect() as conn:
        comment, = conn.execute("select shobj_description('ecomm_reader'::regrole, 'pg_authid')").fetchone()
        readable = [name for name, in conn.execute(
            "select nspname from pg_namespace where has_schema_privilege('ecomm_reader', oid, 'USAGE')"
            " and nspname not in ('public', 'information_schema') and nspname not like 'pg\\_%' order by 1")]
    assert readable == ["audit", "marts", "warehouse"]
    assert all(name in comment for name in readable), comment


def test_bi_reader_can_read_everything(published) -> None:
    with psycopg.connect(published.as_user("bi_reader")) as conn:
        for table in READABLE:
            conn.execute(f"select count(*) from {table}").fetchone()
        # a partition publish created later is readable directly too (default privileges)
        assert conn.execute(f"select count(*) from warehouse.fact_orders_all_{DAY:%Y%m%d}").fetchone() == (1,)
        # the seed's query, unchanged
        rows = conn.execute(
            "select dp.category, count(*) from warehouse.fact_orders fo"
            " join warehouse.dim_product dp on fo.product_id = dp.product_id group by dp.category"
        ).fetchall()
        assert rows == []  # no dim_product partition in this lake


@pytest.mark.parametrize("statement", [
    "insert into warehouse.dim_user (user_id) values ('X')",
    "insert into audit.publish_log (load_date, fact_orders_rows, fact_events_rows) values ('2020-01-01', 0, 0)",
    "delete from warehouse.fact_orders_all",
    "delete from audit.dq_failures",
    "update warehouse.dim_date set year = 0",
    "truncate warehouse.dim_product",
    "truncate quarantine.bad_records",
    "delete from audit.bad_records",
    "create table warehouse.mine (x int)",
    "create table audit.mine (x int)",
    "create table public.mine (x int)",
    "create table mine (x int)",
    "drop view warehouse.fact_orders",
    "alter table warehouse.fact_orders_all detach partition warehouse.fact_orders_all_20251214",
])
def test_bi_reader_cannot_change_anything(published, statement: str) -> None:
    """Refused by privileges, even in a transaction the session makes read-write (its sessions start read-only)."""
    with psycopg.connect(published.as_user("bi_reader")) as conn:
        with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)):
            conn.execute(statement)
        conn.rollback()
        conn.execute("set transaction read write")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_tables_added_by_a_later_migration_are_readable(published, tmp_path) -> None:
    import shutil

    sql_dir = tmp_path / "serving"
    shutil.copytree(migrations.SERVING_SQL_DIR, sql_dir)
    (sql_dir / "900_extra.sql").write_text(
        "create table warehouse.extra (x int primary key);\n"
        "comment on table warehouse.extra is 'Test table. Grain: one row per x.';\n"
        "comment on column warehouse.extra.x is 'A number.';\n")
    with published.connect() as conn:
        migrations.apply_schema(conn, sql_dir)
    with psycopg.connect(published.as_user("bi_reader")) as conn:
        assert conn.execute("select count(*) from warehouse.extra").fetchone() == (0,)


def test_ecomm_writer_owns_the_facts_but_not_the_rest(published) -> None:
    with published.connect() as conn:
        owners = dict(conn.execute(
            "select c.relname, pg_get_userbyid(c.relowner) from pg_class as c join pg_namespace as n"
            " on n.oid = c.relnamespace where n.nspname = 'warehouse' and c.relname like 'fact_orders_all%%'"
            " and c.relkind in ('r', 'p')").fetchall())
        assert set(owners.values()) == {"ecomm_writer"}, "publish runs as ecomm_writer; partitions are its own"
        conn.execute("set role ecomm_writer")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("drop table warehouse.dim_user")
        conn.rollback()
        conn.execute("set role ecomm_writer")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into audit.schema_migrations values (999, 'x', 'x')")


def test_ecomm_writer_sees_other_sessions_state_but_not_their_statements(published) -> None:
    """Lock messages need a BI session's state; the statements it (or anyone) runs are none of the pipeline's business."""
    secret = "select 'a statement of its own' as s"
    with psycopg.connect(published.as_user("bi_reader")) as bi, published.connect() as conn:
        bi.execute(secret)  # left idle in its transaction
        pid = bi.info.backend_pid
        conn.execute("set role ecomm_writer")
        member, = conn.execute("select pg_has_role('ecomm_writer', 'pg_read_all_stats', 'USAGE')").fetchone()
        seen = conn.execute("select state, query from pg_stat_activity where pid = %s", [pid]).fetchone()
        states = conn.execute("select usename, state, query from pipeline_lock.sessions() where pid = %s",
                              [pid]).fetchone()
        assert not member
        assert seen == (None, "<insufficient privilege>")
        assert states == ("bi_reader", "idle in transaction", None)
    with psycopg.connect(published.as_user("bi_reader")) as bi:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("select * from pipeline_lock.sessions()")


def test_a_pipeline_lock_holder_is_named_with_its_statement_as_ecomm_writer_sees_it(published) -> None:
    """pipeline_lock.sessions() shows the statements of the sessions holding a pipeline lock (the pipeline's own)."""
    from pipeline.serving import locks

    with published.connect() as holder, published.connect() as waiter:
        holder.execute("set role ecomm_writer")
        locks.hold(holder, locks.date_key(DAY))
        holder.execute("select 'the holder''s last statement'")  # idle in its transaction, lock held
        waiter.execute("set role ecomm_writer")
        said, pid = locks.key_holder(waiter, locks.date_key(DAY)), holder.info.backend_pid
    assert f"pid {pid} (postgres, idle in transaction" in said, said
    assert "last statement \"select 'the holder''s last statement'\"" in said, said


def test_migration_052_revokes_pg_read_all_stats_whoever_granted_it(published) -> None:
    """On PostgreSQL 16 a revoke removes only the grants the revoking role made: one a DBA's admin role made (as 050's
    notice advised) stayed, and the notice then told a superuser to run a revoke that did nothing."""
    text = (migrations.SERVING_SQL_DIR / "052_writer_sees_session_states.sql").read_text()
    with published.connect(autocommit=True) as conn:
        conn.execute("create role dba_admin_052 createrole")
        try:
            conn.execute("grant pg_read_all_stats to dba_admin_052 with admin option")
            conn.execute("set role dba_admin_052")
            conn.execute("grant pg_read_all_stats to ecomm_writer")
            conn.execute("reset role")
            granted, = conn.execute("select pg_has_role('ecomm_writer', 'pg_read_all_stats', 'MEMBER')").fetchone()
            conn.execute(text)
            member, = conn.execute("select pg_has_role('ecomm_writer', 'pg_read_all_stats', 'MEMBER')").fetchone()
        finally:
            conn.execute("reset role")
            conn.execute("revoke pg_read_all_stats from ecomm_writer granted by dba_admin_052")
            conn.execute("drop role dba_admin_052")
    assert granted and not member


@pytest.mark.parametrize("statement", [
    "select lo_from_bytea(0, 'abc')",
    "select lo_create(0)",
    "select lo_creat(-1)",
    "create temp table t as select 1",
    "create temporary table t (x int)",
])
@pytest.mark.parametrize("transaction", ["default", "read write"])
def test_bi_reader_cannot_store_large_objects_or_temp_tables(published, statement: str, transaction: str) -> None:
    """Every login could create temporary tables and large objects: a large object outlives the session, owned by
    bi_reader, and a BI login could fill the disk. Refused even in a transaction the session makes read-write
    itself (default_transaction_read_only is only a default)."""
    with psycopg.connect(published.as_user("bi_reader")) as conn:
        assert conn.execute("show default_transaction_read_only").fetchone() == ("on",)
        refused: tuple[type[Exception], ...] = (psycopg.errors.InsufficientPrivilege,)
        if transaction == "read write":
            conn.execute("set transaction read write")
        else:
            refused += (psycopg.errors.ReadOnlySqlTransaction,)
        with pytest.raises(refused):
            conn.execute(statement)
    with published.connect() as conn:
        assert conn.execute("select count(*) from pg_largeobject_metadata"
                            " where lomowner = 'bi_reader'::regrole").fetchone() == (0,)


def test_bi_reader_sessions_start_read_only_and_still_read(published) -> None:
    with psycopg.connect(published.as_user("bi_reader")) as conn:
        assert conn.execute("select count(*) from warehouse.fact_orders").fetchone() == (1,)
        assert conn.execute("select current_setting('transaction_read_only')").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("create temp table t as select 1")


def test_the_pipeline_still_publishes_with_its_temp_tables_as_ecomm_writer(published) -> None:
    """The publish's temp tables are created as ecomm_writer (set local role), which alone keeps TEMPORARY."""
    with published.connect() as conn:
        name = conn.info.dbname
        can = conn.execute(
            "select r.rolname, has_database_privilege(r.oid, %s, 'TEMPORARY') from pg_roles as r"
            " where r.rolname in ('ecomm_writer', 'ecomm_reader', 'bi_reader') order by 1", [name]).fetchall()
    assert can == [("bi_reader", False), ("ecomm_reader", False), ("ecomm_writer", True)]
    write_facts(DAY, [order("ORD_1", DAY), order("ORD_2", DAY)], [event("EVT_1", DAY)])
    publish.publish(DAY)  # a second publish of the date: the merges and the marts' deltas use temp tables
    with psycopg.connect(published.as_user("bi_reader")) as conn:
        assert conn.execute("select count(*) from warehouse.fact_orders").fetchone() == (2,)
