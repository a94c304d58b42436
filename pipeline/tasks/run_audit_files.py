"""Where the run audit's lake twins of a date are (`pipeline.tasks.run_audit`: one file per task per run, under
`audit/pipeline_runs/load_date=D/run_id=R/task_id=T/`): listed a date at a time, or in a `read_once.scope` over
many dates (the summary of a range) the whole table once."""
from __future__ import annotations

import datetime as dt
import os
import re

from pipeline import lake, read_once

TABLE = "pipeline_runs"


def twin_files(day: dt.date, run: str | None) -> list[str]:
    """The date's twin files (of run `run` only, when it can name a folder). In a `read_once.scope` over many dates
    the table is listed once for every date, not once a date (a summary of a long range); over a few, the date's
    folder once (the summary asks for a date's runs, then for its runtime)."""
    runs = f"run_id={run}" if run is not None and re.fullmatch(r"[A-Za-z0-9_]+", run) else "run_id=*"
    if read_once.many_dates():
        return list(read_once.once(("run audit twins", runs), lambda: _twins_by_date(runs)).get(day, []))
    pattern = os.path.join(lake.partition_dir("audit", TABLE, day), runs, "task_id=*", lake.DATA_FILE)
    return list(read_once.once(("files", pattern), lambda: lake.files_matching(pattern)))


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
