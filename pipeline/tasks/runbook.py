"""The runbook: the kind of failure an error is (`remedy_for`, `remedy_for_text`), and a failed task or command
explained with its fix (`explain`, `told`).

A failed task's explanation (what luigid shows and the failure e-mail carries, see
`PipelineTask.on_failure`) names the kind and its fix for that date. The kinds, their fixes and the table
docs/operations.md#runbook prints are `pipeline.tasks.remedies`'s, importable from here too.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
import shlex
import sys

import psycopg

from pipeline import lake
from pipeline.lake import disk
from pipeline.quality.results import BLOCKING
from pipeline.tasks.remedies import (
    BY_ERROR,
    DAILY,
    GATE_EXAMPLE,
    LOCAL_SCHEDULER,
    REMEDIES,
    RESTATE,
    RUNBOOK,
    THRESHOLD_OPTION,
    UNUSUAL_DAY,
    Remedy,
    by_kind,
    daily_command,
    markdown_table,
)
from pipeline.tasks.gate_remedy import gate_fix, soda_errored
from pipeline.tasks.lost_tasks import KILLED, SIGNALLED, TIMED_OUT

__all__ = [
    "BY_ERROR", "DAILY", "GATE_EXAMPLE", "LOCAL_SCHEDULER", "REMEDIES", "RESTATE", "RUNBOOK", "THRESHOLD_OPTION",
    "UNUSUAL_DAY", "Remedy", "by_kind", "daily_command", "gate_fix", "markdown_table", "soda_errored",
    "remedy_for", "remedy_for_text", "lost_task", "told", "reason", "explain",
]


def _causes(error: BaseException):
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


# Postgres's words for its own full disk (SQLSTATE 53100), as a publish error carries them: never the lake's
PG_DISK_FULL = re.compile(r"the serving Postgres's disk is full|could not extend file \"|"
                          r"wrote only \d+ of \d+ bytes at block \d+|could not write init file")


def _pg_disk_full(error: BaseException) -> bool:  # psycopg's DiskFull (SQLSTATE 53100) is found by its name
    return PG_DISK_FULL.search(str(error)) is not None


def _specific(cause: BaseException | None) -> bool:
    """A migration's failure whose cause has an entry of its own: Postgres's full disk, a lock held past the waits."""
    return cause is not None and (_pg_disk_full(cause) or type(cause).__name__ == "LockWaitTimeout")


def remedy_for(error: BaseException) -> Remedy | None:
    """The runbook entry of an error (None: not a kind the runbook knows)."""
    from pipeline.serving import retry

    for current in _causes(error):
        if type(current).__name__ == "MigrationError" and _specific(current.__cause__):
            continue  # a migration that met a full disk or a lock BI held: that entry's fix, not the migration's
        for cls in type(current).__mro__:
            if cls.__name__ in BY_ERROR:
                return BY_ERROR[cls.__name__]
        if _pg_disk_full(current):  # before a refused connection: a full disk refuses new sessions too
            return BY_ERROR["DiskFull"]
        if retry.slots_full(current):  # before "Postgres down": it is up, other sessions hold every slot
            return BY_ERROR["PostgresSlotsFull"]
        if isinstance(current, psycopg.OperationalError):
            return BY_ERROR["PostgresUnreachable" if retry.postgres_unreachable(current) else "PostgresRefuses"]
        if disk.no_space(current):
            return by_kind("disk full")
        # a PermissionError may be an incoming file's: the lake's only when it names a path in the lake's folder
        if lake.store_error(current) or lake.folder_refused(current):  # a read-only file system: no user may write
            return BY_ERROR["LakeNotWritable" if lake.read_only(current) else "LakeUnreadable"]
    return None


# Postgres's words (a folder's OSError says "Permission denied"), and a server stopped under a connection
PG_PERMISSION = re.compile(r"permission denied for (database|schema|table|relation|sequence|function|view)\b")
SERVER_WENT_AWAY = ("terminating connection due to administrator command", "server closed the connection unexpectedly",
                    "the database system is shutting down")


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


@functools.lru_cache(maxsize=64)
def _known_as(name: str) -> str | None:
    """The name the runbook knows an error class named `name` by: its own, or its nearest base class's (a recorded
    `UnexpectedSourceFiles: ...` is a SourceFileInvalid); None: neither (or no such class is loaded)."""
    if name in BY_ERROR:
        return name
    for cls in _subclasses(Exception):
        if cls.__name__ == name:
            return next((base.__name__ for base in cls.__mro__ if base.__name__ in BY_ERROR), None)
    return None


def lost_task(message: str | None) -> Remedy | None:
    """The runbook entry of Luigi's line for a task its worker lost, which raised nothing (None: not one): over
    its timeout and terminated ("task timed out"), or its process killed by a signal, e.g. by the OOM killer
    ("task killed")."""
    if TIMED_OUT.search(message or ""):
        return by_kind("task timed out")
    if KILLED.search(message or ""):
        return by_kind("task killed")
    if SIGNALLED.search(message or ""):
        return by_kind("task died")
    return None


def remedy_for_text(message: str | None) -> Remedy | None:
    """The runbook entry of a recorded error message (`<ErrorClass>: <text>`, as the run audit keeps it)."""
    from pipeline.serving import retry

    if lost := lost_task(message):  # Luigi's own line (the run audit's `error_message`), no error class
        return lost
    name = (message or "").split(":", 1)[0].strip()
    if name == "MigrationError" and PG_DISK_FULL.search(message or ""):  # as remedy_for: the full disk's entry
        return BY_ERROR["DiskFull"]
    if known := _known_as(name):
        return BY_ERROR[known]
    if retry.slots_full(message or ""):  # before "Postgres down", also inside a PublishError's message
        return BY_ERROR["PostgresSlotsFull"]
    if name == "OperationalError" and not PG_DISK_FULL.search(message or ""):
        return BY_ERROR["PostgresUnreachable" if retry.postgres_unreachable(message or "") else "PostgresRefuses"]
    if PG_PERMISSION.search(message or ""):  # also inside a PublishError's message
        return BY_ERROR["InsufficientPrivilege"]
    if any(gone in (message or "") for gone in SERVER_WENT_AWAY):
        return BY_ERROR["PostgresUnreachable"]
    if PG_DISK_FULL.search(message or ""):  # before the lake's words: Postgres's message may hold them too
        return BY_ERROR["DiskFull"]
    if "No space left on device" in (message or ""):
        return by_kind("disk full")
    if lake.STORE_ERROR in (message or ""):  # pyarrow's OSError, or DuckDB's error carrying its text
        return BY_ERROR["LakeUnreadable"]
    return None


def told(prog: str, argv: list[str], error: BaseException) -> int | None:
    """For a command (`prog` with `argv`, not the daily run) that met a failure the runbook knows: print its one line
    (what, why, and the fix, which reruns that command) to stderr and return its exit code; None for any other error."""
    remedy = remedy_for(error)
    if remedy is None:
        return None
    causes = list(_causes(error))
    command = shlex.join([*prog.split(), *argv])
    if remedy.kind == "lake unreadable":  # the store's own words, not the object's: the lake's data is not at fault
        words = next((lake.store_words(cause) for cause in causes if lake.store_error(cause)), reason(causes[-1]))
        what, _, why = remedy.cause.partition(": ")
        said = f"{what}: {words.rstrip('.')}. Why: {why}"
    else:
        said = f"{reason(error).rstrip('.')}. Why: {remedy.cause}"
    day = argv[argv.index("--date") + 1] if "--date" in argv[:-1] else "<date>"
    fix = remedy.named_by(str(error)) or remedy.fix_rerunning(command, day)
    print(f"{prog}: error: {said}. What to do: {fix} ({RUNBOOK}: {remedy.kind})", file=sys.stderr)
    return int(remedy.exit_code)


def reason(error: BaseException) -> str:
    """An error in one line: `<ErrorClass>: <its message's first line>`, then its notes (`add_note`), `; ` apart.

    The lake's store refusing (`lake.store_error`): its own line (`lake.store_words`), as `told` says it; DuckDB's error
    carries it in a Python traceback, whose first line is "Traceback (most recent call last):".
    """
    text = lake.store_words(error) if lake.store_error(error) else str(error).strip()
    line = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
    return "; ".join([line, *(str(note) for note in getattr(error, "__notes__", ()))])


def explain(task_family: str, day: dt.date | None, error: BaseException | str, *, local_scheduler: bool = False,
            scheduled: bool = True) -> str:
    """A failed task in three lines: what failed and why, what to do, where the runbook is.

    `error`: what it raised, or Luigi's line for a task that raised nothing (`lost_task`: timed out, killed).
    local_scheduler=True: the task ran without luigid, so its fix reruns the date that way too; through
    luigid the fix first re-enables the task luigid disabled. scheduled=False: its complete() or requires()
    raised, so it never ran and luigid disabled nothing.
    """
    said = (error.strip().splitlines() or [""])[0] if isinstance(error, str) else reason(error)
    lines = [f"{task_family}{f' for {day}' if day else ''} {'failed' if scheduled else 'could not be scheduled'}: {said}"]
    remedy = remedy_for_text(error) if isinstance(error, str) else remedy_for(error)
    if remedy is not None and day is not None and (result := getattr(error, "result", None)) is not None:
        # the gate blocked the date: the thresholds its failing checks name, as the run summary gives them
        blocking = [r for r in result.results if r.outcome in BLOCKING]
        fix = gate_fix(day, [r.message for r in blocking], local_scheduler=local_scheduler,
                       checks=[(r.table_name, r.check_name) for r in blocking],
                       errored=soda_errored((r.outcome, r.check_type) for r in blocking))
    elif remedy is not None:
        fix = remedy.fix_for(day, local_scheduler=local_scheduler, message=str(error), failed=scheduled)
    if remedy is not None:
        lines.append(f"What to do ({remedy.kind}): {fix}")
    lines.append(f"Runbook: {RUNBOOK}")
    return "\n".join(lines)
