"""Migrations run by a managed Postgres's admin: a login with CREATEROLE and CREATEDB but no SUPERUSER.

PostgreSQL 16 gives such a login only ADMIN on the roles it creates, not SET or INHERIT, and migration 005 could
not hand the facts to ecomm_writer ("must be able to SET ROLE"): a first `migrate` on RDS, Cloud SQL or Azure
failed. Each test has its own server: roles are cluster-wide, and these must be created by the admin itself.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest

from pipeline.serving import migrations, publish
from pipeline.tasks import runbook
from tests.support.postgres import PG_ENV, ThrowawayPostgres
from tests.support.serving import event, order, write_facts

DAY = dt.date(2025, 12, 14)


@pytest.fixture
def server() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    try:
        yield server
    finally:
        server.stop()


def _managed_database(server: ThrowawayPostgres, admin: str, database: str) -> str:
    with psycopg.connect(server.dsn(), autocommit=True) as su:
        su.execute(f"create role {admin} login createrole createdb")
        su.execute(f"create database {database} owner {admin}")
    return server.dsn(database, user=admin)


def test_an_admin_without_superuser_migrates_and_publishes(server, serving_lake, monkeypatch) -> None:
    admin = _managed_database(server, "app_admin", "ecomm")
    with psycopg.connect(admin) as conn:
        applied = migrations.apply_schema(conn)
        owners = conn.execute("select distinct pg_get_userbyid(relowner) from pg_class"
                              " where relname in ('fact_orders_all', 'fact_events_all')").fetchall()
        acts_as = conn.execute("select pg_has_role('ecomm_writer', 'SET'), pg_has_role('ecomm_writer', 'USAGE'),"
                               " pg_has_role('ecomm_writer', 'MEMBER WITH ADMIN OPTION')").fetchone()
    assert len(applied) == len(migrations.migrations(migrations.SERVING_SQL_DIR))
    assert owners == [("ecomm_writer",)]
    assert acts_as == (True, True, True)
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ECOMM_PG_DSN", admin)
    write_facts(DAY, [order("ORD_1", DAY)], [event("EVT_1", DAY)])
    publish.publish(DAY)
    with psycopg.connect(server.dsn("ecomm")) as conn:
        assert conn.execute("select count(*) from warehouse.fact_orders").fetchone() == (1,)


def test_roles_another_login_created_without_set_are_one_line_with_the_grant(server, serving_lake) -> None:
    with psycopg.connect(_managed_database(server, "app_admin", "ecomm")) as conn:
        migrations.apply_schema(conn)  # creates the roles: app_admin is their creator
    second = _managed_database(server, "team_admin", "ecomm_two")
    with psycopg.connect(server.dsn("ecomm", user="app_admin"), autocommit=True) as conn:
        conn.execute("grant ecomm_reader, bi_reader to team_admin with admin true")  # as docs/serving.md says
        conn.execute("grant ecomm_writer to team_admin with admin true, inherit false, set false")
    with psycopg.connect(second) as conn, pytest.raises(migrations.MigrationNotPermitted) as failed:
        migrations.apply_schema(conn)
    assert runbook.remedy_for(failed.value).kind == "schema migration"
    first = str(failed.value).splitlines()[0]
    assert first.endswith(
        "005_roles.sql: must be able to SET ROLE \"ecomm_writer\"; team_admin may not act as ecomm_writer: as the"
        " role's creator or a superuser run `grant ecomm_writer to team_admin with inherit true, set true`, then run"
        " the migrations again (docs/serving.md, your own server)"), first


def test_an_admin_without_superuser_takes_temp_tables_from_bi_and_says_what_a_superuser_runs(
        server, caplog) -> None:
    """Migration 053: the database's owner takes TEMPORARY from PUBLIC and makes bi_reader's sessions read-only; the
    functions creating large objects belong to the bootstrap superuser, so the admin cannot take them from PUBLIC:
    the migration is applied all the same and a warning names the revoke a superuser runs, which then holds."""
    admin = _managed_database(server, "app_admin", "ecomm")
    with caplog.at_level("WARNING", logger="pipeline.serving.migrations"), psycopg.connect(admin) as conn:
        applied = migrations.apply_schema(conn)
    assert "053_bi_reader_read_only.sql" in applied
    said = [r.getMessage() for r in caplog.records if "053_bi_reader_read_only" in r.getMessage()]
    assert len(said) == 1 and "every login may still create large objects here: app_admin may not revoke it" in said[0]
    revoke = said[0].split("as a superuser run ", 1)[1].split(" (docs/security.md)")[0]
    assert revoke == ("revoke execute on function lo_create(oid), lo_creat(integer), lo_from_bytea(oid,bytea)"
                      " from public"), said
    with psycopg.connect(server.dsn("ecomm", user="bi_reader")) as bi:
        assert bi.execute("show default_transaction_read_only").fetchone() == ("on",)
        bi.execute("set transaction read write")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("create temp table t as select 1")
    with psycopg.connect(server.dsn("ecomm"), autocommit=True) as su:
        su.execute(revoke)
    with psycopg.connect(server.dsn("ecomm", user="bi_reader")) as bi:
        bi.execute("set transaction read write")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("select lo_from_bytea(0, 'abc')")
