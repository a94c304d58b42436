"""The mechanics behind every Luigi task, one base class per kind, so tasks stay thin.

A task declares its `date`, what it requires and which table it writes; the base class knows how
to run it, how to tell Luigi that it is complete, and reports status and progress to the
scheduler UI.

Failure policy per kind (Luigi retries a failed task `retry_count - 1` times, `[scheduler]
retry_delay` seconds apart, while the worker stays alive):
- land files, stage, model, check: `retry_count = 1`: a missing or bad file, a broken rule or a
  blocked quality gate fails the same way every time, so it is not retried;
- catalog API landing: the `[scheduler]` default (3 attempts, 5 minutes apart): an API 5xx is transient;
- publish and the fact preloads: `retry_count = 1`, because Luigi cannot tell a Postgres that is
  restarting from a value Postgres cannot store. They retry inside the task only what can heal
  (`pipeline.serving.retry`: unreachable or starting server, lock timeout, serialization failure,
  deadlock; [publish] attempts and backoff) and fail at once, with the reason, on anything else.
Each kind is killed after its `[task_timeouts]` seconds (`worker_timeout`).

Every execution of a task is recorded by the run audit (`pipeline.tasks.run_audit`), from Luigi's event
handlers installed at the bottom of this module.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

import luigi
import psycopg

from pipeline import config, lake

from pipeline.ingest import incoming, landing

from pipeline.serving import retry as pg_retry

from pipeline.tasks import run_audit

logger = logging.getLogger(__name__)


class task_timeouts(luigi.Config):  # noqa: N801 - luigi maps the class name to the [task_timeouts] section
    """[task_timeouts]: seconds a task of each kind may run before its worker kills it (0 = no limit)."""

    land = luigi.IntParameter(default=600)
    catalog = luigi.IntParameter(default=300)
    stage = luigi.IntParameter(default=900)
    model = luigi.IntParameter(default=900)
    check = luigi.IntParameter(default=900)
    publish = luigi.IntParameter(default=1800)


class ManifestUnreadable(Exception):
    """A raw partition's _manifest.json (its completion marker) cannot be read."""


postgres_unreachable = pg_retry.postgres_unreachable  # connection error that can heal (see pg_retry)


class LakeTarget(luigi.Target):
    """A lake file as a task's output: local or on object storage alike (see `pipeline.lake`)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def exists(self) -> bool:
        return lake.exists(self.path)


class DateParameter(luigi.DateParameter):
    """A date parameter that rejects anything but YYYY-MM-DD before it reaches a path or SQL."""

    def parse(self, s: str) -> dt.date:
        try:
            return lake.parse_date(s)
        except ValueError as err:
            raise ValueError(f"--date {s!r} is not a valid date: expected YYYY-MM-DD, e.g. 2025-12-15 ({err})") from None


class PipelineTask(luigi.Task):
    """A task for one load date; reports what it did to the scheduler and the run audit."""

    date: dt.date = DateParameter()

    #: the [task_timeouts] option that bounds this kind (None: the [worker] timeout)
    timeout_kind: str | None = None

    #: what the run audit records as rows in/out (set by run())
    rows_in: int | None = None
    rows_out: int | None = None

    #: among one date's ready tasks, higher runs first (see `priority`)
    date_rank: int = 0

    @property
    def priority(self) -> int:  # type: ignore[override] - luigi reads it per instance
        """Earlier dates first (a backfill publishes in date order); within a date, by `date_rank`.

        Ranks (pipeline.tasks): the events chain, the date's longest, first (land 6, stage 5, fact
        2); then the orders chain (land 4, stage 3, fact 2), which runs beside it; then the small
        catalog and dimension tasks. Luigi's scheduler runs the ready task of highest priority and
        raises a task's dependencies to its priority (so the products catalog, which the facts read,
        gets 2, and a date's order also holds for the catalog snapshots it needs). Orders beside
        events is also the memory plan: landing orders while the events are staged would hold two
        large DuckDB working sets at once. Measured on a 100K/1M day: the events chain no longer
        waits ~0.2 s behind the catalogs.
        """
        return -10 * self.date.toordinal() + self.date_rank

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        run_audit.note_scheduled(self.date)

    @property
    def worker_timeout(self) -> int | None:  # type: ignore[override] - luigi reads it per instance
        if self.timeout_kind is None:
            return None
        return int(getattr(task_timeouts(), self.timeout_kind))  # 0: no limit

    def report(self, message: str, percent: int | None = None) -> None:
        """Show a status line (and progress) in the scheduler UI and the log."""
        logger.info("%s: %s", self.task_id, message)
        self.status(message, percent)

    def status(self, message: str, percent: int | None = None) -> None:
        """Show a status line (and progress) in the scheduler UI only (the caller logged it)."""
        try:
            self.set_status_message(message)
            if percent is not None:
                self.set_progress_percentage(percent)
        except Exception:  # noqa: BLE001 - the UI is best effort; never fail a task for it
            logger.debug("could not report status for %s", self.task_id, exc_info=True)


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
        manifest = read_manifest(self.source, self.date)
        # A changed source (or files added beside it) makes the task incomplete so that run() refuses it loudly.
        return manifest is not None and landing.source_drift(self.source, self.date) is None

    def land(self) -> dict[str, Any]:
        raise NotImplementedError

    def run(self) -> None:
        self.report(f"landing {self.source}", 0)
        manifest = self.land()
        self.rows_in, self.rows_out = manifest.get("source_records"), manifest["rows"]
        rejected = manifest.get("rejected_count")
        self.report(f"landed {manifest['rows']} {self.source} rows"
                    + (f" ({rejected} unreadable records rejected)" if rejected else ""), 100)


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


def read_manifest(table: str, day: dt.date) -> dict[str, Any] | None:
    """A raw partition's manifest; an unreadable one fails scheduling with what to do about it."""
    try:
        return landing.read_manifest(table, day)
    except (ValueError, OSError) as err:  # json.JSONDecodeError is a ValueError
        path = landing.manifest_path(table, day)
        raise ManifestUnreadable(
            f"{path} cannot be read ({err}); it is written atomically, so something else changed it: remove"
            f" {lake.partition_dir('raw', table, day)} and run the date again to re-land it"
        ) from err


class CatalogLandTask(PipelineTask):
    """Lands the weekly catalog snapshot (products or users) that covers a date, if any.

    Retried per [scheduler] (an API 5xx or timeout is transient).
    """

    source: str = ""
    timeout_kind = "catalog"

    def complete(self) -> bool:
        snapshot = landing.covering_snapshot(self.source, self.date)
        if snapshot is None:
            return True  # nothing covers this date yet: facts point at inferred members
        manifest = read_manifest(self.source, snapshot)
        return manifest is not None and landing.source_unchanged(manifest)

    def run(self) -> None:
        self.report(f"landing the {self.source} snapshot", 0)
        manifest = landing.land_catalog(self.source, self.date)
        self.rows_out = manifest["rows"] if manifest else 0
        self.report(f"landed {self.rows_out} {self.source} rows", 100)


def catalog_snapshot_dates(kind: str, day: dt.date) -> list[dt.date]:
    """Every snapshot date of a catalog on or before `day`: landed ones, incoming files, and the covering one.

    The warehouse models that read a catalog's history refuse to build while a landed snapshot on
    or before their date is not staged (see warehouse._snapshots_through), so in a backfill a date
    must wait for the staging of every earlier snapshot, not only its own.
    """
    import glob
    import re

    from pipeline import config

    from pipeline.transform import warehouse

    dates = {d for d in warehouse.partition_dates("raw", kind) if d <= day}
    if not landing.catalog_url(kind):
        for path in glob.glob(os.path.join(config.data_dir(), kind, f"{kind}_*.json")):
            match = re.fullmatch(rf"{kind}_(\d{{4}}-\d{{2}}-\d{{2}})\.json", os.path.basename(path))
            if match and dt.date.fromisoformat(match.group(1)) <= day:
                dates.add(dt.date.fromisoformat(match.group(1)))
    covering = landing.covering_snapshot(kind, day)
    if covering is not None:
        dates.add(covering)
    return sorted(dates)


def partition_exists(layer: str, table: str, date: dt.date, **keys: str) -> bool:
    """Whether a partition file is in place (partitions appear whole or not at all)."""
    return lake.exists(lake.partition_file(layer, table, date, **keys))


class StageTask(PipelineTask):
    """Stages one source for a date (output: the staging partition, written last).

    Staging failures are bad data or a broken rule, never transient: no Luigi retry.
    """

    source: str = ""
    retry_count = 1
    timeout_kind = "stage"

    def output(self) -> LakeTarget:
        return LakeTarget(lake.partition_file("staging", f"stg_{self.source}", self.date))

    def run(self) -> None:
        from pipeline.transform import staging

        self.report(f"staging {self.source}", 0)
        counts = staging.stage(self.source, self.date) or {}
        self.rows_in, self.rows_out = counts.get("raw_count"), counts.get("staged_count")
        self.report(f"staged {self.rows_out} of {self.rows_in} {self.source} rows "
                    f"({counts.get('quarantined_count', 0)} quarantined)", 100)


class CatalogStageTask(StageTask):
    """Stages the catalog snapshot covering a date, if there is one (keyed by snapshot date)."""

    def snapshot(self) -> dt.date | None:
        return landing.covering_snapshot(self.source, self.date)

    def complete(self) -> bool:
        snapshot = self.snapshot()
        return snapshot is None or partition_exists("staging", f"stg_{self.source}", snapshot)

    def run(self) -> None:
        from pipeline.transform import staging

        snapshot = self.snapshot()
        if snapshot is None:
            return
        self.report(f"staging the {self.source} snapshot of {snapshot}", 0)
        counts = staging.stage(self.source, snapshot) or {}
        self.rows_in, self.rows_out = counts.get("raw_count"), counts.get("staged_count")
        self.report(f"staged {self.rows_out} {self.source} rows", 100)


class ModelTask(PipelineTask):
    """Builds one warehouse table's partition for a date from that date's staging partitions."""

    table: str = ""
    retry_count = 1
    timeout_kind = "model"

    def output(self) -> LakeTarget:
        return LakeTarget(lake.partition_file("warehouse", self.table, self.date))

    def run(self) -> None:
        from pipeline.transform import warehouse

        self.report(f"building {self.table}", 0)
        self.rows_out = warehouse.build(self.table, self.date)
        self.report(f"built {self.rows_out} {self.table} rows", 100)


class CheckTask(PipelineTask):
    """Runs the date's SodaCL quality gate (output: lake/audit/dq_results, complete when it passed).

    A blocked gate records its outcomes in Postgres (audit.dq_failures) and fails the task with
    every failed check and its value; bad data is not retried.
    """

    retry_count = 1
    timeout_kind = "check"

    def complete(self) -> bool:
        from pipeline.quality import gate as checks

        return checks.gate_passed(self.date)

    def run(self) -> None:
        from pipeline.quality import gate as checks
        from pipeline.serving import publish

        self.report("running the quality gate", 0)
        result = checks.run_gate(self.date)
        self.rows_out = len(result.results)
        self.report(f"{len(result.results)} checks run: {result.passed} passed, {result.warned} warned,"
                    f" {result.failed} failed, {result.errored} errored", 100)
        if result.blocked:
            try:
                publish.publish_audit_only(self.date, checks.dq_failure_rows(result))
            except Exception as err:  # noqa: BLE001 - the blocked gate is the error to report
                logger.warning("could not record the blocked gate of %s in Postgres (%s); the outcomes are in %s",
                               self.date, err, lake.partition_file("audit", "dq_results", self.date))
            result.raise_if_blocked()


class PreloadTask(PipelineTask):
    """Copies and indexes one fact partition of a date in Postgres, unseen by BI, while the gate runs.

    Complete when Postgres holds a preload of the date, or once the date is published: the
    publish consumes the preload, and Luigi checks a task's requirements again just before running
    it, so a second run's Publish must still find them complete (it then finds the date published
    and does nothing). Any preload counts, not only one read from the lake file's current version:
    a concurrent run of the date may rebuild the partition (same rows, a new file) between this
    task and the Publish task's check, which must not then fail. Publish takes a preload only if it
    was read from the current file (see `publish.publish`) and otherwise copies inline and drops
    it, so a stale preload costs time, never correctness. Retried like publish: inside the task,
    transient Postgres errors only (see the module doc).
    """

    table: str = ""
    retry_count = 1
    timeout_kind = "publish"

    def complete(self) -> bool:
        from pipeline.serving import publish

        try:
            return publish.is_preloaded(self.table, self.date, current=False) or publish.is_published(self.date)
        except psycopg.OperationalError as err:
            if not postgres_unreachable(err):
                raise
            logger.warning("Postgres is unreachable (%s): %s of %s counts as not preloaded",
                           str(err).strip(), self.table, self.date)
            return False

    def run(self) -> None:
        from pipeline.serving import publish

        self.report(f"copying {self.table} into Postgres (not visible until published)", 0)
        loaded = pg_retry.call(lambda: publish.preload(self.table, self.date),
                               f"preloading {self.table} of {self.date}", notify=self.status)
        self.rows_out = loaded["rows"]
        self.report(f"preloaded {self.rows_out} {self.table} rows", 100)


class SourcesUnchangedTask(PipelineTask):
    """The date's landed incoming files are still the ones in the data folder (no output: checked each run).

    A requirement of the publish: complete while no landed daily source changed (cheap: a manifest
    read and a stat per source); otherwise it fails at once with SourceChanged and what to do, so a
    corrected or completed file is never ignored, before publish or after it. Not retried.
    """

    retry_count = 1
    timeout_kind = "land"

    def complete(self) -> bool:
        return not landing.changed_sources(self.date)

    def run(self) -> None:
        from pipeline.serving import publish

        changed = landing.changed_sources(self.date)
        if not changed:
            return
        try:
            published = publish.is_published(self.date)
        except psycopg.OperationalError:
            published = False
        raise landing.SourceChanged(" ".join(landing.changed_message(source, self.date, reason, published=published)
                                             for source, reason in changed.items()))


class PublishTask(PipelineTask):
    """Publishes the date to the serving Postgres in one transaction, then reconciles it.

    Complete when audit.publish_log has the date (written in the same transaction as the data).
    Transient Postgres failures are retried inside the task (see the module doc); anything else
    fails at once. Two processes publishing the same date (two local schedulers, or a backfill
    overlapping a single-date run) serialise on the date's pipeline lock; the second finds the date
    published and does nothing. The date's
    daily_metrics.runtime_seconds is set from the run audit in the publish transaction (see
    `run_audit.date_runtime`).
    """

    force = luigi.BoolParameter(default=False, significant=False,
                                description="replace a published non-empty date even with an empty one")
    retry_count = 1
    timeout_kind = "publish"
    audit_sync_on_success = True  # the date's run audit goes to Postgres in one batch when it is published

    def complete(self) -> bool:
        from pipeline.serving import publish

        try:
            published = publish.is_published(self.date)
        except psycopg.OperationalError as err:
            if not postgres_unreachable(err):
                raise
            # Unreachable now: let the task run, fail and be retried (as transient) instead of
            # failing the whole schedule.
            logger.warning("Postgres is unreachable (%s): %s counts as not published", str(err).strip(), self.date)
            return False
        # Published from files that changed since (the SourcesUnchanged requirement then fails), or
        # restated: not complete.
        return published and still_current(self.date)

    def run(self) -> None:
        from pipeline.quality import gate as checks
        from pipeline.serving import publish
        from pipeline.tasks import restate

        restating = restate.pending(self.date)
        force = self.force or restating  # a restatement replaces the date whatever it holds now
        gate = checks.load_results(self.date)
        audit_rows = checks.dq_failure_rows(gate) if gate is not None else []
        self.report("publishing to Postgres", 10)
        # unless_published: a concurrent run may publish the date while this one waits for its lock
        summary = pg_retry.call(
            lambda: publish.publish(self.date, force=force, audit_rows=audit_rows, run_id=run_audit.run_id(),
                                    runtime=lambda: run_audit.date_runtime(self.date, current=self),
                                    unless_published=not force),
            f"publishing {self.date}", notify=self.status)
        if summary["skipped"]:
            self.rows_out = 0
            self.report(f"{self.date} was published meanwhile by another run: nothing to do", 100)
            return
        self.rows_out = summary.get("fact_orders_rows", 0) + summary.get("fact_events_rows", 0)
        self.report(f"published {self.rows_out} fact rows; reconciling", 80)
        if restating:
            restate.mark_published(self.date)
        checks.reconcile_serving(self.date)
        self.report(f"published and reconciled {self.rows_out} fact rows", 100)


def still_current(day: dt.date) -> bool:
    """Whether a published date still stands for its incoming files: none changed since landing, no restatement pending.

    Cheap when nothing changed: a manifest read and a stat per daily source (sha256 only when the
    size or mtime differs).
    """
    from pipeline.tasks import restate

    return not landing.changed_sources(day) and not restate.pending(day)


def published_dates(days: list[dt.date]) -> set[dt.date]:
    """Which of the dates audit.publish_log has, in one query (see `current_published_dates` for the bulk complete)."""
    from pipeline.serving import pg

    if not days:
        return set()
    try:
        with pg.connect() as conn:
            if not conn.execute("select to_regclass('audit.publish_log') is not null").fetchone()[0]:
                return set()
            rows = conn.execute("select load_date from audit.publish_log where load_date = any(%s)", [days]).fetchall()
    except psycopg.OperationalError as err:
        if not postgres_unreachable(err):
            raise
        logger.warning("Postgres is unreachable (%s): no date counts as published", str(err).strip())
        return set()
    return {row[0] for row in rows}


def current_published_dates(days: list[dt.date]) -> set[dt.date]:
    """The bulk form of PublishTask.complete: published dates whose incoming files did not change since."""
    return {day for day in published_dates(days) if still_current(day)}


def _stop_waiting(task: luigi.Task, *args: Any) -> None:
    """A task's complete() or requires() raised while scheduling: let the worker exit when idle.

    Luigi marks such a task UNKNOWN, never DISABLED, so a keep-alive worker would wait forever for
    the tasks that depend on it. Turning keep-alive off (as Luigi's own SIGUSR1 phase-out does)
    lets the run finish what it can and exit with [retcode] scheduling_error; it also means no
    retries in that run.
    """
    import luigi.worker

    settings = luigi.worker.worker()  # the instance the running Worker holds (Luigi caches it)
    if settings.keep_alive:
        logger.warning("scheduling %s failed: the worker will exit once nothing is running (no retries)", task)
        settings.keep_alive = False


PipelineTask.event_handler(luigi.Event.DEPENDENCY_MISSING)(_stop_waiting)
PipelineTask.event_handler(luigi.Event.BROKEN_TASK)(_stop_waiting)
run_audit.install(PipelineTask)
