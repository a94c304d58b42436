"""Landing: each source for a date becomes an immutable raw Parquet partition, as received.

Raw keeps text as text (types are decided in staging, where a bad value gets a reason), keeps every
field, and adds lineage: source file, row number within it, ingested-at. Every record of the file is
accounted for: the manifest records the file's records (`source_records`: CSV and NDJSON lines
that are not blank, JSON array elements), the raw rows and the rejected records (in
audit/rejected_lines, with line and reason), and source_records = rows + rejected_count always
holds (see `pipeline.ingest.lines`; staging checks it again in audit/reconciliation).

A partition is written once: its `_manifest.json` records the source file's size, mtime and
sha256, and a later run that finds the source changed refuses to land it again (SourceChanged)
instead of silently rewriting history; `python -m pipeline restate` re-lands a date on purpose.
Which files are inputs, and how they must look, is `pipeline.ingest.incoming`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

from pipeline import config, faults, lake, read_once
from pipeline.ingest import incoming, json_numbers, readers
from pipeline.ingest import lines as landing_lines
from pipeline.ingest.incoming import (  # noqa: F401 - re-exported: the landing's errors
    SourceFile,
    SourceFileCompressed,
    SourceFileInvalid,
    SourceFileMissing,
    SourceFileUnstable,
    SourceNotReady,
    UnexpectedSourceFiles,
    UnsafeSourcePath,
)
from pipeline.ingest.catalog_folder import (  # noqa: F401 - re-exported: where the landing finds catalog files
    catalog_file,
    catalog_files,
    covering_file_date,
    ignored_catalog_files,
)
from pipeline.ingest.lines import LineAccountingError  # noqa: F401 - re-exported
from pipeline.ingest.manifests import (  # noqa: F401 - re-exported: a raw partition's completion marker
    MANIFEST,
    ManifestUnreadable,
    from_api,
    landed_dates,
    manifest_path,
    read_manifest,
    write_manifest,
)
from pipeline.ingest.readers import EVENT_COLUMNS, Landed  # noqa: F401 - re-exported

logger = logging.getLogger(__name__)

CATALOGS = incoming.CATALOG_SOURCES


class SourceChanged(Exception):
    """A source file differs from the one already landed for that date."""


def orders_file(load_date: dt.date) -> str:
    """The incoming orders file of a date (orders.json or orders.ndjson, maybe compressed), or where it is expected."""
    return _path_or_expected("orders", load_date)


def events_file(load_date: dt.date) -> str:
    """The incoming events file of a date, or where it is expected."""
    return _path_or_expected("events", load_date)


def _path_or_expected(source: str, load_date: dt.date) -> str:
    try:
        return incoming.find(source, load_date).path
    except (SourceFileMissing, SourceFileInvalid):
        return incoming.expected_path(source, load_date)


def snapshot_day(load_date: dt.date) -> dt.date:
    """The API snapshot week's day (the configured weekday) on or before the date."""
    back = (load_date.weekday() - config.catalog().weekday) % 7
    return load_date - dt.timedelta(days=back)


def catalog_url(kind: str) -> str:
    """The configured API base URL of a catalog (empty: use files); read once in a `read_once.scope`."""
    return read_once.once(("catalog url", kind), config.products_url if kind == "products" else config.users_url)


def source_snapshot(kind: str, load_date: dt.date) -> dt.date | None:
    """The snapshot date the configured source gives `load_date`: the latest file on or before it, or from the API
    the week's day (None: no file). The tasks ask `pipeline.tasks.catalog_cover.covering_snapshot`, which keeps the
    file snapshots of the dates files fed before a switch to the API."""
    if catalog_url(kind):
        return snapshot_day(load_date)
    return covering_file_date(kind, load_date)  # its land task refuses the file if it cannot be read as it is


def file_fingerprint(path: str) -> dict[str, Any]:
    """Size, mtime and sha256 of a file (the checksum the manifest records)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}


# file_drift's words for a landed file from another folder: another deployment's lake, or a moved data folder
OTHER_FOLDER = "the date was landed from another folder"
# ... and what a message about one says first: restating would replace what another deployment landed
SHARED_LAKE = ("If that folder is another deployment's, this lake is its lake too: give each deployment its own"
               " ECOMM_LAKE_DIR (a restate here would replace its data with this file).")


def file_drift(manifest: dict[str, Any], path: str) -> str | None:
    """Why the file at `path` is not the one the manifest landed (None: it is); sha256 only if size or mtime differ."""
    landed = manifest.get("source_file", "")
    if os.path.basename(path) != os.path.basename(landed):
        return f"{path} is there instead of {os.path.basename(landed)}, which was landed"
    if not manifest.get("sha256"):
        return None
    info = os.stat(path)
    if info.st_size == manifest["size"] and info.st_mtime_ns == manifest["mtime_ns"]:
        return None
    digest = file_fingerprint(path)["sha256"]
    if digest == manifest["sha256"]:
        return None
    sizes = f"{manifest['size']} -> {info.st_size} bytes, sha256 {manifest['sha256'][:12]}... -> {digest[:12]}..."
    if os.path.dirname(os.path.realpath(path)) != os.path.dirname(os.path.realpath(landed)):
        return f"{path} is not the file landed, {landed} ({sizes}): {OTHER_FOLDER}"
    return f"{path} changed since it was landed ({sizes})"


def source_unchanged(manifest: dict[str, Any]) -> bool:
    """Whether the landed source file still has the recorded checksum (cheap when untouched)."""
    path = manifest.get("source_file", "")
    if not manifest.get("sha256") or "://" in path:
        return True  # API snapshots have no file to compare
    if not os.path.exists(path):
        return True  # an archived or moved source does not invalidate what was landed
    return file_drift(manifest, path) is None


LOST = "is gone from the lake"  # what source_drift says of a raw partition removed after its date was built


def source_drift(source: str, load_date: dt.date) -> str | None:
    """Why a landed daily source's folder no longer holds what was landed (None: it does, or nothing is landed).

    The file changed, another file replaced it, or files were added next to it; or the raw partition
    itself was removed after the date was staged from it (by hand, or a damaged manifest's fix). A
    folder emptied after landing (the file archived) does not invalidate what was landed.
    """
    manifest = read_manifest(source, load_date)
    if manifest is None:
        staged = lake.exists(lake.partition_file("staging", f"stg_{source}", load_date))
        return f"raw/{source} for {load_date} {LOST}, while the date was built from it" if staged else None
    try:
        found = incoming.find(source, load_date)
    except SourceFileMissing:
        return None
    except SourceFileInvalid as err:  # extra files, a link, an unreadable compression (changed_message names the source)
        return str(err).removeprefix(f"{source} for {load_date}: ").removesuffix("; nothing was landed")
    return file_drift(manifest, found.path)


def changed_sources(load_date: dt.date) -> dict[str, str]:
    """The date's landed daily sources (orders, events) whose incoming files changed, with why."""
    found = {}
    for source in incoming.DAILY_SOURCES:
        reason = source_drift(source, load_date)
        if reason:
            found[source] = reason
    return found


def changed_message(source: str, load_date: dt.date, reason: str, *, published: bool = False) -> str:
    """The one message for a changed source: what changed and how to land it on purpose."""
    if LOST in reason:  # nothing landed to keep: land the incoming file again and rebuild the date from it
        return (f"{source} for {load_date}: {reason}. To land its incoming file again and rebuild the date from it:"
                f" `python -m pipeline restate --date {load_date} --source {source}`.")
    state = (f"{load_date} is published, and Postgres keeps serving it as it was published" if published
             else f"raw/{source} for {load_date} is already landed and raw partitions are immutable")
    if OTHER_FOLDER in reason:  # restating would replace what another deployment landed into a shared lake
        return (f"{source} for {load_date}: {reason}; {state}. {SHARED_LAKE} If the data folder moved, land the new"
                f" file on purpose with `python -m pipeline restate --date {load_date} --source {source}`, or put the"
                f" original file back.")
    return (f"{source} for {load_date}: {reason}; {state}. To land the new file on purpose run"
            f" `python -m pipeline restate --date {load_date} --source {source}` (it archives the landed raw"
            f" partition, rebuilds the date and publishes it again); to keep what was landed, put the original"
            f" file back.")


def changed_catalogs(load_date: dt.date,
                     covering: Callable[[str, dt.date], dt.date | None] = source_snapshot) -> dict[str, str]:
    """The catalog snapshots covering the date whose files changed since they were landed: kind -> what to do.
    `covering`: the rule of which snapshot covers a date (the tasks': `catalog_cover.covering_snapshot`).
    A snapshot's file is checked once in a `read_once.scope`, however many dates of its week ask."""
    found = {}
    for kind in CATALOGS:
        snapshot = covering(kind, load_date)
        message = read_once.once(("catalog drift", kind, snapshot), lambda: _catalog_drift(kind, snapshot))
        if message is not None:
            found[kind] = message
    return found


def catalog_file_change(kind: str, snapshot: dt.date | None) -> str | None:
    """How the catalog snapshot's landed file changed since it was landed (None: unchanged, or none landed)."""
    manifest = read_manifest(kind, snapshot) if snapshot is not None else None
    if manifest is None or source_unchanged(manifest):
        return None
    return file_drift(manifest, manifest["source_file"]) or "changed since it was landed"


def _catalog_drift(kind: str, snapshot: dt.date | None) -> str | None:
    """changed_catalog_message for the snapshot if its landed file changed since (None: unchanged, or none landed)."""
    how = catalog_file_change(kind, snapshot)
    return None if how is None or snapshot is None else changed_catalog_message(kind, snapshot, how)


def changed_catalog_message(kind: str, snapshot: dt.date, reason: str | None) -> str:
    """The one message for a changed catalog snapshot file: what changed and how to land it on purpose."""
    if reason and OTHER_FOLDER in reason:
        return (f"the {kind} snapshot of {snapshot}: {reason}; raw partitions are immutable. {SHARED_LAKE} If the data"
                f" folder moved, land it on purpose with `python -m pipeline restate --catalog {kind} --date"
                f" {snapshot}`, or put the original file back.")
    return (f"the {kind} snapshot of {snapshot}: {reason}; raw partitions are immutable. To land it again on"
            f" purpose, with the dates it feeds, run `python -m pipeline restate --catalog {kind} --date"
            f" {snapshot}`; to keep what was landed, put the original file back.")


def _refuse_changed_catalog(kind: str, day: dt.date, source: str) -> None:
    """Refuse a snapshot file that is not the one landed for its day: changed, or another folder's (a shared lake)."""
    manifest = read_manifest(kind, day)
    if manifest is None or "://" in manifest.get("source_file", ""):  # an API snapshot has no file to compare
        return
    reason = file_drift(manifest, source)
    if reason:
        raise SourceChanged(changed_catalog_message(kind, day, reason))


def _source(source: str, load_date: dt.date) -> SourceFile:
    """The date's source file, checked (folder rules, ready marker) and not changed since landing."""
    incoming.require_ready(source, load_date)
    found = incoming.find(source, load_date)
    manifest = read_manifest(source, load_date)
    reason = file_drift(manifest, found.path) if manifest is not None else None
    if reason:
        raise SourceChanged(changed_message(source, load_date, reason))
    return found


# ---------------------------------------------------------------------------------------- landing
def _stable(src: SourceFile, before: tuple[int, int, int, int]) -> None:
    if incoming.stat_key(src.path) != before:
        raise SourceFileUnstable(
            f"{src.path} changed while it was being landed (it is probably still being written); nothing was"
            f" landed. Wait until the sender has finished (set [landing] ready_marker so that a date is landed"
            f" only once the sender marks it complete), then run again.")


def _finish(table: str, load_date: dt.date, src: SourceFile | None, source: str, landed: Landed,
            scanned: landing_lines.Scan | None, now: dt.datetime, extra: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest (the completion marker), after the data and rejected records are in place."""
    manifest = {
        "table": table, "load_date": load_date.isoformat(), "rows": landed.rows, "source_file": source,
        "ingested_at": now.isoformat(), "source_records": landed.source_records,
        "rejected_count": landed.rejected_count, "blank_lines": landed.blank_lines, "read_path": landed.read_path,
        **({"format": src.format, "compression": src.compression} if src else {}),
        **(scanned.fingerprint() if scanned else {}), **extra,
    }
    faults.point("landing.manifest", lake.partition_file("raw", table, load_date))
    write_manifest(table, load_date, manifest)
    if not landed.source_records:
        logger.warning("%s: a complete file without records: 0 rows of %s for %s (the quality gate blocks the date"
                       " unless it is rerun with --checks-%s-volume-fail-low-ratio 0)", source, table, load_date,
                       table)
    if landed.rejected_count:
        logger.warning("%s: %s of %s record(s) rejected, recorded in audit/rejected_lines (source_table=%s)",
                       source, landed.rejected_count, landed.source_records, table)
    logger.info("landed %s rows of %s for %s from %s", landed.rows, table, load_date, source)
    return manifest


def _refuse_empty(src: SourceFile, scanned: landing_lines.Scan) -> None:
    """SourceFileInvalid for a file with no content (a compressed one: none once decompressed)."""
    if not scanned.content_bytes:
        what = "0 bytes" if src.compression == "none" else f"{src.compression}, 0 bytes once decompressed"
        raise SourceFileInvalid(f"{src.path}: the file is empty ({what}); nothing was landed")


def land_orders(load_date: dt.date) -> dict[str, Any]:
    """Land the day's orders (a JSON array, or NDJSON when the file is orders.ndjson)."""
    src = _source("orders", load_date)
    now = dt.datetime.now(dt.timezone.utc)
    before = incoming.stat_key(src.path)
    scanned = landing_lines.scan(src)
    _refuse_empty(src, scanned)
    params = {"source_file": src.path, "ingested_at": now}
    landed = readers.land_json("orders", "orders", src, load_date, params, scanned, lambda: _stable(src, before))
    return _finish("orders", load_date, src, src.path, landed, scanned, now, {})


def land_events(load_date: dt.date) -> dict[str, Any]:
    """Land the day's events CSV; lines that are not landed are recorded in audit/rejected_lines."""
    src = _source("events", load_date)
    now = dt.datetime.now(dt.timezone.utc)
    before = incoming.stat_key(src.path)
    scanned = landing_lines.scan(src)
    _refuse_empty(src, scanned)
    header = readers.csv_header(src)
    params = {"columns": header.columns, "source_file": src.path, "ingested_at": now}
    try:
        landed = readers.events_direct(src, load_date, params, scanned, lambda: _stable(src, before))
    except readers.NotOnePerLine as why:
        logger.warning("%s: %s; reading it line by line", src.path, why)
        landed = readers.events_line_safe(src, load_date, params, scanned, lambda: _stable(src, before))
    return _finish("events", load_date, src, src.path, landed, scanned, now,
                   {"renamed_columns": header.renamed} if header.renamed else {})


# ------------------------------------------------------------------------------------- catalogs
def land_catalog(kind: str, load_date: dt.date, snapshot: dt.date | None = None) -> dict[str, Any] | None:
    """Land the catalog snapshot (`products` or `users`) that covers the date, if not landed yet.

    From the API (when its URL is configured) today's catalog is fetched as the snapshot of `snapshot`
    (default: the configured weekday on or before the date; the tasks give `catalog_cover.covering_snapshot`),
    at most once; from files, the latest `<kind>_YYYY-MM-DD.json` on or before the date. Returns None
    when no snapshot covers the date yet.
    """
    if kind not in CATALOGS:
        raise ValueError(f"unknown catalog {kind!r}")
    url = catalog_url(kind)
    if url:
        day = snapshot or snapshot_day(load_date)
        if read_manifest(kind, day) is not None:
            return read_manifest(kind, day)
        return _land_from_api(kind, url, day)
    found = catalog_file(kind, load_date)
    if found is None:
        logger.warning("no %s snapshot on or before %s under %s", kind, load_date, config.data_dir())
        return None
    path, day = found
    incoming.check_regular_file(path, f"{kind} snapshot {day}")
    _refuse_changed_catalog(kind, day, path)
    if read_manifest(kind, day) is not None:
        return read_manifest(kind, day)
    src = SourceFile(source=kind, path=path, format="array", compression=incoming.detect_compression(path, kind))
    now = dt.datetime.now(dt.timezone.utc)
    before = incoming.stat_key(path)
    scanned = landing_lines.scan(src)
    _refuse_empty(src, scanned)
    params = {"source_file": path, "ingested_at": now, "source_kind": "file"}
    landed = readers.land_json(kind, "catalog", src, day, params, scanned, lambda: _stable(src, before))
    return _finish(kind, day, src, path, landed, scanned, now, {})


def _land_from_api(kind: str, url: str, day: dt.date) -> dict[str, Any]:
    from pipeline.ingest import catalog_api

    settings = config.catalog()
    records = catalog_api.fetch_all(
        url, kind, page_size=settings.page_size, timeout=settings.timeout_seconds,
        retries=settings.retries, backoff=settings.backoff_seconds,
    )
    if not records:
        raise catalog_api.CatalogApiBadResponse(f"{catalog_api.source_url(url, kind)}: the API returned no records;"
                                                 " nothing was landed")
    handle_fd, staging = tempfile.mkstemp(prefix=f"ecomm-{kind}-", suffix=".json")
    os.close(handle_fd)
    source = catalog_api.source_url(url, kind)  # lineage and messages name it: secrets masked
    try:
        with open(staging, "w", encoding="utf-8") as handle:
            handle.write(json_numbers.dumps(records))
        src = SourceFile(source=kind, path=staging, format="array", compression="none")
        now = dt.datetime.now(dt.timezone.utc)
        params = {"source_file": source, "ingested_at": now, "source_kind": "api"}
        landed = readers.land_json(kind, "catalog", src, day, params, None, lambda: None)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return _finish(kind, day, None, source, landed, None, now, {})

