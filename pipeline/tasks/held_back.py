"""Which earlier dates hold a date back: the tasks of other dates its run needs that are not complete.

A date's models need the land task of the catalog snapshot covering it, which may be an earlier
date's, and its gate the staging of the earlier dates its volume check compares with
(`pipeline.tasks.check.volume_history`). When such a date fails, Luigi leaves the date that needs it
pending: the run summary then names the date it waits for instead of a bare "not published" (or a
"DISABLED in luigid" that is another date's). That date may be published: a run of a later date
still runs its tasks when they are not complete (switched to the catalog API, the week's snapshot
is fetched by the land task of its weekday's date), and such a failed task is named, with the
fix rerunning the date that needed it.
"""
from __future__ import annotations

import datetime as dt
import logging
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import luigi

from pipeline import business_day
from pipeline.tasks.command_line import as_used, shown

logger = logging.getLogger(__name__)


def waits_for(day: dt.date) -> set[dt.date]:
    """The other dates whose tasks the date's run needs and that are not complete.

    Walks the date's task graph from `DailyPipeline`; a task of another date ends the walk there
    (that date's own tasks are its own summary's business). A task whose requires() or complete()
    raises is left out: the summary reports it as the date's own failure (`pipeline.tasks.unscheduled`).
    """
    try:  # by name: pipeline.tasks.publish imports the run summary, which asks this
        daily = luigi.task_register.Register.get_task_cls("DailyPipeline")
    except Exception:  # noqa: BLE001 - e.g. a user's own DailyPipeline makes the name ambiguous: none known
        return set()
    if day >= business_day.first_open():
        return set()  # no run of it is built before its day is over (`summary` may name such a date)
    seen: set[str] = set()
    todo: list[luigi.Task] = [daily(date=day)]
    held: set[dt.date] = set()
    while todo:
        task = todo.pop()
        if task.task_id in seen:
            continue
        seen.add(task.task_id)
        other = getattr(task, "date", None)
        try:
            if isinstance(other, dt.date) and other != day:
                if not task.complete():
                    held.add(other)
                continue
            todo.extend(luigi.task.flatten(task.requires()))
        except Exception:  # noqa: BLE001 - the date's own failure, reported as such
            logger.debug("held back: %s could not be walked", task.task_id, exc_info=True)
    return held


BELOW = "(failed, below)"  # how `summary._needed_failures` marks a date it holds back
RERUN = "what to do (not published):"  # a date's own fix when no failure explains it: a rerun, no use while held


def holds(summary: Any, holding: Mapping[str, str]) -> str | None:
    """Why a date's summary (`summary.DateSummary`) holds back the dates that need it, if it does.

    Its status (`holding`: status -> reason), or a failed task of a published date: only another date's
    run runs a task of a published date (e.g. a catalog snapshot of its week, fetched from the API now).
    """
    if summary.status in holding:
        return holding[summary.status]
    if summary.status.startswith("published") and summary.failed_tasks:  # also "published, catalog LATE"
        return f"{', '.join(sorted(set(summary.failed_tasks)))} failed"
    return None


def mark(summaries: Sequence[Any], holding: Mapping[str, str]) -> None:
    """A date left unpublished because an earlier date of the same summary that it needs failed: name that date.

    Its catalog snapshot's or its volume check's history (`waits_for`): the reason is that date's, shown
    above it, and so is what to do, unless that date is published: its fix then reruns this date.
    (A needed date nobody asked for: `summary._needed_failures`.)
    """
    why = {s.date: reason for s in summaries if (reason := holds(s, holding))}
    fixes = {s.date: s.rerun_fix for s in summaries if s.date in why and s.rerun_fix}
    for s in summaries:
        below = s.status.startswith("waits for") and s.status.endswith(BELOW)  # needed dates not asked for (below)
        if not (s.status == "not published" or below) or not any(day < s.date for day in why):
            continue
        held = sorted(day for day in waits_for(s.date) if day in why)
        if held:
            above = f"{', '.join(map(str, held))} ({' and '.join(sorted({why[day] for day in held}))}, above)"
            s.status = f"{s.status}; {above}" if below else f"waits for {above}"
            s.failures[:] = [line for line in s.failures if not line.startswith(RERUN)]  # the fix is the date above's
            s.failures.extend(fixes[day](s.date) for day in held if day in fixes)


def backfill_again(argv: Sequence[str], statuses: Sequence[str]) -> list[str]:
    """After a backfill (RangeDaily) that left dates unpublished: the command that runs the rest once the failure
    above is fixed, as it was run (each date's own fix reruns that date only; an option a variable overrode: the
    variable's value, the one used)."""
    if not any(arg.rsplit(".", 1)[-1] == "RangeDaily" for arg in argv) or all(s == "published" for s in statuses):
        return []
    again = shlex.join(["luigi", *map(shown, as_used(argv))])  # no key a catalog URL may hold
    return [f"then the rest of the backfill, as it was run: `{again}` (it runs the dates not"
            " published yet, oldest first)"]
