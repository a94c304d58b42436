"""A raw partition's manifest: `_manifest.json`, written last and atomically, marks it landed (a task's completion
marker) and records what was landed (the source file's size, mtime and sha256, its records, rows and rejects:
`pipeline.ingest.landing`).
"""
from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

from pipeline import lake, read_once
from pipeline.lake import disk

MANIFEST = lake.MANIFEST_FILE


class ManifestUnreadable(Exception):
    """A raw partition's _manifest.json (its completion marker) cannot be read."""


def manifest_path(table: str, load_date: dt.date) -> str:
    """The manifest that marks a raw partition as landed (a task's completion marker)."""
    return os.path.join(lake.partition_dir("raw", table, load_date), MANIFEST)


def read_manifest(table: str, load_date: dt.date) -> dict[str, Any] | None:
    """The manifest of a landed partition, or None (not landed). A damaged one is ManifestUnreadable, naming the
    partition to remove; one the lake's store refuses is its LakeUnreadable (the partition is not at fault)."""
    path = manifest_path(table, load_date)
    try:
        text = read_once.once(("manifest", table, load_date), lambda: _read_bytes(path))
        return None if text is None else json.loads(text)
    except (ValueError, OSError) as err:  # json.JSONDecodeError is a ValueError
        if isinstance(err, OSError) and lake.store_refused(err):  # the store, not the partition: delete nothing
            raise lake.unreadable(path, err) from err
        raise ManifestUnreadable(
            f"{path} cannot be read ({err}); it is written atomically, so something else changed it: remove"
            f" {lake.partition_dir('raw', table, load_date)} and run the date again to re-land it (a date built from it"
            f" names the restate command that does)"
        ) from err


def _read_bytes(path: str) -> bytes | None:
    """The file's bytes (None: there is none): read once in a `read_once.scope`, however many checks of a range ask."""
    try:
        with lake.open_input(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_manifest(table: str, load_date: dt.date, manifest: dict[str, Any]) -> None:
    """Write a raw partition's manifest (atomically: a reader sees the old one or the new one)."""
    path = manifest_path(table, load_date)
    try:
        lake.write_atomic(path, json.dumps(manifest, indent=2, sort_keys=True).encode())
    except OSError as err:
        if disk.no_space(err):
            raise disk.full(path, err) from err
        raise


def landed_dates(table: str) -> list[dt.date]:
    """The load dates of a raw table's landed partitions (those with a manifest), oldest first."""
    pattern = os.path.join(lake.table_dir("raw", table), "load_date=*", MANIFEST)
    listed = read_once.once(("files", pattern), lambda: lake.files_matching(pattern))  # once in a scope
    folders = (path.split("/")[-2].removeprefix("load_date=") for path in listed)
    return sorted(day for folder in folders if (day := _iso_date(folder)) is not None)


def _iso_date(text: str) -> dt.date | None:
    try:
        return lake.parse_date(text)
    except ValueError:
        return None


def from_api(manifest: dict[str, Any]) -> bool:
    """Whether a landed catalog snapshot came from the API (its lineage is the API's URL), not from a file."""
    return "://" in manifest.get("source_file", "")
