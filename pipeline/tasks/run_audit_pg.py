"""The run audit's Postgres side: its rows as audit.pipeline_runs rows, and the executions whose lake twin failed.

When the twin of a task's execution cannot be written (the lake's disk is full, most often: exactly when an
operator needs the record), its rows are kept in this process (`keep`) and go straight to Postgres at the
next sync, which `pipeline.tasks.run_audit` then runs at once: the process that ran the task may end right
after. Rows copied are marked `in_postgres`, so a later sync does not copy them again; a twin left behind
with the attempt still `running` (its start was written, its end was not) is replayed as lost by a later
sync of another process, and such a guess never replaces the row Postgres already has (`if_absent`).
"""
from __future__ import annotations

import datetime as dt
import errno
import logging
import os
from typing import Any

from pipeline import config
from pipeline.lake import disk

logger = logging.getLogger(__name__)

_unwritten: dict[str, list[dict[str, Any]]] = {}  # twin path -> its rows, newer than the twin (if any)
_said: set[str] = set()  # what `keep` logged already in this process: one line per cause, not per event


def postgres_reachable() -> bool:
    """Whether a serving Postgres is configured or the embedded one already runs (never starts it)."""
    from pipeline.serving import pg

    if not pg.uses_embedded():
        return True
    try:
        return pg.embedded_status() is not None
    except Exception:  # noqa: BLE001 - an unreadable data dir simply means "no"
        return False


def postgres_row(row: dict[str, Any], if_absent: bool = False) -> dict[str, Any]:
    """A twin row as an audit.pipeline_runs row; `if_absent`: a guess (a lost attempt), never replacing a row."""
    utc = dt.timezone.utc
    return {
        "run_id": row["run_id"], "run_date": row["load_date"], "status": row["status"],
        "task": row["task_id"] if row["attempt"] == 1 else f"{row['task_id']}#{row['attempt']}",
        "started_at": row["started_at"].replace(tzinfo=utc) if row["started_at"] else None,
        "ended_at": row["ended_at"].replace(tzinfo=utc) if row["ended_at"] else None,
        "rows_in": row["rows_in"], "rows_out": row["rows_out"], "error_message": row["error_message"],
        "cpu_seconds": row.get("cpu_seconds"), "peak_rss_mib": row.get("peak_rss_mib"), "if_absent": if_absent,
    }


def to_postgres(rows: list[dict[str, Any]], guessed: set[int] | None = None) -> bool:
    """Upsert executions (twin rows; `guessed`: the ids of lost ones) into audit.pipeline_runs; False (logged)
    when that is not possible now."""
    if not rows or not postgres_reachable():
        return False
    from pipeline.serving import pipeline_runs

    guessed = guessed or set()
    try:
        pipeline_runs.record_pipeline_runs([postgres_row(row, id(row) in guessed) for row in rows])
    except Exception as err:  # noqa: BLE001 - the audit must never mask the task's own outcome
        held = any(row is kept_row for rows_held in _unwritten.values() for kept_row in rows_held for row in rows)
        logger.warning("run audit: %s execution(s) of %s not written to Postgres (%s); %s", len(rows),
                       rows[0]["load_date"], str(err).strip().splitlines()[0] if str(err).strip() else err,
                       "kept in this process only (the lake twin could not be written)" if held
                       else "kept in the lake twin")
        return False
    return True


# ------------------------------------------------------------------------------ twins not written
def kept(path: str) -> list[dict[str, Any]] | None:
    """The rows of a twin this process could not write (newer than the file, if there is one)."""
    return _unwritten.get(path)


def unwritten(day: dt.date) -> dict[str, list[dict[str, Any]]]:
    """The twins of a date this process could not write: path -> rows."""
    return {path: rows for path, rows in _unwritten.items() if rows and rows[0]["load_date"] == day}


def written(path: str) -> None:
    """The twin is written: nothing of it is held here any more."""
    _unwritten.pop(path, None)


def hold(path: str, rows: list[dict[str, Any]]) -> None:
    """Hold the rows of a twin that could not be written (again)."""
    _unwritten[path] = rows


def keep(path: str, rows: list[dict[str, Any]], error: OSError, what: str) -> None:
    """Hold the rows of a twin that could not be written, and say so in one line (once per cause)."""
    hold(path, rows)
    cause = why_unwritten(path, error)
    if (key := "ENOSPC" if error.errno == errno.ENOSPC else cause) not in _said:
        _said.add(key)
        logger.error("run audit: the lake twin of %s could not be written: %s; its executions go to Postgres"
                     " audit.pipeline_runs directly", what, cause)


def why_unwritten(path: str, error: OSError) -> str:
    """The cause in words: for a full disk, the file system (the lake's folder, its mount point) and its size."""
    if not disk.no_space(error):
        return " ".join(str(error).split())
    return disk.is_full(path)


# ------------------------------------------------------------------- what only Postgres has
# a run's rows of some dates (`summary_inputs.serving_state` reads them with the publish log)
RUN_ROWS = ("select run_date, task, status, started_at, ended_at, duration_seconds, rows_in, rows_out, error_message"
            " from audit.pipeline_runs where run_id = %s and run_date = any(%s)")


def with_postgres(day: dt.date, rows: list[dict[str, Any]], run: str | None, found: list[tuple]) -> list[dict[str, Any]]:
    """The twin's executions of a date, plus those of run `run` that only Postgres has (their twin could not be
    written; `only_in_postgres` true), for the run summary. `found`: Postgres' rows of the run and date (`RUN_ROWS`
    without the date), none when Postgres is not reachable."""
    if run is None or not found:
        return rows
    finished = {(r["task_id"], r["attempt"]) for r in rows if r["run_id"] == run and r["status"] != "running"}
    utc = dt.timezone.utc
    extra = []
    for task, status, started, ended, seconds, rows_in, rows_out, error in found:
        task_id, _, attempt = task.partition("#")
        if (task_id, int(attempt or 1)) in finished:
            continue
        extra.append({
            "run_id": run, "load_date": day, "task_id": task_id, "task_family": task_id.split("_")[0],
            "attempt": int(attempt or 1), "status": status, "error_message": error, "duration_seconds": seconds,
            "started_at": started.astimezone(utc).replace(tzinfo=None) if started else None,
            "ended_at": ended.astimezone(utc).replace(tzinfo=None) if ended else None,
            "rows_in": rows_in, "rows_out": rows_out, "in_postgres": True, "only_in_postgres": True})
    replaced = {(r["task_id"], r["attempt"]) for r in extra}
    kept_rows = [r for r in rows if r["run_id"] != run or (r["task_id"], r["attempt"]) not in replaced]
    return sorted(kept_rows + extra, key=lambda r: (r["started_at"] or dt.datetime.min, r["task_id"], r["attempt"]))


def twin_note(rows: list[dict[str, Any]]) -> list[str]:
    """One line for the run summary when some of these executions are in Postgres only (`with_postgres`)."""
    held = sum(bool(r.get("only_in_postgres")) for r in rows)
    if not held:
        return []
    lake_dir = os.path.abspath(config.lake_dir())
    if (free_total := disk.space(lake_dir)) is None:
        state = "refused the write (see the log)"
    else:
        free, total = map(disk.size, free_total)
        state = (f"is full ({free} free of {total})" if free_total[0] < 1 << 20 else
                 f"refused the write ({free} free of {total} now; see the log)")
    return [f"run audit: {held} execution(s) are in Postgres audit.pipeline_runs only: the lake twin could not be"
            f" written, the lake's file system ({lake_dir}) {state}"]
