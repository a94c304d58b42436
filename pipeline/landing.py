"""Landing: each source for a date becomes an immutable raw Parquet partition, as received.

Raw keeps text as text (types are decided in staging, where a bad value gets a reason), keeps every
field, and adds lineage: source file, row number within it, ingested-at. A partition is written
once: its `_manifest.json` records the source file's checksum, and a later run that finds the source
changed refuses to land it again instead of silently rewriting history.
"""
from __future__ import annotations

import csv
import datetime as dt
import glob
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any

import duckdb

from pipeline import config, faults, lake, sqlrun

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
EVENT_COLUMNS = ("event_id", "user_id", "product_id", "event_type", "event_ts")
CATALOGS = ("products", "users")


class SourceFileMissing(Exception):
    """The incoming file for a source and date is not where it is expected."""


class SourceFileInvalid(Exception):
    """The incoming file cannot be read as its format (malformed, empty, missing columns)."""


class SourceChanged(Exception):
    """A source file differs from the one already landed for that date."""


def orders_file(load_date: dt.date) -> str:
    """The incoming orders file for a date: orders.json (array) or orders.ndjson."""
    folder = os.path.join(config.data_dir(), "orders", load_date.isoformat())
    for name in ("orders.json", "orders.ndjson"):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return os.path.join(folder, "orders.json")


def events_file(load_date: dt.date) -> str:
    """The incoming events file for a date."""
    return os.path.join(config.data_dir(), "events", load_date.isoformat(), "events.csv")


def catalog_file(kind: str, load_date: dt.date) -> tuple[str, dt.date] | None:
    """The latest `<kind>/<kind>_YYYY-MM-DD.json` on or before the date, with its date."""
    best: tuple[str, dt.date] | None = None
    for path in glob.glob(os.path.join(config.data_dir(), kind, f"{kind}_*.json")):
        match = re.fullmatch(rf"{kind}_(\d{{4}}-\d{{2}}-\d{{2}})\.json", os.path.basename(path))
        if not match:
            continue
        try:
            day = dt.date.fromisoformat(match.group(1))
        except ValueError:
            logger.warning("ignoring %s: %s is not a calendar date", path, match.group(1))
            continue
        if day <= load_date and (best is None or day > best[1]):
            best = (path, day)
    return best


def snapshot_day(load_date: dt.date) -> dt.date:
    """The API snapshot week's day (the configured weekday) on or before the date."""
    back = (load_date.weekday() - config.catalog().weekday) % 7
    return load_date - dt.timedelta(days=back)


def catalog_url(kind: str) -> str:
    """The configured API base URL of a catalog (empty: use files)."""
    return config.products_url() if kind == "products" else config.users_url()


def covering_snapshot(kind: str, load_date: dt.date) -> dt.date | None:
    """The snapshot date whose catalog covers `load_date` (None: no snapshot exists yet)."""
    if catalog_url(kind):
        return snapshot_day(load_date)
    found = catalog_file(kind, load_date)
    return found[1] if found else None


def file_fingerprint(path: str) -> dict[str, Any]:
    """Size, mtime and sha256 of a file (the checksum the manifest records)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}


def manifest_path(table: str, load_date: dt.date) -> str:
    """The manifest that marks a raw partition as landed (a task's completion marker)."""
    return os.path.join(lake.partition_dir("raw", table, load_date), MANIFEST)


def read_manifest(table: str, load_date: dt.date) -> dict[str, Any] | None:
    """The manifest of a landed partition, or None."""
    try:
        with lake.open_input(manifest_path(table, load_date)) as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None


def source_unchanged(manifest: dict[str, Any]) -> bool:
    """Whether the landed source file still has the recorded checksum (cheap when untouched)."""
    path = manifest.get("source_file", "")
    if not manifest.get("sha256") or "://" in path:
        return True  # API snapshots have no file to compare
    if not os.path.exists(path):
        return True  # an archived or moved source does not invalidate what was landed
    stat = os.stat(path)
    if stat.st_size == manifest["size"] and stat.st_mtime_ns == manifest["mtime_ns"]:
        return True
    return file_fingerprint(path)["sha256"] == manifest["sha256"]


def _write_manifest(table: str, load_date: dt.date, manifest: dict[str, Any]) -> None:
    lake.write_atomic(manifest_path(table, load_date), json.dumps(manifest, indent=2, sort_keys=True).encode())


def _refuse_changed(table: str, load_date: dt.date, source: str) -> None:
    manifest = read_manifest(table, load_date)
    if manifest is not None and not source_unchanged(manifest):
        raise SourceChanged(
            f"{source} changed since raw/{table} for {load_date} was landed "
            f"(sha256 was {manifest['sha256'][:12]}…). Raw partitions are immutable; to re-land on "
            f"purpose, remove {lake.partition_dir('raw', table, load_date)} (and that date's staging "
            f"and warehouse partitions) and run the date again."
        )


def _land(
    con: duckdb.DuckDBPyConnection, table: str, sql_name: str, load_date: dt.date,
    params: dict[str, Any], source: str, extra: dict[str, Any] | None = None, *,
    empty: str = "the file holds no records", after_write: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write the raw partition straight from the source file, then its manifest (the marker).

    `after_write` runs between the two (the events' rejected lines) and adds to the manifest.
    """
    now = dt.datetime.now(dt.timezone.utc)
    final = lake.partition_file("raw", table, load_date)
    try:
        rows = sqlrun.copy_to_partition(
            con, sqlrun.sql_text("raw", sql_name), {**params, "source_file": source, "ingested_at": now}, final,
            require_rows=True,
        )
    except sqlrun.EmptyResult:
        raise SourceFileInvalid(f"{source}: {empty}; nothing was landed") from None
    except duckdb.Error as exc:  # the reader's message names the byte/line where parsing stopped
        raise SourceFileInvalid(f"{source}: cannot be read: {str(exc).splitlines()[0]}; nothing was landed") from exc
    manifest = {
        "table": table, "load_date": load_date.isoformat(), "rows": rows, "source_file": source,
        "ingested_at": now.isoformat(), **(extra or {}),
    }
    if after_write is not None:
        manifest.update(after_write())
    if os.path.exists(source):
        manifest.update(file_fingerprint(source))
    faults.point("landing.manifest", final)
    _write_manifest(table, load_date, manifest)
    logger.info("landed %s rows of %s for %s from %s", rows, table, load_date, source)
    return manifest


def _reject_empty_file(path: str) -> None:
    if os.path.getsize(path) == 0:
        raise SourceFileInvalid(f"{path}: the file is empty (0 bytes); nothing was landed")


def land_orders(load_date: dt.date) -> dict[str, Any]:
    """Land the day's orders (a JSON array, or NDJSON when the file is orders.ndjson)."""
    path = orders_file(load_date)
    if not os.path.exists(path):
        raise SourceFileMissing(f"orders for {load_date}: expected {path}")
    _refuse_changed("orders", load_date, path)
    fmt = "newline_delimited" if path.endswith(".ndjson") else "array"
    _reject_empty_file(path)
    with sqlrun.connect() as con:
        return _land(con, "orders", "orders", load_date, {"path": path, "json_format": fmt}, path)


def _csv_header(path: str) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        first = handle.readline()
    if not first.strip():
        raise SourceFileInvalid(f"{path}: the file is empty (no header line); nothing was landed")
    names = [name.strip().lower() for name in next(csv.reader([first]))]
    missing = [name for name in EVENT_COLUMNS if name not in names]
    if missing:
        raise SourceFileInvalid(
            f"{path}: line 1 (header) lacks required column(s) {', '.join(missing)}; "
            f"found {', '.join(names)}; nothing was landed"
        )
    if len(set(names)) != len(names) or any(not name for name in names):
        raise SourceFileInvalid(f"{path}: line 1 (header) has empty or repeated column names: {names}")
    return names


def land_events(load_date: dt.date) -> dict[str, Any]:
    """Land the day's events CSV; lines the reader rejects are recorded in audit/rejected_lines."""
    path = events_file(load_date)
    if not os.path.exists(path):
        raise SourceFileMissing(f"events for {load_date}: expected {path}")
    _refuse_changed("events", load_date, path)
    _reject_empty_file(path)
    names = _csv_header(path)
    params = {"path": path, "columns": {name: "VARCHAR" for name in names}}
    with sqlrun.connect() as con:
        # one pass: the raw partition is written straight from the reader (sql/raw/events.sql), which
        # fills csv_rejects on the way; the rejected lines are recorded before the manifest
        return _land(con, "events", "events", load_date, params, path,
                     empty="no readable event lines after the header",
                     after_write=lambda: {"rejected_lines": _record_rejected_lines(con, path, load_date)})


def _record_rejected_lines(con: duckdb.DuckDBPyConnection, path: str, load_date: dt.date) -> int:
    """Write audit/rejected_lines for the events file from the reader's csv_rejects; return the count."""
    rejected_rows = sqlrun.copy_to_partition(
        con,
        "select $path as source_file, line::bigint as line_number,"
        " trim(any_value(csv_line), E'\\r\\n') as raw_text,"
        " string_agg(distinct error_type || ': ' || error_message, '; ') as error"
        " from csv_rejects group by line order by line",
        {"path": path},
        lake.partition_file("audit", "rejected_lines", load_date, source_table="events"),
    )
    if rejected_rows:
        logger.warning("%s: %s line(s) rejected by the CSV reader, recorded in audit/rejected_lines",
                       path, rejected_rows)
    return rejected_rows


def land_catalog(kind: str, load_date: dt.date) -> dict[str, Any] | None:
    """Land the catalog snapshot (`products` or `users`) that covers the date, if not landed yet.

    From the API (when its URL is configured) a snapshot is fetched at most once per week, for the
    configured weekday on or before the date; from files, the latest `<kind>_YYYY-MM-DD.json` on or
    before the date. Returns None when no snapshot covers the date yet.
    """
    if kind not in CATALOGS:
        raise ValueError(f"unknown catalog {kind!r}")
    url = catalog_url(kind)
    if url:
        day = snapshot_day(load_date)
        if read_manifest(kind, day) is not None:
            return read_manifest(kind, day)
        return _land_from_api(kind, url, day)
    found = catalog_file(kind, load_date)
    if found is None:
        logger.warning("no %s snapshot on or before %s under %s", kind, load_date, config.data_dir())
        return None
    path, day = found
    _refuse_changed(kind, day, path)
    if read_manifest(kind, day) is not None:
        return read_manifest(kind, day)
    _reject_empty_file(path)
    with sqlrun.connect() as con:
        return _land(con, kind, "catalog", day, {"path": path, "source_kind": "file"}, path)


def _land_from_api(kind: str, url: str, day: dt.date) -> dict[str, Any]:
    from pipeline import catalog_api

    settings = config.catalog()
    records = catalog_api.fetch_all(
        url, kind, page_size=settings.page_size, timeout=settings.timeout_seconds,
        retries=settings.retries, backoff=settings.backoff_seconds,
    )
    if not records:
        raise SourceFileInvalid(f"{url}/{kind}: the API returned no records; nothing was landed")
    handle_fd, staging = tempfile.mkstemp(prefix=f"ecomm-{kind}-", suffix=".json")
    os.close(handle_fd)
    try:
        with open(staging, "w", encoding="utf-8") as handle:
            json.dump(records, handle)
        with sqlrun.connect() as con:
            source = f"{url.rstrip('/')}/{kind}"
            manifest = _land(con, kind, "catalog", day, {"path": staging, "source_kind": "api"}, source)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return manifest
