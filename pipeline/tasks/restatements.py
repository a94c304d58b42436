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
from typing import Any

from pipeline import lake

logger = logging.getLogger(__name__)

MARKER = lake.RESTATEMENT_FILE


def marker_path(day: dt.date) -> str:
    """The date's restatement record (pending until the date is published again)."""
    return os.path.join(lake.partition_dir("audit", "restatements", day), MARKER)


def read_record(day: dt.date) -> dict[str, Any] | None:
    """The date's restatement record (None: never restated)."""
    try:
        with lake.open_input(marker_path(day)) as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None


def write_record(day: dt.date, record: dict[str, Any]) -> None:
    lake.write_atomic(marker_path(day), json.dumps(record, indent=2).encode())


def pending(day: dt.date) -> bool:
    """Whether a restatement of the date waits for its publish."""
    record = read_record(day)
    return record is not None and record.get("status") == "pending"


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


def mark_published(day: dt.date) -> None:
    """Record that the date was published after its restatement (called by the Publish task)."""
    record = read_record(day)
    if record is None or record.get("status") != "pending":
        return
    record.update(status="published", published_at=dt.datetime.now(dt.timezone.utc).isoformat())
    write_record(day, record)
    logger.info("restatement of %s published", day)
