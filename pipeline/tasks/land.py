"""Landing tasks: each incoming source of a date becomes an immutable raw partition (`pipeline.ingest`).

    luigi --module pipeline.tasks LandDaily --date 2025-12-15 --local-scheduler
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import luigi

from pipeline import config, lake
from pipeline.ingest import incoming, landing
from pipeline.ingest.catalog_api import CatalogApiTransientError, CatalogChangedWhileRead
from pipeline.serving.retry import one_line, retry_note
from pipeline.tasks import late_catalogs
from pipeline.tasks.catalog_cover import covering_snapshot
from pipeline.tasks.base import LakeTarget, PipelineTask, running_task

logger = logging.getLogger(__name__)


class LandTask(PipelineTask):
    """Lands one source for a date as an immutable raw partition (output: its manifest).

    A missing or unreadable file is not transient: the task fails at once (no Luigi retry) with
    a message naming the expected path.
    """

    source: str = ""
    retry_count = 1
    timeout_kind = "land"

    def output(self) -> LakeTarget:
        return LakeTarget(landing.manifest_path(self.source, self.date))

    def requires(self) -> list[luigi.Task]:
        # With [landing] ready_marker set, the date waits for the sender's marker (exit 20 while missing).
        return [SourceReady(date=self.date, source=self.source)] if config.ready_marker() else []

    def complete(self) -> bool:
        manifest = landing.read_manifest(self.source, self.date)
        # A changed source (or files added beside it) makes the task incomplete so that run() refuses it loudly; not
        # when a task that reads the landed partition asks (`checked_by_another_task`): the Publish names the change.
        return manifest is not None and (checked_by_another_task(self)
                                         or landing.source_drift(self.source, self.date) is None)

    def land(self) -> dict[str, Any]:
        raise NotImplementedError

    def run(self) -> None:
        self.report(f"landing {self.source}", 0)
        manifest = self.land()
        self.rows_in, self.rows_out = manifest.get("source_records"), manifest["rows"]
        rejected = manifest.get("rejected_count")
        self.report(f"landed {manifest['rows']} {self.source} rows"
                    + (f" ({rejected} unreadable records rejected)" if rejected else ""), 100)


def checked_by_another_task(task: luigi.Task) -> bool:
    """Whether this complete() is Luigi's check of a requirement in the process of a task that requires it, just
    before that task runs: a landed file that changed since then would fail it as "Unfulfilled dependency at run
    time", which names neither the file nor what to do. What it reads is the landed partition, consistent whatever
    the incoming file became; the date's Publish refuses the change with both (`publish.check_sources_unchanged`)."""
    running = running_task()
    return running is not None and running is not task


class SourceReady(luigi.ExternalTask, PipelineTask):
    """The sender's ready marker ([landing] ready_marker) in a daily source's folder for a date.

    An external task: while the marker is missing the land task waits, and the run exits with
    [retcode] missing_data (20) after logging which source is not ready.
    """

    source = luigi.Parameter()

    def complete(self) -> bool:
        if incoming.is_ready(self.source, self.date):
            return True
        logger.warning("%s", incoming.not_ready_message(self.source, self.date))
        return False


class CatalogLandTask(PipelineTask):
    """Lands the weekly catalog snapshot (products or users) that covers a date, if any.

    Luigi retries a task whole and cannot tell one error from another, so the task runs once in Luigi
    (`retry_count = 1`) and retries itself only what can heal: the API still failing transiently (5xx,
    429, a timeout, a refused connection: `CatalogApiTransientError`, after the client's own per-request
    retries), or the catalog changing while it was read (a `total` that changed between pages, items of an
    earlier page served again: `CatalogChangedWhileRead`, fetched again from the first page),
    `[catalog] attempts` times in all, `retry_delay_seconds` apart, each retry logged. A catalog file that
    is missing, empty or malformed, or an API answer that breaks the contract (4xx, not JSON, the wrong
    shape, an item served twice within a page), fails at once with its reason: it would fail the same way
    every time.
    """

    date_rank = 2  # beside the events' staging, not after the marts: see PipelineTask.priority

    source: str = ""
    retry_count = 1
    timeout_kind = "catalog"

    def requires(self) -> list[luigi.Task]:
        # waits for the snapshot's own task, not landing it beside it (two workers fetched the API twice)
        return snapshot_task(self, covering_snapshot(self.source, self.date))

    def complete(self) -> bool:
        snapshot = covering_snapshot(self.source, self.date)
        if snapshot is None:
            return True  # nothing covers this date yet: facts point at inferred members
        manifest = landing.read_manifest(self.source, snapshot)
        return manifest is not None and (checked_by_another_task(self) or landing.source_unchanged(manifest))

    def run(self) -> None:
        self.report(f"landing the {self.source} snapshot", 0)
        snapshot = covering_snapshot(self.source, self.date)
        # from the API, None is a date files fed without a snapshot: nothing is fetched for it (files: a warning)
        nothing_to_fetch = snapshot is None and landing.catalog_url(self.source)
        manifest = None if nothing_to_fetch else self.land_retrying_transient_api_errors(snapshot)
        self.rows_out = manifest["rows"] if manifest else 0
        self.report(f"landed {self.rows_out} {self.source} rows", 100)
        if snapshot is not None and (late := late_catalogs.late_dates(self.source, snapshot)):
            # dates it covers were built before it arrived: they keep the older catalog until restated
            line = late_catalogs.message(self.source, snapshot, late)
            logger.warning("%s", line)
            self.status(line)

    def land_retrying_transient_api_errors(self, snapshot: dt.date | None) -> dict[str, Any] | None:
        """`landing.land_catalog`, tried again after `[catalog] retry_delay_seconds` while the API fails transiently
        or the catalog changes while it is read."""
        settings = config.catalog()
        attempts = max(1, int(settings.attempts))
        for attempt in range(1, attempts + 1):
            try:
                return landing.land_catalog(self.source, self.date, snapshot)
            except CatalogApiTransientError as err:
                if attempt >= attempts:
                    logger.error("landing the %s snapshot failed again (%s); this kind of failure can heal, but all"
                                 " %d attempts are used up", self.source, one_line(err), attempts)
                    kept = ("the catalog kept changing while it was read: " if isinstance(err, CatalogChangedWhileRead)
                            else "")
                    err.add_note(f"{kept}gave up after {attempts} attempts ([catalog] attempts)")
                    raise
                delay = max(0.0, float(settings.retry_delay_seconds))
                line = (f"landing the {self.source} snapshot failed: {one_line(err)}; this can heal, will retry:"
                        f" {retry_note(attempt + 1, attempts, delay)}")
                logger.warning("%s", line)
                self.status(line)
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")


def snapshot_task(task: PipelineTask, snapshot: dt.date | None) -> list[luigi.Task]:
    """The catalog task of the snapshot's own date, which lands (or stages) it, when that is another date than the
    task's; a later date the snapshot covers waits for it (none when no snapshot covers the date)."""
    return [type(task)(date=snapshot)] if snapshot is not None and snapshot != task.date else []


def catalog_snapshot_dates(kind: str, day: dt.date) -> list[dt.date]:
    """Every snapshot date of a catalog on or before `day`: landed ones, incoming files, and the covering one.

    The warehouse models that read a catalog's history refuse to build while a landed snapshot on
    or before their date is not staged (see warehouse._snapshots_through), so in a backfill a date
    must wait for the staging of every earlier snapshot, not only its own.
    """
    from pipeline.transform import warehouse

    dates = {d for d in warehouse.partition_dates("raw", kind) if d <= day}
    if not landing.catalog_url(kind):
        dates.update(snapshot for snapshot in landing.catalog_files(kind) if snapshot <= day)
    covering = covering_snapshot(kind, day)
    if covering is not None:
        dates.add(covering)
    return sorted(dates)


class LandOrders(LandTask):
    """raw/orders for one date: one row per order record as received."""

    source = "orders"
    date_rank = 4

    def land(self) -> dict[str, Any]:
        return landing.land_orders(self.date)


class LandEvents(LandTask):
    """raw/events for one date: one row per accepted CSV line; rejected lines go to audit."""

    source = "events"
    date_rank = 6

    def land(self) -> dict[str, Any]:
        return landing.land_events(self.date)


class LandProducts(CatalogLandTask):
    """raw/products for the weekly snapshot covering a date: one row per product record."""

    source = "products"


class LandUsers(CatalogLandTask):
    """raw/users for the weekly snapshot covering a date: one row per user record."""

    source = "users"


LAND_TASKS: tuple[type[LandTask], ...] = (LandOrders, LandEvents, LandProducts, LandUsers)


class LandDaily(luigi.WrapperTask, PipelineTask):
    """Every source of one date landed in lake/raw (orders, events, products, users)."""

    def requires(self) -> list[luigi.Task]:
        return [task(date=self.date) for task in LAND_TASKS]
