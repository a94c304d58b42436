"""audit.pipeline_runs: one row per task execution, written from the run audit (`pipeline.tasks.run_audit`)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline import lake
from pipeline.serving import migrations, pg


def record_pipeline_run(run_id: str, task: str, status: str, *, run_date: dt.date | str | None = None,
                        started_at: dt.datetime | None = None, ended_at: dt.datetime | None = None,
                        rows_in: int | None = None, rows_out: int | None = None,
                        error_message: str | None = None, cpu_seconds: float | None = None,
                        peak_rss_mib: int | None = None) -> None:
    """Upsert one task's row in audit.pipeline_runs (status: running, done or failed)."""
    record_pipeline_runs([{
        "run_id": run_id, "task": task, "status": status, "run_date": run_date, "started_at": started_at,
        "ended_at": ended_at, "rows_in": rows_in, "rows_out": rows_out, "error_message": error_message,
        "cpu_seconds": cpu_seconds, "peak_rss_mib": peak_rss_mib}])


def record_pipeline_runs(rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert task executions (keys as `record_pipeline_run`'s arguments) in one transaction.

    A row with `if_absent` true (a guess: an attempt whose end nobody recorded) is inserted only where the
    table has no row for its (run_id, task): what was recorded there is known, and stays."""
    params: dict[bool, list[list[Any]]] = {False: [], True: []}
    for row in rows:
        started_at, ended_at = row.get("started_at"), row.get("ended_at")
        duration = (ended_at - started_at).total_seconds() if started_at and ended_at else None
        day = lake.parse_date(row["run_date"]) if row.get("run_date") is not None else None
        params[bool(row.get("if_absent"))].append([
            row["run_id"], day, row["task"], row["status"], started_at, ended_at, duration, row.get("rows_in"),
            row.get("rows_out"), row.get("error_message"), row.get("cpu_seconds"), row.get("peak_rss_mib")])
    if not params[False] and not params[True]:
        return
    insert = """insert into audit.pipeline_runs (run_id, run_date, task, status, started_at, ended_at,
                    duration_seconds, rows_in, rows_out, error_message, cpu_seconds, peak_rss_mib)
                values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""
    with pg.connect() as conn:
        migrations.ensure_schema(conn)
        with conn.transaction(), conn.cursor() as cur:
            if params[False]:
                cur.executemany(
                    insert + """
                   on conflict (run_id, task) do update set run_date = excluded.run_date, status = excluded.status,
                       started_at = coalesce(excluded.started_at, audit.pipeline_runs.started_at),
                       ended_at = excluded.ended_at, duration_seconds = excluded.duration_seconds,
                       rows_in = excluded.rows_in, rows_out = excluded.rows_out, error_message = excluded.error_message,
                       cpu_seconds = excluded.cpu_seconds, peak_rss_mib = excluded.peak_rss_mib""",
                    params[False],
                )
            if params[True]:
                cur.executemany(insert + " on conflict (run_id, task) do nothing", params[True])
