"""The serving reconciliation's Postgres connection for Soda: made as the pipeline's own, by libpq from the whole DSN.

Contract: the scan's connection is opened here from the pipeline's DSN as it is (`pipeline.serving.pg.dsn()`:
ECOMM_PG_DSN, "" for libpq's PG* variables, or the embedded server), with what `pg.connect` adds to every connection
(`pg.libpq_params`) and one parameter the checks choose themselves, sslmode (below). libpq reads every other
parameter and PG* variable itself, as for every other connection of the pipeline: the password from the DSN,
PGPASSWORD, `passfile`/PGPASSFILE or ~/.pgpass; sslrootcert, sslcert, sslkey, sslpassword; options; service;
several hosts; target_session_attrs ... So the checks reach the same server, as the same login, with the same
password source and client certificate as the publish. Soda is handed the open connection (psycopg2, the driver of
soda-core-postgres), never a host/port/user subset of the DSN, and never a password: none can reach its Jinja
rendering of configuration or its logs.

sslmode: the DSN's own (or PGSSLMODE's, or its service's) if it is a definite one (disable, require, verify-*);
otherwise `disable` for Unix sockets and loopback hosts and [checks] serving_sslmode (default `require`) for any
other host, never libpq's downgradable `prefer`/`allow`.

A connection libpq cannot make raises ServingChecksUnreachable (no answer) or ServingChecksRefused (the server
answered and refused, or the settings cannot work, e.g. no password found), with libpq's reason: the checks file
is not at fault.
"""
from __future__ import annotations

import os
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pipeline.quality.gate import checks
from pipeline.serving import pg, retry
from pipeline.serving.settings import postgres as postgres_settings

LOOPBACK = {"localhost", "127.0.0.1", "::1"}
DEFINITE_SSLMODES = {"disable", "require", "verify-ca", "verify-full"}


class ServingCheckError(Exception):
    """The serving reconciliation could not run (connection, configuration or SodaCL error)."""


class ServingChecksUnreachable(ServingCheckError):
    """The serving checks could not reach the serving Postgres (no answer): not a checks-file error."""


class ServingChecksRefused(ServingCheckError):
    """The serving Postgres refused the serving checks' connection (login, password, TLS): not a checks-file error."""


def _is_local(host: str) -> bool:
    return host.startswith("/") or host.startswith("@") or host.lower() in LOOPBACK


def _service_resolved(target: str) -> dict[str, Any]:
    """What libpq makes of a DSN that names a service (`service=...` or PGSERVICE, read from pg_service.conf): the
    host it reached and the service's sslmode, asked of a connection (libpq's own lookup, not a second reading)."""
    with psycopg.connect(target, connect_timeout=postgres_settings().connect_timeout) as conn:
        return {"host": conn.info.host, "sslmode": conn.info.get_parameters().get("sslmode", "")}


def sslmode_for(target: str) -> str:
    """The sslmode the serving checks connect with to the DSN `target` (see the module's docstring)."""
    parts: dict[str, Any] = conninfo_to_dict(target) if target else {}
    env = os.environ
    if parts.get("service") or env.get("PGSERVICE"):
        parts = {**parts, **_service_resolved(target)}
    given = str(parts.get("sslmode") or env.get("PGSSLMODE") or "").lower()
    if given in DEFINITE_SSLMODES:
        return given
    addresses = [a for key in ("host", "hostaddr") for a in str(parts.get(key) or env.get(f"PG{key.upper()}") or
                                                                 "").split(",") if a]
    if all(_is_local(a) for a in addresses):  # none: libpq's default Unix socket
        return "disable"  # nothing on the wire to protect
    sslmode = str(checks().serving_sslmode).strip().lower()
    if sslmode not in DEFINITE_SSLMODES - {"disable"}:
        raise ServingCheckError(
            f"[checks] serving_sslmode = {sslmode!r}: use require, verify-ca or verify-full for a remote"
            " Postgres (or put an explicit sslmode in the DSN)"
        )
    return sslmode


def connection_params(target: str) -> dict[str, Any]:
    """The libpq parameters the checks' connection adds to the DSN `target` (all others are the DSN's or PG*'s)."""
    return pg.libpq_params(target, sslmode=sslmode_for(target))[0]


def connect(target: str, schema: str) -> Any:
    """A psycopg2 connection for Soda to the DSN `target`, search_path `schema`; ServingChecksUnreachable or
    ServingChecksRefused when libpq cannot make it."""
    import psycopg2  # soda-core-postgres's driver

    try:
        sslmode = sslmode_for(target)
        params, in_sql = pg.libpq_params(target, sslmode=sslmode)
        conn = psycopg2.connect(target, **params)
    except (psycopg2.OperationalError, psycopg.OperationalError) as err:
        reason = " ".join(str(err).split())  # libpq's words, never the password
        if retry.postgres_unreachable(reason):
            raise ServingChecksUnreachable(
                f"the serving checks cannot reach the serving Postgres ({pg.redact(target)}): {reason}") from err
        raise ServingChecksRefused(
            f"the serving Postgres ({pg.redact(target)}) refuses the serving checks' connection: {reason}") from err
    try:
        pg.set_session(conn, [*in_sql, ("search_path", schema)])  # soda-core-postgres's own search_path
    except BaseException:
        conn.close()
        raise
    return conn


def describe(conn: Any) -> str:
    """Where a connection went, safe to log (no password)."""
    info = conn.info
    return (f"host={info.host} port={info.port} dbname={info.dbname} user={info.user}"
            f" tls={'on' if info.ssl_in_use else 'off'}")
