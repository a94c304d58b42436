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

sslmode: the DSN's own (or its service's, or PGSSLMODE's) if it is a definite one (disable, require, verify-*);
otherwise `disable` when EVERY host is a Unix socket or loopback host, and [checks] serving_sslmode (default
`require`) when any is not, never libpq's downgradable `prefer`/`allow`. A service's hosts and sslmode are read
from pg_service.conf, never asked of a connection (one made before the sslmode is chosen could be stripped of TLS
and give away the password); a service neither file defines counts as remote.

A DSN option the checks' libpq (psycopg2-binary's) does not know, though the publish's (psycopg's, newer) does,
raises ServingChecksRefused naming the option.

A connection libpq cannot make raises ServingChecksUnreachable (no answer) or ServingChecksRefused (the server
answered and refused, or the settings cannot work, e.g. no password found), with libpq's reason: the checks file
is not at fault.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
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


def _service_file(path: Path, service: str) -> dict[str, str] | None:
    """The parameters of `[service]` in one pg_service.conf (as libpq's parseServiceFile reads it: the first such group,
    its header a line starting `[service]`, whatever follows the `]`, e.g. `[ecomm]  # production`; `#` comment lines,
    `key=value` lines), or None when the file lacks it or cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    found: dict[str, str] | None = None
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if found is not None:
                break  # the end of the group (libpq reads the first one of that name)
            if line.startswith(f"[{service}]"):  # libpq: the name, then `]`; the rest of the line is not read
                found = {}
        elif found is not None and "=" in line:
            key, value = line.split("=", 1)
            found[key.strip()] = value.strip()
    return found


def service_params(service: str) -> dict[str, str] | None:
    """What pg_service.conf says of `service`, read as libpq looks it up (PGSERVICEFILE, else ~/.pg_service.conf; then
    PGSYSCONFDIR/pg_service.conf), WITHOUT connecting: a probe connection would authenticate before the checks chose
    its sslmode. None when neither file defines it (e.g. only libpq's compiled-in folder does): the caller then
    knows nothing of its hosts or sslmode."""
    env = os.environ
    files = [Path(env.get("PGSERVICEFILE") or Path.home() / ".pg_service.conf")]
    if env.get("PGSYSCONFDIR"):
        files.append(Path(env["PGSYSCONFDIR"]) / "pg_service.conf")
    for file in files:
        if (found := _service_file(file, service)) is not None:
            return found
    return None


def sslmode_for(target: str) -> str:
    """The sslmode the serving checks connect with to the DSN `target` (see the module's docstring); it never
    connects. libpq's precedence: the DSN's parameters, then its service's (pg_service.conf), then PG* variables."""
    parts: dict[str, Any] = conninfo_to_dict(target) if target else {}
    env = os.environ
    service_name = parts.get("service") or env.get("PGSERVICE")
    service = service_params(str(service_name)) if service_name else {}

    def value(key: str) -> str:
        return str(parts.get(key) or (service or {}).get(key) or env.get(f"PG{key.upper()}") or "")

    given = value("sslmode").lower()
    if given in DEFINITE_SSLMODES:
        return given
    known = service is not None or bool(parts.get("host") or parts.get("hostaddr"))
    addresses = [a for key in ("host", "hostaddr") for a in value(key).split(",") if a]
    if known and all(_is_local(a) for a in addresses):  # EVERY host (none: libpq's default Unix socket)
        return "disable"  # nothing on the wire to protect
    sslmode = str(checks().serving_sslmode).strip().lower()
    if sslmode not in DEFINITE_SSLMODES - {"disable"}:
        raise ServingCheckError(
            f"[checks] serving_sslmode = {sslmode!r}: use require, verify-ca or verify-full for a remote"
            " Postgres (or put an explicit sslmode in the DSN)"
        )
    return sslmode


def connection_params(target: str) -> dict[str, Any]:
    """The libpq parameters the checks' connection adds to the DSN `target` (all others are the DSN's or PG*'s):
    exactly what `connect` gives psycopg2.connect beside the DSN."""
    return pg.libpq_params(target, sslmode=sslmode_for(target))[0]


_UNKNOWN_OPTION = re.compile(r'invalid (?:connection option|URI query parameter):? "([^"]+)"')


def connect(target: str, schema: str) -> Any:
    """A psycopg2 connection for Soda to the DSN `target`, search_path `schema`; ServingChecksUnreachable or
    ServingChecksRefused when libpq cannot make it."""
    import psycopg2  # soda-core-postgres's driver

    try:
        conn = psycopg2.connect(target, **connection_params(target))
    except (psycopg2.Error, psycopg.Error) as err:  # psycopg's: a DSN conninfo_to_dict cannot read
        reason = " ".join(str(err).split())  # libpq's words, never the password
        if isinstance(err, psycopg2.OperationalError) and retry.postgres_unreachable(reason):
            raise ServingChecksUnreachable(
                f"the serving checks cannot reach the serving Postgres ({pg.redact(target)}): {reason}") from err
        if option := _UNKNOWN_OPTION.search(reason):
            # psycopg (the publish) and psycopg2-binary (the checks) bundle different libpq versions
            reason = (f"the serving checks' libpq ({_libpq_version(psycopg2.__libpq_version__)}, psycopg2's) does not"
                      f" know the connection option {option.group(1)!r} of the DSN (the publish's libpq"
                      f" {_libpq_version(psycopg.pq.version())} may): leave it out of the DSN ({reason})")
        raise ServingChecksRefused(
            f"the serving Postgres ({pg.redact(target)}) refuses the serving checks' connection: {reason}") from err
    try:
        pg.set_session(conn, [*pg.libpq_params(target)[1], ("search_path", schema)])  # soda-core-postgres's own
    except BaseException:
        conn.close()
        raise
    return conn


def _libpq_version(number: int) -> str:
    return f"libpq {number // 10000}.{number % 10000}"


def describe(conn: Any) -> str:
    """Where a connection went, safe to log (no password)."""
    info = conn.info
    return (f"host={info.host} port={info.port} dbname={info.dbname} user={info.user}"
            f" tls={'on' if info.ssl_in_use else 'off'}")
