"""What a built date's lake holds, and what of it is gone: partitions deleted by hand, a lake restored from an older
backup, a copy that left files out.

A published date's partitions can go without the pipeline's knowing: Postgres keeps serving the date, its run is
complete (Luigi asks Postgres), and a later `rebuild-serving` leaves the date out or stops on it. The run summary
flags such a date `published, lake INCOMPLETE` (`pipeline.tasks.summary`), naming what is gone and the commands
that write it again:

- a daily source's raw partition (its data file; a manifest gone too is `raw MISSING`, `landing.source_drift`),
  its rejected lines, or staging's quarantine and reconciliation partitions: `restate --date D --source S`, which
  lands the incoming file again and rebuilds the date from it (the staging partition itself, when only it is gone:
  the same, since the quarantine and reconciliation beside it must agree with it);
- warehouse or mart partitions: `BuildWarehouse` / `BuildMarts` of the date, which rebuild only the missing ones
  from the lake as it is (the date's staging and catalog snapshots);
- the quality gate's results: `QualityGate` of the date, which checks the date again.

What a date holds is derived from the contracts that write it: the daily sources (`incoming.DAILY_SOURCES`), the
warehouse tables (`warehouse.TABLES`) and the load-date marts (`marts.LOAD_DATE_MARTS`). Each table is listed once
per call (`Listing`), however many dates are asked about, so a summary of a long range costs a listing per table.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable

from pipeline import lake, read_once
from pipeline.ingest import incoming, landing
from pipeline.lake import s3

# what rewrites a missing partition, by the kind of partition (see the module doc)
_TASK = "luigi --module pipeline.tasks {task} --date {date}"


class Listing:
    """The lake's partition files of the tables a date must hold, listed once per table; for a few dates (`days`:
    up to `read_once.FEW_DATES`, the summary of one date) once per table and date, its `load_date=D` folder: a
    whole table's listing costs a date's as many times over as it has dates (on S3, a request per 1000 files)."""

    def __init__(self, days: Iterable[dt.date] | None = None) -> None:
        self._files: dict[tuple[str, str, str], set[str]] = {}
        self._by_date = days is not None and len(set(days)) <= read_once.FEW_DATES

    def has(self, layer: str, table: str, path: str) -> bool:
        table_dir = lake.table_dir(layer, table)
        inside = path.startswith(table_dir + "/") and self._by_date
        folder = path.removeprefix(table_dir + "/").split("/")[0] if inside else ""  # load_date=D
        if (layer, table, folder) not in self._files:
            under = os.path.join(table_dir, folder) if folder else table_dir
            self._files[layer, table, folder] = set(lake.files_matching(os.path.join(under, "**", "*")))
        return path in self._files[layer, table, folder]


def expected(day: dt.date) -> dict[str, tuple[str, str, str]]:
    """The partition files a built date holds: path -> (layer, table, what rewrites it: a daily source's name, or
    the task of the date that does)."""
    from pipeline.transform import marts, warehouse

    files: dict[str, tuple[str, str, str]] = {}
    for source in incoming.DAILY_SOURCES:
        files[lake.partition_file("raw", source, day)] = ("raw", source, source)
        files[landing.manifest_path(source, day)] = ("raw", source, source)
        files[lake.partition_file("audit", "rejected_lines", day, source_table=source)] = (
            "audit", "rejected_lines", source)
        files[lake.partition_file("staging", f"stg_{source}", day)] = ("staging", f"stg_{source}", source)
        for table in ("bad_records", "reconciliation"):
            files[lake.partition_file("audit", table, day, source_table=f"stg_{source}")] = ("audit", table, source)
    for table in warehouse.TABLES:
        files[lake.partition_file("warehouse", table, day)] = ("warehouse", table, "BuildWarehouse")
    for table in marts.LOAD_DATE_MARTS:
        files[lake.partition_file(marts.LAYER, table, day)] = (marts.LAYER, table, "BuildMarts")
    files[lake.partition_file("audit", "dq_results", day)] = ("audit", "dq_results", "QualityGate")
    return files


def missing(day: dt.date, listing: Listing | None = None) -> dict[str, str]:
    """The date's partition files that are gone (`expected`), each with what rewrites it ({}: none is gone).

    Only for a date that was built: a date whose every partition is gone (never built here, or a lake restored
    from a backup older than it) reports them all, which the summary words as such.
    """
    listing = listing or Listing()
    root = lake.root()  # the setting, read once in the summary's `read_once.scope`
    return {path if s3.is_remote(path) else os.path.relpath(path, root): fixer
            for path, (layer, table, fixer) in expected(day).items() if not listing.has(layer, table, path)}


def describe(day: dt.date, gone: dict[str, str], *, local_scheduler: bool = True) -> list[str]:
    """The summary's lines for a date's missing partitions: what is gone, then what to do (one line each)."""
    if not gone:
        return []
    paths = sorted(gone)
    every = len(gone) == len(expected(day))
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    lines = [f"lake: {'no partition of the date is in the lake' if every else f'{len(paths)} partition file(s) gone'}"
             f" ({shown}); Postgres serves the date as it was published"]
    return [*lines, f"what to do (lake incomplete): {fix(day, set(gone.values()), local_scheduler=local_scheduler)}"]


def fix(day: dt.date, fixers: Iterable[str], *, local_scheduler: bool = True) -> str:
    """The commands that write a date's missing partitions again, in the order to run them."""
    fixers = set(fixers)
    sources = [s for s in incoming.DAILY_SOURCES if s in fixers]
    commands = []
    if sources:  # lands the files again and rebuilds every layer above them, then republishes the date
        commands.append(f"python -m pipeline restate --date {day}" + "".join(f" --source {s}" for s in sources))
    else:
        scheduler = " --local-scheduler" if local_scheduler else ""
        commands += [_TASK.format(task=task, date=day) + scheduler
                     for task in ("BuildWarehouse", "BuildMarts", "QualityGate") if task in fixers]
    said = " then ".join(f"`{command}`" for command in commands)
    return (f"{said} (the incoming file must still be there: a restatement lands it again)" if sources else
            f"{said} (rebuilds only what is missing, from the lake as it is; nothing is republished)")
