"""Catalog snapshots that arrived after a date was built: the dates that kept an older catalog.

A date's daily_metrics partition records the catalog snapshots its build read (`products_snapshot_date`,
`users_snapshot_date`: the latest on or before the date when it was built). A weekly snapshot file
delivered after dates of its week were built is landed by the next run it covers and used from then
on, but the dates built before it keep the previous snapshot's catalog (dim_product, dim_user, the
facts' is_known_product, the marts' categories) until they are restated with it:
`python -m pipeline restate --catalog KIND --date SNAPSHOT`. A date is *late* for a catalog when the
snapshot covering it now (`landing.covering_snapshot`; from the API only a landed one, since the API's
snapshot is fetched when a date needs it) is later than the one its build recorded. Such a date:

- does not count as published (`publish.still_current`), and a run of it refuses with the command
  (`SourcesUnchanged`: CatalogArrivedLate, exit 30), so a backfill over it says so too;
- is named, with the command, by the run that lands the snapshot (a warning of the land task and a
  line under the run's summary) and by `python -m pipeline summary`.

A date whose daily_metrics partition lacks the columns (built by an earlier release) is not judged.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

import pyarrow.parquet as pq

from pipeline import lake
from pipeline.ingest import landing

logger = logging.getLogger(__name__)

COLUMNS = {kind: f"{kind}_snapshot_date" for kind in landing.CATALOGS}  # daily_metrics' record of the build


class CatalogArrivedLate(landing.SourceChanged):
    """A catalog snapshot covering a built date arrived after the date was built."""


def recorded(day: dt.date) -> dict[str, dt.date | None] | None:
    """The catalog snapshots the date's build read (None: not built, or built before they were recorded)."""
    try:
        with lake.open_input(lake.partition_file("warehouse", "daily_metrics", day)) as handle:
            parquet = pq.ParquetFile(handle)
            if not set(COLUMNS.values()) <= set(parquet.schema_arrow.names):
                return None
            rows = parquet.read(columns=list(COLUMNS.values())).to_pylist()
    except FileNotFoundError:
        return None
    return {kind: rows[0][column] for kind, column in COLUMNS.items()} if rows else None


def late_snapshot(kind: str, day: dt.date, built_with: dt.date | None) -> dt.date | None:
    """The snapshot covering `day` now, if it is later than `built_with` (the one its build read)."""
    snapshot = landing.covering_snapshot(kind, day)
    return snapshot if snapshot is not None and _arrived_since(kind, snapshot, built_with) else None


def _arrived_since(kind: str, snapshot: dt.date, built_with: dt.date | None) -> bool:
    """Whether a date's covering snapshot is later than the one its build read."""
    if built_with is not None and snapshot <= built_with:
        return False
    # from the API a snapshot is fetched when a date needs it: only a landed one is late
    return not (landing.catalog_url(kind) and landing.read_manifest(kind, snapshot) is None)


def message(kind: str, snapshot: dt.date, days: Iterable[dt.date]) -> str:
    """The one message for dates built before a snapshot covering them arrived: what happened and the command."""
    days = sorted(days)
    built = f"{', '.join(map(str, days))} {'was' if len(days) == 1 else 'were'} built"
    return (f"the {kind} snapshot of {snapshot} arrived after {built}, which kept the catalog before it; to rebuild"
            f" and republish the dates it feeds with it, run `python -m pipeline restate --catalog {kind} --date"
            f" {snapshot}`")


def late_catalogs(day: dt.date) -> dict[str, str]:
    """kind -> message, for each catalog whose snapshot covering the built date arrived after its build."""
    built = recorded(day)
    if built is None:
        return {}
    found = {}
    for kind in landing.CATALOGS:
        snapshot = late_snapshot(kind, day, built[kind])
        if snapshot is not None:
            found[kind] = message(kind, snapshot, [day])
    return found


def built_dates() -> list[dt.date]:
    """The dates with a daily_metrics partition (the last table a date's build writes), oldest first."""
    from pipeline.transform import warehouse

    return sorted(warehouse.partition_dates("warehouse", "daily_metrics"))


def late_dates(kind: str, snapshot: dt.date, built: list[dt.date] | None = None) -> list[dt.date]:
    """The built dates the snapshot covers whose build read an older one (or none), oldest first.

    `built`: `built_dates()`, when the caller asks for several snapshots.
    """
    late = []
    for day in built_dates() if built is None else built:
        if day < snapshot:
            continue
        if landing.covering_snapshot(kind, day) != snapshot:
            break  # a later snapshot covers this date, and every later one
        used = recorded(day)
        if used is not None and _arrived_since(kind, snapshot, used[kind]):
            late.append(day)
    return late


def notes(days: Iterable[dt.date]) -> list[str]:
    """Lines for a run's summary: earlier built dates that the catalog snapshots covering `days` arrived after."""
    days = set(days)
    built = built_dates()
    lines = []
    for kind in landing.CATALOGS:
        for snapshot in sorted({s for day in days if (s := landing.covering_snapshot(kind, day)) is not None}):
            if earlier := [day for day in late_dates(kind, snapshot, built) if day not in days]:
                lines.append(f"late catalog: {message(kind, snapshot, earlier)}")
    return lines
