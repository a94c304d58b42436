"""The serving target a publish went to, as the run audit's lake twin keeps it, and the one the lake's dates went to.

A Publish task records its target in its run audit row (`serving_target`, in the lake twin only): for the embedded
server its absolute data folder, port and database; for another Postgres (ECOMM_PG_DSN, libpq's PG* variables) the
host, port and database it connected to, read from the connection, so nothing of the DSN (its password) is kept.
The lost-database guard names the target the lake's dates were last published to and the settings that reach it;
`rebuild-serving` into another target refuses without `--into-new-target` (pipeline.tasks.rebuild).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shlex
from typing import Any

import psycopg
import pyarrow as pa
from psycopg.conninfo import make_conninfo

from pipeline import lake
from pipeline.serving import embedded, pg

Target = dict[str, Any]  # {"server": "embedded", "data_folder", "port", "database"} or {"server": "dsn", "host", ...}
COLUMN = "serving_target"  # the run audit twin's column (pipeline.tasks.run_audit.SCHEMA)
_READ = pa.schema([("task_family", pa.string()), ("status", pa.string()), ("ended_at", pa.timestamp("us")),
                   (COLUMN, pa.string())])  # a twin written before the column has it NULL


def of_connection(conn: psycopg.Connection) -> Target:
    """Where `conn` (the pipeline's connection) leads; for another Postgres with its system identifier where the login
    may read it (one server under any host name: localhost, 127.0.0.1, its socket folder)."""
    system = None if pg.uses_embedded() else _system(conn)
    return current(conn.info.dbname, conn.info.host, int(conn.info.port), conn.info.user, system)


def _system(conn: psycopg.Connection) -> str | None:
    """The server's pg_control_system().system_identifier, None if this login may not read it."""
    try:
        with conn.transaction():  # a savepoint in a transaction: a refusal leaves that one usable
            return str(conn.execute("select system_identifier from pg_control_system()").fetchone()[0])
    except psycopg.Error:
        return None


def current(database: str, host: str, port: int, user: str | None = None, system: str | None = None) -> Target:
    """The target of the pipeline's connection to `database` on `host`:`port`: the embedded server's data folder, or
    (another Postgres) that host, port, database and user (never a password), and its `system` identifier if known."""
    if pg.uses_embedded():
        return {"server": "embedded", "data_folder": str(embedded.data_dir().resolve()), "port": int(port),
                "database": database}
    return {"server": "dsn", "host": host, "port": int(port), "database": database, "user": user,
            **({"system": system} if system else {})}


def encode(target: Target) -> str:
    """The target as the run audit keeps it (JSON text)."""
    return json.dumps(target, sort_keys=True)


def decode(text: str | None) -> Target | None:
    """A kept target (None: none kept, or unreadable)."""
    try:
        target = json.loads(text) if text else None
    except ValueError:
        return None
    return target if isinstance(target, dict) and target.get("server") in ("embedded", "dsn") else None


def _key(target: Target) -> tuple:
    if target["server"] == "embedded":  # the folder holds the data, whatever port it is started on
        return "embedded", target.get("data_folder"), target.get("database")
    return "dsn", target.get("host"), target.get("port"), target.get("database")


def same(one: Target, other: Target) -> bool:
    """Whether two targets are the same database: of one server (its system identifier, when both have it), or at
    one host and port."""
    if one["server"] == other["server"] == "dsn" and one.get("system") and other.get("system"):
        return (one["system"], one.get("database")) == (other["system"], other.get("database"))
    return _key(one) == _key(other)


def describe(target: Target) -> str:
    """The target as said to a person: `the embedded Postgres in /srv/pgdata (port 5432, database ecomm)`."""
    if target["server"] == "embedded":
        return (f"the embedded Postgres in {target['data_folder']} (port {target['port']}, database"
                f" {target['database']})")
    return f"the Postgres at {target['host']}:{target['port']} (database {target['database']})"


def settings(target: Target) -> str:
    """The environment that makes a command use `target`, pasteable before it (a DSN with its user, never a password:
    libpq takes that from PGPASSWORD or ~/.pgpass)."""
    if target["server"] == "dsn":
        conninfo = make_conninfo(host=target["host"], port=str(target["port"]), dbname=target["database"],
                                 user=target.get("user"))  # None (a target recorded without it): left out
        return f"{pg.ENV_DSN}={shlex.quote(conninfo)}"
    return " ".join([f"{embedded.ENV_DATA}={shlex.quote(target['data_folder'])}",
                     f"{embedded.ENV_PORT}={target['port']}",
                     f"{embedded.ENV_DATABASE}={shlex.quote(target['database'])}"])


CHECK = "select max(load_date) from audit.publish_log"  # what reach's command asks: the database's latest date


def reach(target: Target) -> str:
    """The command that connects to `target`'s database and says its latest published date. It unsets the settings
    that would win over the target's (`env -u`: libpq reads an empty PGSERVICE as a service named "")."""
    unset = [f"-u {name}" for name in (pg.ENV_DSN, *pg.LIBPQ_VARS)]
    return " ".join(["env", *unset, settings(target), "python -m pipeline.serving.pg psql -c", shlex.quote(CHECK)])


@dataclasses.dataclass
class Published:
    """What the run audit's lake twin says of the publishes: the dates a Publish task finished (`done`) and the
    serving target of the latest publish, a Publish task's or a rebuild's (None: it recorded none, as a host of an
    older version does, or there is none: unknown)."""

    dates: list[dt.date]
    target: Target | None


def lake_published(other_than: str | None = None) -> Published:
    """The load dates a Publish task finished in a run other than `other_than`, and where the latest publish went
    (a Publish task's, or rebuild-serving's record of a date, run_audit_files.REBUILT), by the run audit's lake twin
    (lake/audit/pipeline_runs, written after the commit). Lists and reads those twins: call it rarely."""
    from pipeline.tasks import run_audit_files  # pipeline.tasks imports the serving modules

    found: set[dt.date] = set()
    latest: tuple[dt.datetime, str | None] | None = None
    rebuilt = run_audit_files.REBUILT
    for day, run, path in run_audit_files.every_twin(("Publish_*", rebuilt)):
        if run == other_than:
            continue
        for row in lake.read_rows(path, schema=_READ):
            if row["task_family"] not in ("Publish", rebuilt) or row["status"] != "done":
                continue
            if row["task_family"] == "Publish":
                found.add(day)
            ended = row["ended_at"] or dt.datetime.min
            if latest is None or ended >= latest[0]:
                latest = (ended, row[COLUMN])
    return Published(sorted(found), decode(latest[1]) if latest else None)
