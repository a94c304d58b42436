"""The restatement records: one JSON record per restated date, `audit/restatements/load_date=D/restatement.json`.

`python -m pipeline restate` (`pipeline.tasks.restate`) writes a date's record, pending until the date is
published again; the publish task and the run summary read whether one is pending. Its own module, so
that the run summary can ask without importing the restate command (which prints the run summary).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from typing import Any

from pipeline import lake, read_once
from pipeline.lake import s3 as lake_store

logger = logging.getLogger(__name__)

MARKER = lake.RESTATEMENT_FILE


def marker_path(day: dt.date) -> str:
    """The date's restatement record (pending until the date is published again)."""
    return os.path.join(lake.partition_dir("audit", "restatements", day), MARKER)


def read_record(day: dt.date) -> dict[str, Any] | None:
    """The date's restatement record (None: never restated). In a `read_once.scope` over many dates, the records'
    folders are listed once and only a listed date's record is read: most dates of a long history have none."""
    if read_once.many_dates():
        listed = read_once.once(("restatement folders",), _dates_with_a_folder)
        if listed is not None and day not in listed:
            return None
    try:
        with lake.open_input(marker_path(day)) as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None


def write_record(day: dt.date, record: dict[str, Any]) -> None:
    lake.write_atomic(marker_path(day), json.dumps(record, indent=2).encode())


def pending(day: dt.date) -> bool:
    """Whether a restatement of the date waits for its publish."""
    return is_pending(read_record(day))


def is_pending(record: dict[str, Any] | None) -> bool:
    """Whether a date's restatement record (`read_record`) waits for the date's publish."""
    return record is not None and record.get("status") == "pending"


def superseded(day: dt.date, seen: dict[str, Any] | None) -> str | None:
    """Why the date's build in the lake is not one to publish for a run whose Publish began with `seen` (the date's
    restatement record then); None when it is. Asked under the date's publish lock, which `restate` holds while it
    removes a date's build: a run that built the date before a restatement was requested must not publish that
    build, nor mark the restatement done (its own run publishes it)."""
    from pipeline.quality import gate

    record = read_record(day)
    if _requested(record) != _requested(seen):
        return (f"{day} was restated (requested at {_requested(record)}) while this run built or published it: the"
                " restatement's run publishes the date; this run published nothing")
    if is_pending(record) and _requested(record):
        results = gate.load_results(day)
        requested = dt.datetime.fromisoformat(_requested(record) or "").astimezone(dt.timezone.utc)
        again = " and ".join(f"`{command}`" for command in commands(day, record))
        if results is None:  # removed by the restatement after this run's gate: its own run rebuilds the date
            return (f"the build of {day} was removed by its restatement (requested at {_requested(record)}) before"
                    " this run could publish it: this run published nothing; the restatement's run rebuilds and"
                    f" publishes the date: unless a `restate` is running, run {again} again")
        if results.checked_at.replace(tzinfo=dt.timezone.utc) < requested:
            return (f"the build of {day} in the lake predates its restatement (requested at {_requested(record)}),"
                    " which is removing it now or was interrupted before it could: this run published nothing;"
                    f" unless a `restate` is running, run {again} again")
    return None


def commands(day: dt.date, record: dict[str, Any] | None) -> list[str]:
    """The `restate` command(s) that make the date's pending restatement (`read_record`) again: one per catalog
    snapshot it restates (`restate --catalog KIND --date S`), and one for its daily sources; `restate --date D`
    when it names none (or none is pending)."""
    snapshots = record.get("snapshots", {}) if is_pending(record) else {}
    again = [f"python -m pipeline restate --catalog {kind} --date {snapshot}"
             for kind, snapshot in sorted(snapshots.items())]
    daily = daily_sources(record)
    if daily or not again:
        again.insert(0, f"python -m pipeline restate --date {day}" + "".join(f" --source {s}" for s in daily))
    return again


def daily_sources(record: dict[str, Any] | None) -> list[str]:
    """The daily sources a pending restatement record lands again (not the catalogs whose snapshots it restates)."""
    if not is_pending(record):
        return []
    return [s for s in record.get("sources", []) if s not in record.get("snapshots", {})]


def recorded_dates() -> list[dt.date]:
    """Every date with a restatement record (pending or not), oldest first; in a local or an s3 lake."""
    pattern = os.path.join(lake.table_dir("audit", "restatements"), "load_date=*", MARKER)
    return sorted(_dates(lake.files_matching(pattern)))


def _dates(paths: list[str]) -> set[dt.date]:
    """The dates of `load_date=D` folders in `paths`; a name that is no date (load_date=2025-02-30) is skipped, as
    a date's own read would never find it."""
    found = set()
    for match in (re.search(r"load_date=(\d{4}-\d{2}-\d{2})(?:/|$)", path) for path in paths):
        try:
            day = dt.date.fromisoformat(match.group(1)) if match else None
        except ValueError:
            continue
        if day is not None:
            found.add(day)
    return found


def _dates_with_a_folder() -> set[dt.date] | None:
    """The dates with a folder in the restatement records (a superset of those with a record: a folder whose record
    cannot be read is read as the date's own read would, and raises as it would); None when the table's folder
    exists but cannot be listed (a local glob would find nothing there, and every date would look unrestated)."""
    table = lake.table_dir("audit", "restatements")
    if not lake_store.is_remote(table):
        try:
            return _dates([os.path.join(table, name) for name in os.listdir(table)])
        except FileNotFoundError:
            return set()
        except OSError:  # unreadable: each date's record is read, and raises, as outside a scope
            return None
    try:
        return _dates(lake.files_matching(os.path.join(table, "load_date=*", MARKER)))
    except OSError:  # a listing S3 refuses or fails: each date's record is read, as a date asked alone is
        return None


def pending_for_snapshot(kind: str, snapshot: dt.date) -> list[dt.date]:
    """The dates whose pending restatement restates the catalog's snapshot of `snapshot` (`restate --catalog`
    interrupted: its dates' builds may be removed and the snapshot archived already), oldest first."""
    return [day for day in recorded_dates() if is_pending(record := read_record(day))
            and record.get("snapshots", {}).get(kind) == snapshot.isoformat()]


def _requested(record: dict[str, Any] | None) -> str | None:
    return None if record is None else record.get("requested_at")


def pending_dates(days: list[dt.date]) -> set[dt.date]:
    """The dates among `days` with a pending restatement."""
    return {day for day in days if pending(day)}


def restated_snapshots(day: dt.date) -> dict[str, list[dt.date]]:
    """The catalog snapshots a pending restatement of the date lands again: staging table -> snapshot dates."""
    from pipeline.transform import staging

    record = read_record(day)
    if record is None or record.get("status") != "pending":
        return {}
    return {staging.staging_table(kind): [dt.date.fromisoformat(snapshot)]
            for kind, snapshot in record.get("snapshots", {}).items()}


def mark_published(day: dt.date, seen: dict[str, Any] | None) -> None:
    """Record that the date was published after its restatement (called by the Publish task, which began with the
    record `seen`): only that restatement; one requested during the publish stays pending for its own run."""
    record = read_record(day)
    if not is_pending(record):
        return
    if _requested(record) != _requested(seen):
        logger.info("a restatement of %s was requested during this publish (at %s): it stays pending", day,
                    _requested(record))
        return
    record.update(status="published", published_at=dt.datetime.now(dt.timezone.utc).isoformat())
    write_record(day, record)
    logger.info("restatement of %s published", day)
