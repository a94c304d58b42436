"""Throwaway PostgreSQL servers for the tests (fixtures registered by tests/conftest.py).

Every test session starts its own servers from the PostgreSQL 16 binaries bundled with `pgserver`,
in temporary directories; nothing depends on a server already running.

- `embedded_server` (session): the pipeline's own embedded server (`pipeline.serving.pg.start_embedded`),
  in a temporary ECOMM_PG_DATA on a free port: the path taken when no DSN is configured.
- `dsn_server` (session): a second, independent server listening on a Unix socket only, reached
  through `ECOMM_PG_DSN=postgresql://postgres@/<db>?host=<socket dir>`: the configured-DSN path.
- `pg_target` (per test, parametrised over both): a fresh database on one of them, with the
  environment pointing the pipeline at it; `fresh_db` is the same on the DSN server only.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipeline.serving import embedded, pg
from tests.support.processes import free_port

PG_ENV = ("ECOMM_PG_DSN", "ECOMM_PG_DATA", "ECOMM_PG_PORT", "ECOMM_PG_DATABASE",
          "PGHOST", "PGDATABASE", "PGSERVICE", "PGUSER", "PGPORT", "PGPASSWORD", "PGOPTIONS")


def socket_dsn(socket_dir: str | Path, database: str, port: int = 5432, user: str = "postgres") -> str:
    suffix = "" if port == 5432 else f"&port={port}"
    return f"postgresql://{user}@/{database}?host={socket_dir}{suffix}"


class ThrowawayPostgres:
    """A PostgreSQL server in a temporary directory, listening on a Unix socket only."""

    def __init__(self) -> None:
        pgserver = embedded.pgserver_module()
        initdb, pg_ctl = pgserver.initdb, pgserver.pg_ctl
        self._pg_ctl = pg_ctl
        # short path: the socket path must fit in sun_path (108 bytes)
        self.root = Path(tempfile.mkdtemp(prefix="ecomm-pgt-"))
        self.data = self.root / "data"
        self.data.mkdir(mode=0o700)
        self.user = None
        if os.geteuid() == 0:  # Postgres refuses root; pgserver's convention is a `pgserver` user
            from pgserver.utils import ensure_prefix_permissions

            entry = embedded.ensure_system_user()
            self.user = embedded.SYSTEM_USER
            ensure_prefix_permissions(self.data)
            self.root.chmod(self.root.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        initdb(["--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres"], pgdata=self.data, user=self.user)
        pg_ctl(["-w", "-l", str(self.data / "server.log"), "-o", f"-h '' -k {self.data}", "start"],
               pgdata=self.data, user=self.user, timeout=60)
        self.socket_dir = str(self.data)

    def dsn(self, database: str = "postgres", user: str = "postgres") -> str:
        return socket_dsn(self.socket_dir, database, user=user)

    def restart(self, **settings: Any) -> None:
        """Restart with server settings that need it (`max_connections=8`), as `alter system` sets them."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            for name, value in settings.items():
                conn.execute(f"alter system set {name} = '{value}'")
        self._pg_ctl(["-w", "-l", str(self.data / "server.log"), "-o", f"-h '' -k {self.data}", "restart"],
                     pgdata=self.data, user=self.user, timeout=60)

    @contextlib.contextmanager
    def password_required(self, role: str) -> Iterator[None]:
        """While the block runs, the server asks `role` for its password (scram-sha-256, pg_hba.conf); every other
        login stays trusted. Returns once a connection as `role` without a password is refused."""
        hba = self.data / "pg_hba.conf"
        trusted = hba.read_text(encoding="utf-8")
        hba.write_text(f"local all {role} scram-sha-256\n{trusted}", encoding="utf-8")  # first match wins
        try:
            self._reload_until(role, refused=True)
            yield
        finally:
            hba.write_text(trusted, encoding="utf-8")
            self._reload_until(role, refused=False)

    def _reload_until(self, role: str, *, refused: bool) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute("select pg_reload_conf()")
        for _ in range(100):  # the postmaster rereads pg_hba.conf on its signal, soon after
            try:
                psycopg.connect(self.dsn(user=role), connect_timeout=5).close()
                asked = False
            except psycopg.OperationalError as err:
                asked = "no password supplied" in str(err)
            if asked == refused:
                return
            time.sleep(0.05)
        raise AssertionError(f"pg_hba.conf for {role} did not take effect")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.data, user=self.user, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclasses.dataclass
class EmbeddedServer:
    """The session's embedded server: where it lives and how to reach it directly."""

    data_dir: Path
    port: int

    def dsn(self, database: str = "postgres", user: str = "postgres") -> str:
        return socket_dsn(self.data_dir, database, self.port, user)

    def env(self, mp: pytest.MonkeyPatch, database: str) -> None:
        for name in PG_ENV:
            mp.delenv(name, raising=False)
        mp.setenv("ECOMM_PG_DATA", str(self.data_dir))
        mp.setenv("ECOMM_PG_PORT", str(self.port))
        mp.setenv("ECOMM_PG_DATABASE", database)


@dataclasses.dataclass
class Target:
    """A fresh database the pipeline is pointed at, on the embedded or the DSN server."""

    kind: str  # "embedded" or "dsn"
    database: str
    dsn: str  # a superuser DSN to the database, for assertions

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(self.dsn, **kwargs)

    def as_user(self, user: str) -> str:
        return self.dsn.replace("postgresql://postgres@", f"postgresql://{user}@", 1)


@contextlib.contextmanager
def embedded_in_temp_dir() -> Iterator[EmbeddedServer]:
    """A not-yet-started embedded server location: a private temp dir and a free port (removed after).

    Not under pytest's basetemp: a concurrent pytest session prunes old basetemps, data dir included.
    """
    root = Path(tempfile.mkdtemp(prefix="ecomm-emb-"))
    root.chmod(0o711)  # as root, the server's user must traverse it: the server never opens it to others itself
    server = EmbeddedServer(root / "pgdata", free_port())
    try:
        yield server
    finally:
        with pytest.MonkeyPatch.context() as mp:
            server.env(mp, "ecomm")
            with contextlib.suppress(pg.EmbeddedServerError):
                pg.stop_embedded()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedServer]:
    """The pipeline's embedded server in a temporary data directory (stopped at the end)."""
    with embedded_in_temp_dir() as server:
        with pytest.MonkeyPatch.context() as mp:
            server.env(mp, "ecomm")
            pg.start_embedded()
        yield server


@pytest.fixture(scope="session")
def dsn_server() -> Iterator[ThrowawayPostgres]:
    """A second server, reached only through ECOMM_PG_DSN on a Unix socket."""
    server = ThrowawayPostgres()
    yield server
    server.stop()


def _unique_db() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["embedded", "dsn"])
def pg_target(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Target:
    """A fresh database, the pipeline's environment pointing at it (embedded or via ECOMM_PG_DSN)."""
    name = _unique_db()
    if request.param == "embedded":
        server = request.getfixturevalue("embedded_server")
        server.env(monkeypatch, name)
        pg.start_embedded()  # creates the database, as the pipeline would
        return Target("embedded", name, server.dsn(name))
    server = request.getfixturevalue("dsn_server")
    for var in PG_ENV:
        monkeypatch.delenv(var, raising=False)
    dsn = server.create_database(name)
    monkeypatch.setenv("ECOMM_PG_DSN", dsn)
    return Target("dsn", name, dsn)


@pytest.fixture
def fresh_db(dsn_server: ThrowawayPostgres, monkeypatch: pytest.MonkeyPatch) -> Target:
    """A fresh database on the DSN server, set as ECOMM_PG_DSN."""
    for var in PG_ENV:
        monkeypatch.delenv(var, raising=False)
    name = _unique_db()
    dsn = dsn_server.create_database(name)
    monkeypatch.setenv("ECOMM_PG_DSN", dsn)
    return Target("dsn", name, dsn)
