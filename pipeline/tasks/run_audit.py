"""The run audit: one row per task execution, in Postgres `audit.pipeline_runs` and in its lake twin.

Rows are written from Luigi's event handlers, which `install()` puts on `PipelineTask`:
the task process's start (`AttemptStarted`, before Luigi's START) -> `running`; SUCCESS -> `done`;
FAILURE -> `failed` with the error; TIMEOUT and PROCESS_FAILURE (raised in the worker's main process
when it kills or loses a task's process) -> `failed`. Wrapper tasks (LandDaily, StageDaily,
BuildWarehouse, DailyPipeline) do no work and are not recorded.

- The lake twin is written first and needs nothing but the lake:
  `lake/audit/pipeline_runs/load_date=D/run_id=R/task_id=T/data.parquet` holds one row per attempt
  of task T in run R, rewritten atomically (temporary file, rename) at every event. So a task that
  fails because Postgres is down is still recorded.
- Postgres gets the rows in batches, through `pipeline_runs.record_pipeline_runs`: `sync_to_postgres(D)`
  copies every finished execution of D that is not there yet in one transaction. It runs when a
  task fails (so a failure shows in Postgres at once, with the tasks before it) and when a task
  that sets `audit_sync_on_success` (Publish) succeeds. A start or a success of the other tasks
  costs one small Parquet write and no database round trip (measured: ~40 -> ~10 ms per task, on a
  critical path of ~9 tasks per date). Only when a server is reachable without starting one (an
  audit write never starts the embedded server); rows that could not be written stay
  `in_postgres = false` in the twin and go with the next sync. The table is keyed by (run_id,
  task), so a retry (attempt n > 1) is recorded under task `<task_id>#<n>`.
- A twin that cannot be written (the lake's disk is full) is held in the process and its execution
  goes to Postgres at once, said in one line (`run_audit_pg`, which also has the Postgres side).
- What a task cost its process: `cpu_seconds`, the CPU time (user + system, every thread, DuckDB's
  included; not the Postgres server's work it asked for) from its start event to its end event,
  and `peak_rss_mib`, the peak resident memory of the process Luigi forked for it (getrusage's
  maxrss, which counts the pages it shares with the Luigi process it was forked from). Both are
  measured where the task ran; NULL when its end was recorded elsewhere (killed or lost: the worker's
  main process records it), and `peak_rss_mib` also when the task ran in the Luigi process itself
  (no time limit and one worker), whose peak is not the task's.
- Nothing here ever raises into Luigi: an audit problem is logged, never allowed to replace the
  task's own outcome.

The run id is `ECOMM_RUN_ID` when set (letters, digits, `_`), else `<UTC yyyymmddThhmmss>_<8 hex>`,
fixed once per process; Luigi's worker processes are forked from it and share it. A bad ECOMM_RUN_ID
stops `luigi --module pipeline.tasks ...` as it imports the tasks: one line, and the exit code of a
rejected command line ([retcode] unhandled_exception, 40).

`daily_metrics.runtime_seconds` (`date_runtime`): the sum, over the date's tasks, of the duration of
each task's latest successful execution (in any run), plus the publishing task's own time so far.
It is the work the date's published state cost: it does not grow while a date waits for a worker
busy with another date of a backfill, and a date resumed after a failure counts the work of both
runs, not the failed attempts.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import sys
import time
import uuid
from typing import Any

try:
    import resource
except ImportError:  # Windows: tasks are recorded without their CPU seconds and peak RSS
    resource = None  # type: ignore[assignment]

import luigi
import luigi.retcodes
import pyarrow as pa

from pipeline import lake, read_once
from pipeline.tasks import run_audit_pg as pg_side
from pipeline.tasks import task_logs
from pipeline.tasks.run_audit_files import TABLE, twin_files

logger = logging.getLogger(__name__)

ENV_RUN_ID = "ECOMM_RUN_ID"
ERROR_CHARS = 4000

SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("load_date", pa.date32()),
    ("task_id", pa.string()),
    ("task_family", pa.string()),
    ("attempt", pa.int32()),
    ("status", pa.string()),
    ("started_at", pa.timestamp("us")),  # naive UTC, as everywhere in the lake
    ("ended_at", pa.timestamp("us")),
    ("duration_seconds", pa.float64()),
    ("rows_in", pa.int64()),
    ("rows_out", pa.int64()),
    ("cpu_seconds", pa.float64()),
    ("peak_rss_mib", pa.int64()),
    ("error_message", pa.string()),
    ("host", pa.string()),
    ("pid", pa.int64()),
    ("in_postgres", pa.bool_()),
    ("serving_target", pa.string()),  # a Publish's: where it published (pipeline.serving.serving_target); lake only
])

_run_id: str | None = None
_main_pid: int | None = None  # the process that installed the handlers (Luigi's), see `_peak_rss_mib`
_scheduled: set[dt.date] = set()


# --------------------------------------------------------------------------------------- run id
class BadRunId(ValueError):
    """ECOMM_RUN_ID is set to something that is not a run id."""


def new_run_id() -> str:
    """A fresh run id: sortable by start time, unique across hosts."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:8]}"


def run_id() -> str:
    """This process's run id (ECOMM_RUN_ID, else generated once)."""
    global _run_id
    if _run_id is None:
        given = os.environ.get(ENV_RUN_ID, "").strip()
        if given and not re.fullmatch(r"[A-Za-z0-9_]{1,64}", given):
            raise BadRunId(f"{ENV_RUN_ID}={given!r} is not a run id: use 1-64 letters, digits or _, or unset it"
                           " (each run then gets its own)")
        _run_id = given or new_run_id()
    return _run_id


def note_scheduled(day: dt.date) -> None:
    """Remember a date this process scheduled a task for (for the run summary at exit)."""
    _scheduled.add(day)


def scheduled_dates() -> list[dt.date]:
    """The dates this process scheduled tasks for, in order."""
    return sorted(_scheduled)


# ------------------------------------------------------------------------------------ lake twin
def twin_path(day: dt.date, run: str, task_id: str) -> str:
    """The lake twin file of one task in one run."""
    return lake.partition_file("audit", TABLE, day, run_id=run, task_id=task_id)


def _read(path: str) -> list[dict[str, Any]]:
    try:
        return lake.read_rows(path, schema=SCHEMA)
    except FileNotFoundError:
        return []


def _write(path: str, rows: list[dict[str, Any]]) -> None:
    lake.write_table(path, pa.Table.from_pylist(rows, schema=SCHEMA))


def _save(path: str, rows: list[dict[str, Any]]) -> None:
    """Rewrite a twin if possible (a held one, too: the disk may have space again); else keep what this process has."""
    try:
        _write(path, rows)
    except OSError:
        if pg_side.kept(path) is not None:
            pg_side.hold(path, rows)
    else:
        pg_side.written(path)


def executions(day: dt.date | str, run: str | None = None) -> list[dict[str, Any]]:
    """Every recorded task execution of a date (all runs, or run `run`'s only), oldest first; each twin read once in a
    `read_once.scope` (the summary asks for a date's runs, then for its runtime)."""
    day = lake.parse_date(day)
    rows = [dict(row) for path in twin_files(day, run) for row in read_once.once(("twin", path), lambda: _read(path))]
    return sorted(rows, key=lambda r: (r["started_at"] or dt.datetime.min, r["task_id"], r["attempt"]))


# ------------------------------------------------------------------------------------- Postgres
postgres_reachable = pg_side.postgres_reachable  # noqa: F401 - part of this module's interface


def finished_rows(day: dt.date | str) -> list[dict[str, Any]]:
    """The date's finished executions (all runs) from the lake twin, as audit.pipeline_runs rows (a rebuild replays them)."""
    return [pg_side.postgres_row(row) for row in executions(day) if row["status"] != "running"]


LOST = "the attempt ended without reporting (process lost)"


def _lost(row: dict[str, Any]) -> bool:
    """A `running` attempt whose process, on this host, no longer exists."""
    if row["status"] != "running" or row["host"] != socket.gethostname() or not row["pid"]:
        return False
    try:
        os.kill(row["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def sync_to_postgres(day: dt.date | str) -> int:
    """Copy the date's finished executions that are not in Postgres yet into it (one transaction).

    An attempt still `running` whose process is gone from this host (its whole `luigi` process was
    killed, so no handler recorded its end) is recorded as failed first.
    """
    day = lake.parse_date(day)
    pattern = os.path.join(lake.partition_dir("audit", TABLE, day), "run_id=*", "task_id=*", lake.DATA_FILE)
    files = {path: _read(path) for path in lake.files_matching(pattern)}
    # a twin folder is written by one run only: a temporary file its killed writer left is never replaced there
    for folder in {os.path.dirname(p) for p in lake.files_matching(pattern.replace(lake.DATA_FILE, "*.tmp-*"))}:
        lake.clean_temp_files(folder)
    files.update(pg_side.unwritten(day))  # this process could not write them: its rows are the newer
    guessed: set[int] = set()
    for path, rows in files.items():
        lost = [row for row in rows if _lost(row)]  # its whole luigi process was killed: nobody will end it
        for row in lost:
            row.update(status="failed", error_message=LOST, in_postgres=False)
            guessed.add(id(row))  # or its end was recorded but not in this twin (a full disk): never replaces that
        if lost:
            _save(path, rows)
    pending = {path: [r for r in rows if not r["in_postgres"] and r["status"] != "running"]
               for path, rows in files.items()}
    pending = {path: rows for path, rows in pending.items() if rows}
    if not pending or not pg_side.to_postgres([row for rows in pending.values() for row in rows], guessed):
        return 0
    for path, rows in pending.items():
        for row in rows:
            row["in_postgres"] = True  # in the twin, or in this process if the twin still cannot be written
        _save(path, files[path])
    copied = sum(len(rows) for rows in pending.values())
    logger.debug("run audit: copied %s execution(s) of %s into Postgres", copied, day)
    return copied


# ----------------------------------------------------------------------------- event handlers
def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _audited(task: luigi.Task) -> bool:
    return not isinstance(task, luigi.WrapperTask) and isinstance(getattr(task, "date", None), dt.date)


def _error_text(error: BaseException | str | None) -> str | None:
    if error is None:
        return None
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 20] + " ... (truncated)"


def _record(task: luigi.Task, status: str, error: BaseException | str | None = None) -> None:
    """Write the task's current attempt to the lake twin (and sync the date to Postgres, see above). Never raises."""
    try:
        if not _audited(task):
            return
        path = twin_path(task.date, run_id(), task.task_id)
        rows = pg_side.kept(path) or _read(path)
        now = _now()
        current = rows[-1] if rows and rows[-1]["status"] == "running" else None
        if status == "running" or current is None:
            for stale in rows:  # an attempt that never reported its end: its process was lost
                if stale["status"] == "running":
                    stale.update(status="failed", error_message=LOST)
            current = {
                "run_id": run_id(), "load_date": task.date, "task_id": task.task_id,
                "task_family": task.task_family, "attempt": len(rows) + 1, "status": "running",
                "started_at": getattr(task, "_audit_started", None) if status != "running" else now,
                "ended_at": None, "duration_seconds": None, "rows_in": None, "rows_out": None,
                "cpu_seconds": None, "peak_rss_mib": None, "error_message": None, "host": socket.gethostname(),
                "pid": os.getpid(), "in_postgres": False, "serving_target": None,
            }
            if current["started_at"] is None:
                current["started_at"] = now  # failed before it started (e.g. a dependency vanished)
            rows.append(current)
        if status == "running":
            task._audit_started = now
            task._audit_clock = time.monotonic()
            task._audit_cpu = (os.getpid(), _process_cpu()) if resource is not None else None
        else:
            current.update(status=status, ended_at=now, error_message=_error_text(error),
                           duration_seconds=round((now - current["started_at"]).total_seconds(), 3),
                           rows_in=_count(getattr(task, "rows_in", None)),
                           rows_out=_count(getattr(task, "rows_out", None)),
                           serving_target=getattr(task, "serving_target", None), **_resources(task))
        current["in_postgres"] = False
        try:
            _write(path, rows)
            pg_side.written(path)
        except OSError as err:  # a full disk: the rows go to Postgres now (this process may end next)
            if lake.store_refused(err):
                raise  # the task's own failure says so, with what to do (below)
            pg_side.keep(path, rows, err, task.task_id)
            if status != "running":
                sync_to_postgres(task.date)
            return
        if status == "failed" or (status == "done" and getattr(task, "audit_sync_on_success", False)):
            sync_to_postgres(task.date)
    except Exception as err:  # noqa: BLE001 - see module doc
        if lake.store_refused(err):  # the lake's store: the task's own failure says so, once, with what to do
            logger.error("run audit: could not record %s %s: %s", getattr(task, "task_id", task), status,
                         lake.store_words(err))
        else:
            logger.exception("run audit: could not record %s %s", getattr(task, "task_id", task), status)


def _count(value: Any) -> int | None:
    return int(value) if value is not None else None


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _resources(task: luigi.Task) -> dict[str, Any]:
    """The task's CPU seconds and its process's peak RSS, where its start was recorded in this process (module doc)."""
    started = getattr(task, "_audit_cpu", None)
    if started is None or started[0] != os.getpid() or resource is None:
        return {}
    return {"cpu_seconds": round(_process_cpu() - started[1], 3), "peak_rss_mib": _peak_rss_mib()}


def _peak_rss_mib() -> int | None:
    """This process's peak RSS in MiB, if it is a process of its own (not the one that installed the handlers)."""
    if os.getpid() == _main_pid:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10))


def on_start(task: luigi.Task) -> None:
    if getattr(task, "_audit_opened", None) == os.getpid():  # this attempt's process recorded it (AttemptStarted)
        task._audit_opened = None
        return
    _record(task, "running")


class AttemptStarted:
    """[worker] task_process_context: the attempt is recorded `running` as its task process starts, before Luigi
    logs `running <task>` and checks its dependencies, then fires START (a kill in between recorded nothing)."""

    def __init__(self, process: Any) -> None:  # a luigi.worker.TaskProcess
        self.task = process.task

    def __enter__(self) -> None:
        self.following = task_logs.follow_luigi()  # the pipeline's lines of this task in the `luigi` command's log
        _record(self.task, "running")
        self.task._audit_opened = os.getpid()

    def __exit__(self, *exc: object) -> None:
        self.task._audit_opened = None  # a retry in this same process is recorded again
        if self.following and os.getpid() == _main_pid:  # run in the luigi process itself: its logging as it was
            task_logs.stop_following()


def on_success(task: luigi.Task) -> None:
    _record(task, "done")


def on_failure(task: luigi.Task, error: BaseException) -> None:
    _record(task, "failed", error)


def on_lost(task: luigi.Task, message: str) -> None:
    """TIMEOUT / PROCESS_FAILURE, in the worker's main process: the task's process was killed or died."""
    _record(task, "failed", message)


def install(task_class: type[luigi.Task]) -> None:
    """Register the audit's event handlers on a task class (and so on all its subclasses)."""
    global _main_pid
    _main_pid = os.getpid()
    try:
        run_id()  # fixed now, in the main process, so that the worker processes forked later share it
    except BadRunId as err:
        # this runs as `luigi --module pipeline.tasks` imports the tasks, before Luigi handles any error
        # (its traceback would bury the one line that matters): exit as a rejected command line does
        print(f"ERROR: the command was rejected: {err}", file=sys.stderr)
        raise SystemExit(luigi.retcodes.retcode().unhandled_exception) from None
    task_class.event_handler(luigi.Event.START)(on_start)
    task_class.event_handler(luigi.Event.SUCCESS)(on_success)
    task_class.event_handler(luigi.Event.FAILURE)(on_failure)
    task_class.event_handler(luigi.Event.TIMEOUT)(on_lost)
    task_class.event_handler(luigi.Event.PROCESS_FAILURE)(on_lost)


# ------------------------------------------------------------------------------------- runtime
def date_runtime(day: dt.date | str, current: luigi.Task | None = None) -> float | None:
    """The date's runtime in seconds (see module doc); `current` is the running publish task."""
    latest: dict[str, dict[str, Any]] = {}
    for row in executions(day):
        if row["status"] == "done" and row["duration_seconds"] is not None:
            known = latest.get(row["task_id"])
            if known is None or (row["ended_at"], row["attempt"]) >= (known["ended_at"], known["attempt"]):
                latest[row["task_id"]] = row
    seconds = {task_id: row["duration_seconds"] for task_id, row in latest.items()}
    if current is not None and getattr(current, "_audit_clock", None) is not None:
        seconds[current.task_id] = time.monotonic() - current._audit_clock
    return round(sum(seconds.values()), 3) if seconds else None
