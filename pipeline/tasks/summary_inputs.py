"""What the run summary (`pipeline.tasks.summary`) reads of a date: its manifests, reconciliation, gate results and
fact rows in the lake, whether its sources wait for a ready marker, and Postgres' publish log and run audit."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import config, lake
from pipeline.ingest import landing
from pipeline.serving.settings import publish as publish_settings
from pipeline.tasks import run_audit, run_audit_pg

logger = logging.getLogger(__name__)


def manifest(source: str, day: dt.date) -> dict[str, Any] | None:
    try:
        return landing.read_manifest(source, day)
    except (OSError, ValueError, landing.ManifestUnreadable):  # the run's own failure says what it is
        return None


def manifest_rows(source: str, day: dt.date) -> int | None:
    return found["rows"] if (found := manifest(source, day)) else None


def reconciliation(source: str, day: dt.date) -> dict[str, Any]:
    path = lake.partition_file("audit", "reconciliation", day, source_table=f"stg_{source}")
    try:
        rows = lake.read_rows(path)
    except (OSError, ValueError):
        return {}
    return rows[0] if rows else {}


def parquet_rows(layer: str, table: str, day: dt.date) -> int | None:
    try:
        with lake.open_input(lake.partition_file(layer, table, day)) as handle:
            return pq.ParquetFile(handle).metadata.num_rows
    except (OSError, ValueError):
        return None


# audit/dq_results' columns the summary shows (a file written before top_reasons was kept reads it as None)
CHECK_COLUMNS = pa.schema([(name, pa.string()) for name in (
    "outcome", "table_name", "check_name", "check_type", "value", "message", "top_reasons")])


def check_results(day: dt.date) -> list[dict[str, Any]] | None:
    path = lake.partition_file("audit", "dq_results", day)
    try:
        return lake.read_rows(path, schema=CHECK_COLUMNS)
    except (OSError, ValueError):
        return None


NOT_REACHABLE = "Postgres not reachable"


def unknown_because(err: BaseException) -> str:
    """Why the publish state is unknown, for the summary's status: a server that did not answer, one that answered
    and refused the login (wrong password, missing database), or what it said to a query (permission denied)."""
    import psycopg

    from pipeline.serving import retry

    if not isinstance(err, psycopg.Error):  # the embedded server cannot start, its data dir unreadable
        return NOT_REACHABLE
    if err.sqlstate is None:  # libpq's connection errors carry none
        unreachable = isinstance(err, psycopg.OperationalError) and retry.postgres_unreachable(err)
        return NOT_REACHABLE if unreachable else "Postgres refused the login or a connection setting"
    if retry.transient(err):  # shut down or cut off mid-query: not reachable (now)
        return NOT_REACHABLE
    return f"Postgres: {retry.one_line(err, 80)}"  # e.g. "Postgres: permission denied for schema audit"


def serving_state(days: Sequence[dt.date], start_postgres: bool, run_id: str | None = None
                  ) -> tuple[dict[dt.date, dict[str, Any]] | None, dict[dt.date, list[tuple]], str]:
    """publish_log (and runtime) rows of the dates (None when Postgres cannot be asked, with why: `unknown_because`),
    and, with `run_id`, that run's audit.pipeline_runs rows of each date (`run_audit_pg.with_postgres`: a full lake
    disk left some in Postgres only), read on one connection."""
    if not start_postgres and not run_audit.postgres_reachable():
        return None, {}, NOT_REACHABLE
    from pipeline.serving import pg

    runs: dict[dt.date, list[tuple]] = {}
    try:
        with pg.connect() as conn:
            if not pg.has_table(conn, "audit.publish_log"):
                return {}, {}, ""
            # a session holding the log locked (maintenance) makes the summary unknown after one bounded wait
            conn.execute("select set_config('lock_timeout', %s, false)", [publish_settings().lock_timeout])
            rows = conn.execute(
                """select p.load_date, p.fact_orders_rows, p.fact_events_rows, m.runtime_seconds,
                          p.reconciled_at is not null, p.published_at, p.run_id
                     from audit.publish_log p left join warehouse.daily_metrics m on m.run_date = p.load_date
                    where p.load_date = any(%s)""", [list(days)]).fetchall()
            if run_id is not None:
                for row in conn.execute(run_audit_pg.RUN_ROWS, [run_id, list(days)]):
                    runs.setdefault(row[0], []).append(row[1:])
    except Exception as err:  # noqa: BLE001 - the summary reports what it can
        if start_postgres and isinstance(err, config.BadSetting):  # `summary`: e.g. ECOMM_PG_PORT against the server
            raise  # running in ECOMM_PG_DATA, one line (a run's summary shows it as the run's own failure)
        logger.warning("summary: Postgres not readable (%s)", str(err).strip().splitlines()[0] if str(err) else err)
        return None, {}, unknown_because(err)
    return {r[0]: {"orders": r[1], "events": r[2], "runtime": r[3], "reconciled": r[4], "published_at": r[5],
                   "run_id": r[6]} for r in rows}, runs, ""


def published_since(row: dict[str, Any], pub: dict[str, Any] | None) -> bool:
    """Whether another run (e.g. `rebuild-serving`, which writes no run audit rows) published the date after the run
    audit row ended (naive UTC): then its failure is history, not the date's state."""
    at, ended = (pub or {}).get("published_at"), row.get("ended_at")
    if at is None or ended is None or pub["run_id"] == row["run_id"]:
        return False
    utc = dt.timezone.utc
    return ended.replace(tzinfo=ended.tzinfo or utc) < at.replace(tzinfo=at.tzinfo or utc)


def not_ready(day: dt.date) -> list[str]:
    """The date's daily sources not landed because the ready marker ([landing] ready_marker) is missing."""
    from pipeline.ingest import incoming

    try:
        return [s for s in incoming.DAILY_SOURCES if manifest_rows(s, day) is None and not incoming.is_ready(s, day)]
    except ValueError:  # a misconfigured marker is reported by the run itself
        return []
