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
import os
import re
import shlex
from typing import Any

import psycopg
import pyarrow as pa
from psycopg.conninfo import make_conninfo

from pipeline import lake
from pipeline.serving import embedded, pg

Target = dict[str, Any]  # {"server": "embedded", "data_folder", "port", "database"} or {"server": "dsn", "host", ...}
COLUMN = "serving_target"  # the run audit twin's column (pipeline.tasks.run_audit.SCHEMA)
_TWIN = re.compile(r"load_date=(\d{4}-\d{2}-\d{2})/run_id=([A-Za-z0-9_]+)/")
_READ = pa.schema([("task_family", pa.string()), ("status", pa.string()), ("ended_at", pa.timestamp("us")),
                   (COLUMN, pa.string())])  # a twin written before the column has it NULL


def of_connection(conn: psycopg.Connection) -> Target:
    """Where `conn` (the pipeline's connection) leads."""
    return current(conn.info.dbname, conn.info.host, int(conn.info.port))


def current(database: str, host: str, port: int) -> Target:
    """The target of the pipeline's connection to `database` on `host`:`port`: the embedded server's data folder, or
    (another Postgres) that host, port and database."""
    if pg.uses_embedded():
        return {"server": "embedded", "data_folder": str(embedded.data_dir().resolve()), "port": int(port),
                "database": database}
    return {"server": "dsn", "host": host, "port": int(port), "database": database}


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
    """Whether two targets are the same database."""
    return _key(one) == _key(other)


def describe(target: Target) -> str:
    """The target as said to a person: `the embedded Postgres in /srv/pgdata (port 5432, database ecomm)`."""
    if target["server"] == "embedded":
        return (f"the embedded Postgres in {target['data_folder']} (port {target['port']}, database"
                f" {target['database']})")
    return f"the Postgres at {target['host']}:{target['port']} (database {target['database']})"


def settings(target: Target) -> str:
    """The environment that makes a command use `target`, pasteable before it (a DSN without user or password:
    libpq takes those from PGUSER, PGPASSWORD or ~/.pgpass)."""
    if target["server"] == "dsn":
        conninfo = make_conninfo(host=target["host"], port=str(target["port"]), dbname=target["database"])
        return f"{pg.ENV_DSN}={shlex.quote(conninfo)}"
    unset = [f"{name}=" for name in (pg.ENV_DSN, *pg.LIBPQ_VARS) if os.environ.get(name)]  # they would win over it
    return " ".join([*unset, f"{embedded.ENV_DATA}={shlex.quote(target['data_folder'])}",
                     f"{embedded.ENV_PORT}={target['port']}",
                     f"{embedded.ENV_DATABASE}={shlex.quote(target['database'])}"])


def reach(target: Target) -> str:
    """The command that reaches `target` (says whether it runs, or answers)."""
    return f"{settings(target)} python -m pipeline.serving.pg status"


@dataclasses.dataclass
class Published:
    """What the run audit's lake twin says of the publishes: the dates a Publish task finished (`done`) and the
    serving target of the latest one that recorded it (None: none did)."""

    dates: list[dt.date]
    target: Target | None


def lake_published(other_than: str | None = None) -> Published:
    """The load dates a Publish task finished in a run other than `other_than`, and where the latest of them went, by
    the run audit's lake twin (lake/audit/pipeline_runs, written after the task's commit). Lists and reads the
    Publish twins: call it rarely."""
    pattern = os.path.join(lake.table_dir("audit", "pipeline_runs"), "load_date=*", "run_id=*", "task_id=Publish_*",
                           lake.DATA_FILE)
    found: set[dt.date] = set()
    latest: tuple[dt.datetime, str] | None = None
    for path in lake.files_matching(pattern):
        named = _TWIN.search(path.replace(os.sep, "/"))
        if named is None or named.group(2) == other_than:
            continue
        for row in lake.read_rows(path, schema=_READ):
            if row["task_family"] != "Publish" or row["status"] != "done":
                continue
            found.add(dt.date.fromisoformat(named.group(1)))
            if row[COLUMN] and (latest is None or (row["ended_at"] or dt.datetime.min) >= latest[0]):
                latest = (row["ended_at"] or dt.datetime.min, row[COLUMN])
    return Published(sorted(found), decode(latest[1]) if latest else None)
