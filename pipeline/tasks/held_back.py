"""Which earlier dates hold a date back: the tasks of other dates its run needs that are not complete.

A date's models need the land task of the catalog snapshot covering it, which may be an earlier
date's, and its gate the staging of the earlier dates its volume check compares with
(`pipeline.tasks.check.volume_history`). When such a date fails, Luigi leaves the date that needs it
pending: the run summary then names the date it waits for instead of a bare "not published" (or a
"DISABLED in luigid" that is another date's).
"""
from __future__ import annotations

import datetime as dt
import logging
import shlex
from collections.abc import Sequence

import luigi

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


def backfill_again(argv: Sequence[str], statuses: Sequence[str]) -> list[str]:
    """After a backfill (RangeDaily) that left dates unpublished: the command that runs the rest once the failure
    above is fixed, as it was run (each date's own fix reruns that date only)."""
    if not any(arg.rsplit(".", 1)[-1] == "RangeDaily" for arg in argv) or all(s == "published" for s in statuses):
        return []
    return [f"then the rest of the backfill, as it was run: `{shlex.join(['luigi', *argv])}` (it runs the dates not"
            " published yet, oldest first)"]
