"""BI logins holding every connection slot: the pipeline is told so (not "Postgres down"), soon, and on
PostgreSQL 16 its login may use the slots `reserved_connections` sets aside (migration 047).

A server of its own with 8 connections: 3 kept for superusers, 2 reserved for pg_use_reserved_connections,
so 3 ordinary slots, which three bi_reader sessions fill.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest

from pipeline.serving import migrations, pg, retry
from pipeline.tasks import runbook
from tests.support.postgres import PG_ENV, ThrowawayPostgres, socket_dsn


@pytest.fixture(scope="module")
def small_server() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    server.restart(max_connections=8, superuser_reserved_connections=3, reserved_connections=2)
    server.create_database("ecomm")
    yield server
    server.stop()


@pytest.fixture
def slots_taken(small_server, monkeypatch) -> Iterator[ThrowawayPostgres]:
    """The serving schema migrated (as the owner), a pipeline login in ecomm_writer, every ordinary slot held by BI."""
    for var in PG_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ECOMM_PG_DSN", small_server.dsn("ecomm"))
    with pg.connect() as conn:
        migrations.ensure_schema(conn)
    with psycopg.connect(small_server.dsn("ecomm"), autocommit=True) as admin:
        for role, member in (("etl", "in role ecomm_writer"), ("outsider", "")):
            if not admin.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone():
                admin.execute(f"create role {role} login {member}")
    with contextlib.ExitStack() as held:
        for _ in range(3):
            held.enter_context(psycopg.connect(socket_dsn(small_server.socket_dir, "ecomm", user="bi_reader")))
        yield small_server


def _refused(server: ThrowawayPostgres, user: str) -> psycopg.OperationalError:
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(socket_dsn(server.socket_dir, "ecomm", user=user)).close()
    return refused.value


def test_a_full_server_is_its_own_runbook_kind_retried_once(slots_taken, luigi_settings) -> None:
    err = _refused(slots_taken, "outsider")
    assert "remaining connection slots are reserved" in str(err), err
    assert runbook.remedy_for(err).kind == "Postgres connection slots full"
    assert runbook.remedy_for_text(runbook.reason(err)).kind == "Postgres connection slots full"
    explained = runbook.explain("Publish", None, err)
    assert "What to do (Postgres connection slots full):" in explained and "connection limit" in explained, explained
    luigi_settings("publish", attempts=4, retry_backoff_seconds=0.1)
    tries: list[int] = []

    def connect() -> None:
        tries.append(1)
        psycopg.connect(socket_dsn(slots_taken.socket_dir, "ecomm", user="outsider")).close()

    with pytest.raises(psycopg.OperationalError):
        retry.call(connect, "publishing 2026-01-02")
    assert len(tries) == retry.SLOTS_FULL_ATTEMPTS == 2


def test_the_pipeline_login_uses_the_reserved_slots(slots_taken) -> None:
    """Migration 047: ecomm_writer's members may use reserved_connections; the BI login may not."""
    with psycopg.connect(socket_dsn(slots_taken.socket_dir, "ecomm", user="etl")) as conn:
        assert conn.execute("select pg_has_role('etl', 'pg_use_reserved_connections', 'USAGE')").fetchone()[0]
    assert "remaining connection slots are reserved" in str(_refused(slots_taken, "bi_reader"))
