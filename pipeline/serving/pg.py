"""Postgres connections: where the pipeline connects, and the `python -m pipeline.serving.pg` command.

Where to connect, in order:
1. `ECOMM_PG_DSN`, a libpq URI (TCP or a Unix socket: `postgresql://user@/db?host=/some/dir`);
2. the standard libpq variables: if PGHOST, PGDATABASE or PGSERVICE is set the DSN is `""` and
   libpq reads PG* and ~/.pgpass itself;
3. otherwise the embedded PostgreSQL 16 (pipeline.serving.embedded), started on demand.

Run `python -m pipeline.serving.pg dsn|start|stop|status|psql [psql args]` (`make psql` uses `psql`).
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pipeline.serving import embedded
from pipeline.serving.settings import postgres as postgres_settings

logger = logging.getLogger(__name__)

ENV_DSN = "ECOMM_PG_DSN"
LIBPQ_VARS = ("PGHOST", "PGDATABASE", "PGSERVICE")

# The embedded server's controls, under the names the pipeline's callers use.
EmbeddedServerError = embedded.EmbeddedServerError
start_embedded = embedded.start
stop_embedded = embedded.stop
embedded_status = embedded.status


def dsn() -> str:
    """Where the pipeline connects: ECOMM_PG_DSN, "" (libpq's PG* variables) or the embedded server."""
    explicit = os.environ.get(ENV_DSN, "").strip()
    if explicit:
        return explicit
    if any(os.environ.get(name) for name in LIBPQ_VARS):
        return ""
    return embedded.dsn()


def redact(conninfo: str) -> str:
    """A DSN that is safe to log: any password replaced by ***."""
    if not conninfo:
        return "(libpq PG* environment)"
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(unparseable DSN)"
    if "password" in parts:
        parts["password"] = "***"
    return " ".join(f"{key}={value}" for key, value in parts.items())


def connect(conninfo: str | None = None, **kwargs: Any) -> psycopg.Connection:
    """A psycopg connection to `conninfo` (default: `dsn()`), with the [postgres] session settings."""
    target = dsn() if conninfo is None else conninfo
    settings = postgres_settings()
    given = conninfo_to_dict(target) if target else {}
    params: dict[str, Any] = {}
    if "application_name" not in given and "PGAPPNAME" not in os.environ:
        params["application_name"] = settings.application_name
    if "connect_timeout" not in given and "PGCONNECT_TIMEOUT" not in os.environ:
        params["connect_timeout"] = settings.connect_timeout
    options = [given.get("options", "") or os.environ.get("PGOPTIONS", "")]
    for name in ("statement_timeout", "lock_timeout"):
        value = str(getattr(settings, name)).strip()
        if value and value != "0":
            options.append(f"-c {name}={value.replace(' ', '')}")
    if any(options[1:]):
        params["options"] = " ".join(o for o in options if o)
    params.update(kwargs)
    return psycopg.connect(target, **params)


# --------------------------------------------------------------------------------------------- CLI
USAGE = "usage: python -m pipeline.serving.pg dsn|start|stop|status|psql [psql arguments]"


def main(argv: list[str] | None = None) -> int:
    """The `python -m pipeline.serving.pg` command line."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in {"dsn", "start", "stop", "status", "psql"}:
        print(USAGE, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    command, rest = args[0], args[1:]
    try:
        if command == "dsn":
            print(dsn())
        elif command == "start":
            print(embedded.start())
        elif command == "stop":
            print("stopped" if embedded.stop() else "not running")
        elif command == "status":
            info = embedded.status()
            print(f"running: pid {info['pid']}, port {info['port']}, socket dir {info['socket_dir']}"
                  if info else f"not running ({embedded.data_dir()})")
            return 0 if info else 3
        else:
            target = dsn()
            psql = str(embedded.binary("psql"))
            sys.stdout.flush()
            os.execv(psql, [psql, *(["--dbname", target] if target else []), *rest])
    except EmbeddedServerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
