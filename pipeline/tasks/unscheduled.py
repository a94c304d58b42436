"""Tasks this process could not schedule, and why: for the run summary.

Luigi logs a task whose `complete()` or `requires()` raised as "Will not run <task> or any
dependencies due to error in complete() method:" followed by the traceback, marks it UNKNOWN and
exits with [retcode] scheduling_error: the date never ran, and without this the summary could only
say "not published". `Recorder`, a filter on Luigi's logger (`install`, from pipeline.tasks), keeps
each such task's family, date and the error's last line (`failures`), which the summary shows. A
task without a date (RangeDaily, whose complete() asks every date of its range) counts for every
date the run asked for.
"""
from __future__ import annotations

import datetime as dt
import logging
import re

_WILL_NOT_RUN = re.compile(
    r"Will not run (?P<family>\w+)\((?P<params>.*?)\) or any dependencies due to error in \w+\(\) method:(?P<rest>.*)",
    re.S)
_QUALIFIED = re.compile(r"^(?:\w+\.)+(?=\w+:)")  # psycopg.OperationalError: -> OperationalError:
# An exception's line in a formatted traceback: a CamelCase class name, maybe module-qualified, then ": ". The lines
# after it are its message's own (libpq's `password retrieved from file "..."`, `DETAIL: ...`, `HINT: ...`).
_ERROR_LINE = re.compile(r"^(?:[a-z_]\w*\.)*[A-Z][a-z]\w*: ")
_DATE = re.compile(r"(?:^|, )date=(\d{4}-\d{2}-\d{2})(?:,|$)")
_failed: dict[dt.date | None, list[tuple[str, str]]] = {}  # None: a task without a date, for every date


class Recorder(logging.Filter):
    """Notes every task Luigi will not run because its complete() or requires() raised; lets the record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            match = _WILL_NOT_RUN.match(record.getMessage())
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is not ours to judge
            return True
        if match:
            # the error's line, `<ErrorClass>: <text>` as the run audit records errors (the runbook reads it)
            entry = (match["family"], error_line(match["rest"]) or "see the log above")
            noted = _failed.setdefault(task_date(match["params"]), [])
            if entry not in noted:
                noted.append(entry)
        return True


def task_date(params: str) -> dt.date | None:
    """The date among a task's parameters as Luigi prints them (`date=2025-12-15, source=orders`); None: none."""
    day = _DATE.search(params)
    return dt.date.fromisoformat(day[1]) if day else None


def install() -> None:
    """Record Luigi's "Will not run" lines of this process (once)."""
    target = logging.getLogger("luigi-interface")
    if not any(isinstance(f, Recorder) for f in target.filters):
        target.addFilter(Recorder())


def noted(family: str, day: dt.date | None) -> str | None:
    """The error's line of the task of this family and date (None: a task without one, RangeDaily) that this
    process could not schedule; None: none noted."""
    return next((line for name, line in _failed.get(day, ()) if name == family), None)


def failures(day: dt.date) -> list[tuple[str, str]]:
    """(task family, the error's last line) of each task of the date this process could not schedule."""
    return [*_failed.get(None, ()), *_failed.get(day, ())]


def error_line(trace: str) -> str:
    """The last exception's line of a formatted traceback, `<ErrorClass>: <text>` unqualified ("": none); not the
    last line, which may be its message's last (a failed login's `password retrieved from file ...`)."""
    # a record another filter made one line (`... method: LakeUnreadable: ...`) keeps its leading space: stripped
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip() and not line[0].isspace()]
    found = [line for line in lines if _ERROR_LINE.match(line)]
    return _QUALIFIED.sub("", found[-1] if found else (lines[-1] if lines else ""))
