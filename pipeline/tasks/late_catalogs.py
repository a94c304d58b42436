"""Catalog snapshots that arrived after a date was built: the dates that kept an older catalog.

A date's daily_metrics partition records the catalog snapshots its build read (`products_snapshot_date`,
`users_snapshot_date`: the latest on or before the date when it was built). A weekly snapshot file
delivered after dates of its week were built is landed by the next run it covers and used from then
on, but the dates built before it keep the previous snapshot's catalog (dim_product, dim_user, the
facts' is_known_product, the marts' categories) until they are restated with it:
`python -m pipeline restate --catalog KIND --date SNAPSHOT`. A date is *late* for a catalog when the
snapshot covering it now (`catalog_cover.covering_snapshot`; from the API only a landed one, since the API's
snapshot is fetched when a date needs it) is later than the one its build recorded. Such a date:

- does not count as published (`publish.still_current`), and a run of it refuses with the command
  (`SourcesUnchanged`: CatalogArrivedLate, exit 30), so a backfill over it says so too;
- is named, with the command, by the run that lands the snapshot (a warning of the land task and a
  line under the run's summary) and by `python -m pipeline summary`.

A products snapshot feeds more than the dates it covers: each date's dim_product_history partition holds
the history of every products snapshot on or before it. So a date is also late for products when a
landed products snapshot on or before it is not among those its history's build read (daily_metrics'
`products_snapshot_dates`: the record the date's dim_product_history partition keeps of the snapshots it
was built from, `warehouse.products_snapshot_dates`), e.g. an earlier week's file delivered, and landed by
a backfill of its dates, after later dates were built, or a snapshot whose restatement had removed its
staging while a run built a later date's history; the message names the earliest such snapshot, whose
restatement rebuilds every date from it on. Only a landed one counts: a file in the data folder older than any date
a run has landed it for may predate the lake. A users snapshot feeds only the dates it covers.

A date whose daily_metrics partition lacks the columns (built by an earlier release) is not judged.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from pipeline.ingest import catalog_folder, landing
from pipeline.tasks.catalog_cover import COLUMNS, PRODUCTS_READ, built_row, covering_snapshot

logger = logging.getLogger(__name__)


class CatalogArrivedLate(landing.SourceChanged):
    """A catalog snapshot covering a built date arrived after the date was built."""


def unread_snapshot(kind: str, day: dt.date, row: dict) -> dt.date | None:
    """The earliest landed products snapshot on or before the built date that its build did not read.

    Cheap when there is none: a listing of the landed snapshots; a manifest read per one missing from the record.
    """
    read = row.get(PRODUCTS_READ) if kind == "products" else None
    if read is None:  # users (a snapshot feeds only the dates it covers), or built before it was recorded
        return None
    from pipeline.transform import warehouse

    read = set(read)
    landed = sorted(s for s in warehouse.partition_dates("raw", kind) if s <= day and s not in read)
    return next((s for s in landed if landing.read_manifest(kind, s) is not None), None)


def late_snapshot(kind: str, day: dt.date, built_with: dt.date | None) -> dt.date | None:
    """The snapshot covering `day` now, if it is later than `built_with` (the one its build read)."""
    snapshot = covering_snapshot(kind, day)
    return snapshot if snapshot is not None and _arrived_since(kind, snapshot, built_with) else None


def _arrived_since(kind: str, snapshot: dt.date, built_with: dt.date | None) -> bool:
    """Whether a date's covering snapshot is later than the one its build read."""
    if built_with is not None and snapshot <= built_with:
        return False
    # from the API a snapshot is fetched when a date needs it: only a landed one is late
    return not (landing.catalog_url(kind) and landing.read_manifest(kind, snapshot) is None)


def message(kind: str, snapshot: dt.date, days: Iterable[dt.date]) -> str:
    """The one message for dates built before a snapshot covering them arrived: what happened and the command.

    A snapshot file misnamed (`users_D.JSON`: `catalog_folder.misnamed_refusal`) is to be renamed first: the
    restatement reads it only under its name, and refuses it otherwise."""
    days = sorted(days)
    built = f"{', '.join(map(str, days))} {'was' if len(days) == 1 else 'were'} built"
    late = (f"the {kind} snapshot of {snapshot} arrived after {built}, which kept the catalog before it; to rebuild"
            f" and republish the dates it feeds with it, run `python -m pipeline restate --catalog {kind} --date"
            f" {snapshot}`")
    rename = None if landing.catalog_url(kind) else catalog_folder.misnamed_refusal(kind, snapshot)
    return f"{rename}, then: {late}" if rename else late


def late_catalogs(day: dt.date) -> dict[str, str]:
    """kind -> message, for each catalog with a snapshot feeding the built date that arrived after its build
    (the covering one, or for products an earlier one its history lacks; the earliest is named)."""
    row = built_row(day)
    if row is None:
        return {}
    found = {}
    for kind, column in COLUMNS.items():
        late = [s for s in (late_snapshot(kind, day, row[column]), unread_snapshot(kind, day, row)) if s is not None]
        if late:
            found[kind] = message(kind, min(late), [day])
    return found


def built_dates() -> list[dt.date]:
    """The dates with a daily_metrics partition (the last table a date's build writes), oldest first."""
    from pipeline.transform import warehouse

    return sorted(warehouse.partition_dates("warehouse", "daily_metrics"))


class Built:
    """The built dates, and what `late_dates` reads of each (its record, the snapshot covering it), read once for a
    caller that asks of several snapshots: a run's notes over years of dates read each date's record once, not once
    per snapshot (which grew with the square of the dates)."""

    def __init__(self) -> None:
        self.dates = built_dates()
        self._rows: dict[dt.date, dict | None] = {}
        self._covering: dict[tuple[str, dt.date], dt.date | None] = {}

    def row(self, day: dt.date) -> dict | None:
        if day not in self._rows:
            self._rows[day] = built_row(day)
        return self._rows[day]

    def covering(self, kind: str, day: dt.date) -> dt.date | None:
        if (kind, day) not in self._covering:
            self._covering[kind, day] = covering_snapshot(kind, day)
        return self._covering[kind, day]


def late_dates(kind: str, snapshot: dt.date, built: Built | None = None) -> list[dt.date]:
    """The built dates the snapshot feeds whose build read an older one (or none) instead, oldest first.

    The dates it covers; for a landed products snapshot also every later date whose build did not read it.
    `built`: a `Built`, when the caller asks of several snapshots.
    """
    built = built or Built()
    history = kind == "products" and landing.read_manifest(kind, snapshot) is not None
    late = []
    for day in built.dates:
        if day < snapshot:
            continue
        covered = built.covering(kind, day) == snapshot
        if not covered and not history:
            break  # a later snapshot covers this date, and every later one
        row = built.row(day)
        if row is None:
            continue
        if (covered and _arrived_since(kind, snapshot, row[COLUMNS[kind]])) or (
                history and row.get(PRODUCTS_READ) is not None and snapshot not in row[PRODUCTS_READ]):
            late.append(day)
    return late


def notes(days: Iterable[dt.date]) -> list[str]:
    """Lines for a run's summary: earlier built dates that the catalog snapshots covering `days` arrived after.

    A date is named once, under the earliest of them (whose restatement rebuilds it).
    """
    days = set(days)
    built = Built()
    lines = []
    for kind in landing.CATALOGS:
        named: set[dt.date] = set()
        for snapshot in sorted({s for day in days if (s := built.covering(kind, day)) is not None}):
            shown = days | named
            if earlier := [day for day in late_dates(kind, snapshot, built) if day not in shown]:
                named.update(earlier)
                lines.append(f"late catalog: {message(kind, snapshot, earlier)}")
    return lines
