"""Serving tasks: the date's facts preloaded into Postgres beside the gate, then published in one transaction.

`DailyPipeline` (the daily command) is the whole date: complete once its publish committed and its
incoming files are still the ones it was built from.
"""
from __future__ import annotations

import configparser
import datetime as dt
import logging
import os
from collections.abc import Iterable

import luigi
import luigi.configuration
import psycopg
from luigi.cmdline_parser import CmdlineParser

from pipeline import config, lake, read_once
from pipeline.ingest import landing
from pipeline.quality import gate
from pipeline.serving import retry as pg_retry
from pipeline.tasks import catalog_cover, land, late_catalogs, restatements, run_audit
from pipeline.tasks.base import PipelineTask, running_task
from pipeline.tasks.check import QualityGate
from pipeline.tasks.model import BuildFactEvents, BuildFactOrders
from pipeline.tasks.stage import StageEvents

logger = logging.getLogger(__name__)


class PreloadTask(PipelineTask):
    """Copies and indexes one fact partition of a date in Postgres, unseen by BI, while the gate runs.

    Complete when Postgres holds a preload of the date, or once the date is published: the
    publish consumes the preload, and Luigi checks a task's requirements again just before running
    it, so a second run's Publish must still find them complete (it then finds the date published
    and writes nothing). Any preload counts, not only one read from the lake file's current version:
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
        from pipeline.serving import preload, publish

        # Postgres unreachable: not preloaded, so that the preload runs and retries; but when Luigi asks
        # in the date's Publish process, just before run(), a False would fail the Publish at once
        # ("Unfulfilled dependencies at run time"), without its own retries. Publish does not need the
        # preload (it copies the fact itself when none is usable), so there it counts as done.
        before_publish = _in_publish_process(self.date)
        return pg_retry.unless_unreachable(
            lambda: preload.is_preloaded(self.table, self.date, current=False) or publish.is_published(self.date),
            before_publish, f"{self.table} of {self.date} counts as "
            + ("preloaded: the publish copies it itself, once Postgres answers" if before_publish else "not preloaded"))

    def run(self) -> None:
        from pipeline.serving import preload, publish

        seen = restatements.read_record(self.date)
        self.report(f"copying {self.table} into Postgres (not visible until published)", 0)
        try:
            loaded = pg_retry.call(lambda: preload.preload(self.table, self.date),
                                   f"preloading {self.table} of {self.date}", notify=self.status)
        except publish.LakePartitionMissing as err:
            # a restatement removed the date's build: its command is the remedy, not a run of the date
            if why := restatements.superseded(self.date, seen):
                raise publish.BuildSuperseded(why) from err
            raise
        self.rows_out = loaded["rows"]
        self.report(f"preloaded {self.rows_out} {self.table} rows", 100)


def _in_publish_process(day: dt.date) -> bool:
    """Whether this is the process Luigi forked to run the date's Publish (it checks the requirements first)."""
    task = running_task()
    return isinstance(task, PublishTask) and task.date == day


class SourcesUnchanged(PipelineTask):
    """The date's landed incoming files are still the ones in the data folder (no output: checked each run).

    A requirement of the publish: complete while no landed daily source changed, nor the file of a
    catalog snapshot covering the date (cheap: a manifest read and a stat per source), and no snapshot
    covering the built date arrived after its build (`late_catalogs`: one small Parquet read);
    otherwise it fails at once with SourceChanged (or CatalogArrivedLate) and what to do, so a
    corrected, completed or late file is never ignored, before publish or after it. Not retried.
    """

    retry_count = 1
    timeout_kind = "land"

    def complete(self) -> bool:
        # In the date's Publish process, where Luigi checks the requirements again just before run(), a file
        # changed or a snapshot that arrived during the run would fail the Publish as "Unfulfilled dependency at
        # run time", which says neither what changed nor what to do: Publish.run checks it first, with the words.
        return land.checked_by_another_task(self) or sources_unchanged(self.date)

    def run(self) -> None:
        check_sources_unchanged(self.date)


def sources_unchanged(day: dt.date) -> bool:
    """Whether the date's landed daily sources and the catalog snapshots covering it are still the ones landed."""
    return (not landing.changed_sources(day) and not catalog_cover.changed_catalogs(day)
            and not late_catalogs.late_catalogs(day))


def check_sources_unchanged(day: dt.date) -> None:
    """SourceChanged (or CatalogArrivedLate), with what changed and what to do, unless `sources_unchanged(day)`."""
    from pipeline.serving import publish

    changed, catalogs = landing.changed_sources(day), catalog_cover.changed_catalogs(day)
    if not changed and not catalogs:
        if late := late_catalogs.late_catalogs(day):
            raise late_catalogs.CatalogArrivedLate(" ".join(late.values()))
        return
    try:
        published = publish.is_published(day)
    except psycopg.OperationalError:
        published = False
    messages = [landing.changed_message(source, day, reason, published=published) for source, reason in changed.items()]
    raise landing.SourceChanged(" ".join([*messages, *catalogs.values()]))


class PublishTask(PipelineTask):
    """Publishes the date to the serving Postgres in one transaction, then reconciles it.

    Complete when audit.publish_log has the date (written in the same transaction as the data) and
    its serving reconciliation passed since (`reconciled_at`, written after it).
    Transient Postgres failures are retried inside the task (see the module doc); anything else
    fails at once. Two processes publishing the same date (two local schedulers, or a backfill
    overlapping a single-date run) serialise on the date's pipeline lock; the second finds the date
    published, writes nothing, and still reconciles it: the first may have failed its reconciliation
    after its commit. The date's daily_metrics.runtime_seconds is set from the run audit in the
    publish transaction (see `run_audit.date_runtime`). Then closed, complete months are compacted
    ([compaction] closed_months, `pipeline.serving.compaction.after_publish`; never fails the task).
    """

    force = luigi.BoolParameter(default=False, significant=False,
                                description="replace a published non-empty date even with an empty one")
    retry_count = 1
    timeout_kind = "publish"
    audit_sync_on_success = True  # the date's run audit goes to Postgres in one batch when it is published

    def complete(self) -> bool:
        # Published from files that changed since (the SourcesUnchanged requirement then fails), or
        # restated: not complete. Postgres unreachable: not complete (see current_published_dates).
        return self.date in current_published_dates([self.date])

    def run(self) -> None:
        from pipeline.quality import gate, serving_reconciliation
        from pipeline.serving import compaction, publish

        check_sources_unchanged(self.date)  # SourcesUnchanged counts as complete in this process (see there)
        record = restatements.read_record(self.date)
        restating = restatements.is_pending(record)
        force = self.force or restating  # a restatement replaces the date whatever it holds now
        snapshots = restatements.restated_snapshots(self.date) if restating else {}
        results = gate.load_results(self.date)
        audit_rows = gate.dq_failure_rows(results) if results is not None else []
        self.report("publishing to Postgres", 10)
        # unless_published: a concurrent run may publish the date while this one waits for its lock
        summary = pg_retry.call(
            lambda: publish.publish(self.date, force=force, audit_rows=audit_rows, run_id=run_audit.run_id(),
                                    runtime=lambda: run_audit.date_runtime(self.date, current=self),
                                    unless_published=not force, restated_snapshots=snapshots,
                                    superseded=lambda: restatements.superseded(self.date, record)),
            f"publishing {self.date}", notify=self.status)
        self.serving_target = summary.get("serving_target")  # the run audit keeps where the date went (lost_database)
        if summary["skipped"]:
            # Reconciled all the same: the run that published may have failed in its reconciliation
            # after its commit, and this success must not stand for a date that does not match the lake.
            self.rows_out = 0
            self.report(f"{self.date} was published meanwhile by another run; reconciling", 80)
        else:
            self.rows_out = summary.get("fact_orders_rows", 0) + summary.get("fact_events_rows", 0)
            self.report(f"published {self.rows_out} fact rows; reconciling", 80)
            if restating:
                restatements.mark_published(self.date, record)
        publish_time = pg_retry.call(lambda: publish.published_at(self.date), f"reading the publish of {self.date}",
                                     notify=self.status)
        serving_reconciliation.reconcile_serving(self.date)
        if publish_time is not None:
            # the completion mark: a date whose reconciliation failed (or never ran) is reconciled by the next run
            pg_retry.call(lambda: publish.mark_reconciled(self.date, publish_time),
                          f"recording the reconciliation of {self.date}", notify=self.status)
        # closed months into one partition per fact ([compaction] closed_months); it never fails the publish
        compaction.after_publish()
        self.report(f"published by another run; reconciled {self.date}" if summary["skipped"]
                    else f"published and reconciled {self.rows_out} fact rows", 100)


def still_current(day: dt.date) -> bool:
    """Whether a published date still stands for its incoming files: none changed since landing, no restatement
    pending, no catalog snapshot covering it arrived after its build.

    Cheap when nothing changed: a manifest read and a stat per daily source and per catalog snapshot
    covering the date (sha256 only when the size or mtime differs), and the two snapshot dates of its
    daily_metrics partition.
    """
    return sources_unchanged(day) and not restatements.pending(day)


def current_published_dates(days: list[dt.date]) -> set[dt.date]:
    """The bulk form of PublishTask.complete: published and reconciled dates whose incoming files did not change since."""
    from pipeline.serving import publish

    reconciled = pg_retry.unless_unreachable(lambda: publish.reconciled_dates(days), set(),
                                             "no date counts as published")
    lake.check_built_here(published_anywhere)
    return still_current_dates(reconciled)


@read_once.scoped_over  # over `days`: a few dates' folders are read a date at a time
def still_current_dates(days: Iterable[dt.date]) -> set[dt.date]:
    """The dates among `days` that are `still_current`, in one look at the lake: the catalog folders, the landed
    snapshots, the restatement records are listed once and each snapshot's file checked once, not once a date (a
    no-op backfill over a long history spent most of its time listing them again for every date)."""
    return {day for day in days if still_current(day)}


def published_anywhere() -> set[dt.date]:
    """Every date the serving Postgres publishes (none when it does not answer: the run says so as it goes)."""
    from pipeline.serving import pg, publish

    def read() -> set[dt.date]:
        with pg.connect() as conn:
            return publish.published_dates_in(conn) if pg.has_table(conn, "audit.publish_log") else set()

    return pg_retry.unless_unreachable(read, set(), "a missing lake folder is not checked against Postgres")


class PreloadFactOrders(PreloadTask):
    """preload.fact_orders_all_YYYYMMDD_<token>: the date's fact_orders copied and indexed, not yet visible."""

    table = "fact_orders"
    date_rank = 1

    def requires(self) -> list[luigi.Task]:
        # Also after the events' staging, the date's largest working set: a 500K-order preload beside
        # it took the max day's peak RSS from 1.25-1.43 to 1.42-1.53 GiB, and after it the day is
        # no slower (7.6-7.9 s either way; the CPUs are busy with the events chain in both cases).
        return [BuildFactOrders(date=self.date), StageEvents(date=self.date)]


class PreloadFactEvents(PreloadTask):
    """preload.fact_events_all_YYYYMMDD_<token>: the date's fact_events copied and indexed, not yet visible."""

    table = "fact_events"
    date_rank = 2

    def requires(self) -> luigi.Task:
        return BuildFactEvents(date=self.date)


class Publish(PublishTask):
    """The date in the serving Postgres: facts, dimensions, daily_metrics and audit rows."""

    def requires(self) -> list[luigi.Task]:
        # the facts' COPY and index builds (most of a publish) run beside the gate, as preloads
        return [QualityGate(date=self.date), PreloadFactOrders(date=self.date), PreloadFactEvents(date=self.date),
                SourcesUnchanged(date=self.date)]


def _settings_now() -> tuple[object, ...]:
    """What the settings are read from: the files' sections and options as Luigi holds them, the environment and the
    command line (its parser, compared by identity)."""
    conf = luigi.configuration.get_config()
    files = tuple((section, tuple(conf.items(section, raw=True))) for section in conf.sections()) if isinstance(
        conf, configparser.ConfigParser) else conf
    return files, tuple(sorted(os.environ.items())), CmdlineParser.get_instance()


_SETTLED: set[tuple[object, ...]] = set()  # settings check_settings found usable in this process


def check_settings() -> None:
    """Refuse now, before any task runs, every setting a date's tasks would refuse (BadSetting: one line, exit 35).
    Checked once per process and settings (a backfill's every date asks: ~20 ms each).

    Each is found by the validator its tasks call as they run, so a rule is stated once: a value in a
    file no section can read, a section or option name nothing reads, a value no task could use
    (`pipeline.setting_values`), [checks] thresholds that contradict each other or a checks_dir without the
    gate's files, [model] values staging
    and the models cannot use (found mid-run, they failed every model task once the day was landed and
    staged), a [duckdb] memory_limit DuckDB cannot read or a negative thread count.
    """
    from pipeline import setting_names, setting_values
    from pipeline.lake import sqlrun
    from pipeline.transform import staging

    if (now := _settings_now()) in _SETTLED:
        return
    if unknown := setting_names.unknown_setting():  # a misspelled name: its default would be used silently
        raise config.BadSetting(unknown)
    config.read_sections()
    setting_values.check_values()
    gate.check_settings()
    for rule in (staging.business_timezone, staging.max_id_length, staging.sold_statuses, staging.hours_and_days):
        rule()
    sqlrun.check_settings()
    _SETTLED.add(now)


class DailyPipeline(luigi.WrapperTask, PipelineTask):
    """The whole date: land -> stage -> model -> check (beside it: preload) -> publish; complete when published."""

    force = luigi.BoolParameter(default=False, significant=False)
    check_settings = staticmethod(check_settings)  # RangeDaily asks it too, even of a range already published

    def requires(self) -> luigi.Task:
        check_settings()
        lake.check_built_here(published_anywhere)  # no lake folder, and Postgres publishes: the wrong folder is named
        publish = Publish(date=self.date, force=self.force)
        # a folder lake this user may not write: one line now, not every task failing; but a published date writes
        # nothing (forced too: Publish is complete), so a read-only lake may run it. The cheap check first: Postgres
        # is asked only of a lake that may not be written
        if (refusal := lake.why_not_writable()) and not publish.complete():
            raise lake.LakeNotWritable(refusal)
        return publish

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable[dt.date]) -> list[dt.date]:
        """The published dates among the given ones whose files did not change since (RangeDaily asks this).

        One query for the publish state; a changed source or a pending restatement makes a date
        incomplete, and its Publish then refuses or republishes it. `cls` is a functools.partial when
        RangeDaily calls it, so nothing here is class-specific.
        """
        days = list(parameter_tuples)
        done = current_published_dates(days)
        return [day for day in days if day in done]
