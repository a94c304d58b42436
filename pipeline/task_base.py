"""The mechanics behind every Luigi task, one base class per kind, so tasks stay thin.

A task declares its `date`, what it requires and which table it writes; the base class knows how
to run it, how to tell Luigi that it is complete, and reports status and progress to the
scheduler UI.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

import luigi

from pipeline import lake, landing

logger = logging.getLogger(__name__)


class DateParameter(luigi.DateParameter):
    """A date parameter that rejects anything but YYYY-MM-DD before it reaches a path or SQL."""

    def parse(self, s: str) -> dt.date:
        return lake.parse_date(s)


class PipelineTask(luigi.Task):
    """A task for one load date; reports what it did to the scheduler and the run audit."""

    date: dt.date = DateParameter()

    #: what the run audit records as rows in/out (set by run())
    rows_in: int | None = None
    rows_out: int | None = None

    def report(self, message: str, percent: int | None = None) -> None:
        """Show a status line (and progress) in the scheduler UI and the log."""
        logger.info("%s: %s", self.task_id, message)
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

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(landing.manifest_path(self.source, self.date))

    def complete(self) -> bool:
        manifest = landing.read_manifest(self.source, self.date)
        # A changed source makes the task incomplete so that run() refuses it loudly.
        return manifest is not None and landing.source_unchanged(manifest)

    def land(self) -> dict[str, Any]:
        raise NotImplementedError

    def run(self) -> None:
        self.report(f"landing {self.source}", 0)
        manifest = self.land()
        self.rows_out = manifest["rows"]
        self.report(f"landed {manifest['rows']} {self.source} rows", 100)


class CatalogLandTask(PipelineTask):
    """Lands the weekly catalog snapshot (products or users) that covers a date, if any."""

    source: str = ""

    def complete(self) -> bool:
        snapshot = landing.covering_snapshot(self.source, self.date)
        if snapshot is None:
            return True  # nothing covers this date yet: facts point at inferred members
        manifest = landing.read_manifest(self.source, snapshot)
        return manifest is not None and landing.source_unchanged(manifest)

    def run(self) -> None:
        self.report(f"landing the {self.source} snapshot", 0)
        manifest = landing.land_catalog(self.source, self.date)
        self.rows_out = manifest["rows"] if manifest else 0
        self.report(f"landed {self.rows_out} {self.source} rows", 100)


def partition_exists(layer: str, table: str, date: dt.date, **keys: str) -> bool:
    """Whether a partition file is in place (partitions appear whole or not at all)."""
    return os.path.exists(lake.partition_file(layer, table, date, **keys))


class StageTask(PipelineTask):
    """Stages one source for a date (output: the staging partition, written last).

    Staging failures are bad data or a broken rule, never transient: no Luigi retry.
    """

    source: str = ""
    retry_count = 1

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(lake.partition_file("staging", f"stg_{self.source}", self.date))

    def run(self) -> None:
        from pipeline import staging

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
        from pipeline import staging

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

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(lake.partition_file("warehouse", self.table, self.date))

    def run(self) -> None:
        from pipeline import warehouse

        self.report(f"building {self.table}", 0)
        self.rows_out = warehouse.build(self.table, self.date)
        self.report(f"built {self.rows_out} {self.table} rows", 100)


class CheckTask(PipelineTask):
    """Runs the date's SodaCL quality gate (output: lake/audit/dq_results, complete when it passed).

    A blocked gate records its outcomes in Postgres (audit.dq_failures) and fails the task with
    every failed check and its value; bad data is not retried.
    """

    retry_count = 1

    def complete(self) -> bool:
        from pipeline import checks

        return checks.gate_passed(self.date)

    def run(self) -> None:
        from pipeline import checks, publish

        self.report("running the quality gate", 0)
        result = checks.run_gate(self.date)
        self.report(f"checks: {result.passed} passed, {result.warned} warned, {result.failed} failed, "
                    f"{result.errored} errored", 100)
        if result.blocked:
            publish.publish_audit_only(self.date, checks.dq_failure_rows(result))
            result.raise_if_blocked()


class PublishTask(PipelineTask):
    """Publishes the date to the serving Postgres in one transaction, then reconciles it.

    Complete when audit.publish_log has the date (written in the same transaction as the data).
    Connection failures are transient and retried per luigi.cfg.
    """

    force = luigi.BoolParameter(default=False, significant=False,
                                description="replace a published non-empty date even with an empty one")

    def complete(self) -> bool:
        from pipeline import publish

        return publish.is_published(self.date)

    def run(self) -> None:
        from pipeline import checks, publish

        gate = checks.load_results(self.date)
        audit_rows = checks.dq_failure_rows(gate) if gate is not None else []
        self.report("publishing to Postgres", 10)
        summary = publish.publish(self.date, force=self.force, audit_rows=audit_rows)
        self.rows_out = summary.get("fact_orders_rows", 0) + summary.get("fact_events_rows", 0)
        self.report(f"published {self.rows_out} fact rows; reconciling", 80)
        checks.reconcile_serving(self.date)
        self.report(f"published and reconciled {self.rows_out} fact rows", 100)
