"""Which catalog snapshot covers a date, and which ones a built date's build read.

From files, the latest `<kind>_YYYY-MM-DD.json` on or before the date (`landing.source_snapshot`). From the
API, today's catalog is landed once a week, as the snapshot of the week's day (`[catalog] weekday`) on or
before the date that needs it. A catalog that files fed before its URL was set keeps, for the dates files
fed, the file snapshots that covered them: today's catalog is never landed as a snapshot of a date built
from a file, nor of a date before a snapshot landed from a file. So the first API snapshot after a switch in
mid-week is landed as of the day after the week's last date built from a file, not of the week's day
(which would make those dates `catalog LATE` with a catalog they never had). Files fed a date whose build
read a file's snapshot (or none), and a date between a snapshot landed from a file and the first one landed
from the API after it: a restatement of the date, which removes its build, keeps its file snapshot.

A date's daily_metrics partition records the catalog snapshots its build read (`products_snapshot_date`,
`users_snapshot_date`; `products_snapshot_dates` for the history): `recorded`.
"""
from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq

from pipeline import lake, read_once
from pipeline.ingest import landing

COLUMNS = {kind: f"{kind}_snapshot_date" for kind in landing.CATALOGS}  # daily_metrics' record of the build
PRODUCTS_READ = "products_snapshot_dates"  # daily_metrics' record of every products snapshot its history read
DAY = dt.timedelta(days=1)


def built_row(day: dt.date) -> dict | None:
    """The date's daily_metrics row, of the columns that record its catalogs (None: not built, or not recorded);
    read once a date in a `read_once.scope`."""
    row = read_once.once(("built row", day), lambda: _read_built_row(day))
    return None if row is None else dict(row)


def _read_built_row(day: dt.date) -> dict | None:
    try:
        with lake.open_input(lake.partition_file("warehouse", "daily_metrics", day)) as handle:
            parquet = pq.ParquetFile(handle)
            names = set(parquet.schema_arrow.names)
            if not set(COLUMNS.values()) <= names:
                return None
            columns = [*COLUMNS.values(), *([PRODUCTS_READ] if PRODUCTS_READ in names else [])]
            rows = parquet.read(columns=columns).to_pylist()
    except FileNotFoundError:
        return None
    return rows[0] if rows else None


def recorded(day: dt.date) -> dict[str, dt.date | None] | None:
    """The catalog snapshots the date's build read (None: not built, or built before they were recorded)."""
    row = built_row(day)
    return None if row is None else {kind: row[column] for kind, column in COLUMNS.items()}


def covering_snapshot(kind: str, day: dt.date) -> dt.date | None:
    """The snapshot date whose catalog covers `day` (None: none exists yet; from the API, one is fetched when a date
    needs it: a date it covers lands it). Found once a date in a `read_once.scope`."""
    return read_once.once(("covering snapshot", kind, day), lambda: _covering_snapshot(kind, day))


def _covering_snapshot(kind: str, day: dt.date) -> dt.date | None:
    if not landing.catalog_url(kind):
        return landing.source_snapshot(kind, day)
    week = landing.snapshot_day(day)
    for snapshot in reversed(_days(week, day)):
        if lake.exists(landing.manifest_path(kind, snapshot)):
            return snapshot  # the week's, or a later one of the week (landed from a file, or after a switch)
    landed = landing.landed_dates(kind)  # a listing, only while the week has no snapshot landed
    before = max((s for s in landed if s <= day), default=None)
    if _built_from_files(kind, day) or _before_the_switch(kind, before, next((s for s in landed if s > day), None)):
        return before  # files fed the date
    # to be landed: as of the week's day, or of the day after the week's last date built from files
    fed_by_files = [d for d in _days(week, day - DAY) if _built_from_files(kind, d)]
    return max(fed_by_files) + DAY if fed_by_files else week


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + n * DAY for n in range((last - first).days + 1)]


def _built_from_files(kind: str, day: dt.date) -> bool:
    """Whether the built date read a snapshot landed from a file, or none (from the API a build always reads one)."""
    if (built := recorded(day)) is None:
        return False
    if built[kind] is None:
        return True
    manifest = landing.read_manifest(kind, built[kind])
    return manifest is not None and not landing.from_api(manifest)


def _before_the_switch(kind: str, before: dt.date | None, after: dt.date | None) -> bool:
    """Whether a date between the snapshots landed `before` and `after` it is one files fed, whatever its build
    (a restatement removes it): the snapshot after it came from a file, or the one before it did and the one after
    from the API (the switch came between them)."""
    if after is None:
        return False
    if not _from_api(kind, after):
        return True
    return before is not None and not _from_api(kind, before)


def _from_api(kind: str, snapshot: dt.date) -> bool:
    manifest = landing.read_manifest(kind, snapshot)
    return manifest is None or landing.from_api(manifest)  # gone meanwhile: as if it never was a file's


def changed_catalogs(day: dt.date) -> dict[str, str]:
    """`landing.changed_catalogs` of the snapshots covering the date by this rule (kind -> what to do)."""
    return landing.changed_catalogs(day, covering_snapshot)
