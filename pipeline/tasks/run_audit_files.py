"""Where the run audit's lake twins of a date are (`pipeline.tasks.run_audit`: one file per task per run, under
`audit/pipeline_runs/load_date=D/run_id=R/task_id=T/`): listed a date at a time, or in a `read_once.scope` over
many dates (the summary of a range) the whole table once."""
from __future__ import annotations

import datetime as dt
import os
import re

from pipeline import lake, read_once

TABLE = "pipeline_runs"
REBUILT = "RebuildServing"  # task id and family of rebuild-serving's record of a date it published and where to (in
# the lake only, `in_postgres` true: not a task execution, so not listed by twin_files, never copied to Postgres)


def twin_files(day: dt.date, run: str | None) -> list[str]:
    """The date's twin files (of run `run` only, when it can name a folder). In a `read_once.scope` over many dates
    the table is listed once for every date, not once a date (a summary of a long range); over a few, the date's
    folder once (the summary asks for a date's runs, then for its runtime)."""
    runs = f"run_id={run}" if run is not None and re.fullmatch(r"[A-Za-z0-9_]+", run) else "run_id=*"
    if read_once.many_dates():
        return [path for path in read_once.once(("run audit twins", runs), lambda: _twins_by_date(runs)).get(day, [])
                if _task(path)]
    pattern = os.path.join(lake.partition_dir("audit", TABLE, day), runs, "task_id=*", lake.DATA_FILE)
    return [path for path in read_once.once(("files", pattern), lambda: lake.files_matching(pattern)) if _task(path)]


def _task(path: str) -> bool:
    """Whether a twin file is a task's (not rebuild-serving's record)."""
    return path.replace(os.sep, "/").split("/")[-2] != f"task_id={REBUILT}"


def _twins_by_date(runs: str) -> dict[dt.date, list[str]]:
    """Every date's twin files (`runs`: the run folders to list), from one listing of the table."""
    found: dict[dt.date, list[str]] = {}
    pattern = os.path.join(lake.table_dir("audit", TABLE), "load_date=*", runs, "task_id=*", lake.DATA_FILE)
    for path in lake.files_matching(pattern):
        try:
            day = lake.parse_date(path.split("/")[-4].removeprefix("load_date="))
        except ValueError:  # not a date's folder: no date's own listing would find it
            continue
        found.setdefault(day, []).append(path)
    return found


def every_twin(tasks: tuple[str, ...]) -> list[tuple[dt.date, str, str]]:
    """(date, run id, file) of every date's twins of the tasks `tasks` names (task id globs, `Publish_*`), listed
    once per glob."""
    found = []
    for task in tasks:
        pattern = os.path.join(lake.table_dir("audit", TABLE), "load_date=*", "run_id=*", f"task_id={task}",
                               lake.DATA_FILE)
        for path in lake.files_matching(pattern):
            day, run = path.replace(os.sep, "/").split("/")[-4:-2]
            try:
                found.append((lake.parse_date(day.removeprefix("load_date=")), run.removeprefix("run_id="), path))
            except ValueError:  # not a date's folder
                continue
    return found
