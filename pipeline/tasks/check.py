"""The quality gate task: the date's SodaCL checks (`checks/`, `pipeline.quality.gate`) before anything is published."""
from __future__ import annotations

import datetime as dt
import logging
import os

import luigi

from pipeline import config, lake
from pipeline.ingest import incoming, landing
from pipeline.quality.gate import checks  # at import: luigi's command line then knows --checks-*
from pipeline.tasks.base import PipelineTask
from pipeline.tasks.marts import MART_TASKS
from pipeline.tasks.model import MODEL_TASKS
from pipeline.tasks.stage import STAGE_TASKS, StageEvents, StageOrders

logger = logging.getLogger(__name__)


class CheckTask(PipelineTask):
    """Runs the date's SodaCL quality gate (output: lake/audit/dq_results, complete when it passed).

    A blocked gate records its outcomes in Postgres (audit.dq_failures; audit.dq_failure_log keeps
    every gate run's) and fails the task with every failed check and its value; bad data is not retried.
    """

    retry_count = 1
    timeout_kind = "check"

    def complete(self) -> bool:
        from pipeline.quality import gate

        return gate.gate_passed(self.date)

    def run(self) -> None:
        from pipeline.quality import gate
        from pipeline.serving import publish
        from pipeline.tasks import run_audit

        self.report("running the quality gate", 0)
        result = gate.run_gate(self.date, run_id=run_audit.run_id())
        self.rows_out = len(result.results)
        self.report(f"{len(result.results)} checks run: {result.passed} passed, {result.warned} warned,"
                    f" {result.failed} failed, {result.errored} errored", 100)
        if result.blocked:
            try:
                publish.publish_audit_only(self.date, gate.dq_failure_rows(result), run_id=result.run_id)
            except Exception as err:  # noqa: BLE001 - the blocked gate is the error to report
                logger.warning("could not record the blocked gate of %s in Postgres (%s); the outcomes are in %s",
                               self.date, err, lake.partition_file("audit", "dq_results", self.date))
            result.raise_if_blocked()


def _date_in(name: str) -> dt.date | None:
    try:
        return lake.parse_date(name)
    except ValueError:
        return None


def _partition_dates(layer: str, table: str, leaf: str) -> set[dt.date]:
    """The load dates of a table's partitions that hold `leaf` (a file, or folders/file below load_date=)."""
    pattern = os.path.join(lake.table_dir(layer, table), "load_date=*", leaf)
    dates = set()
    for path in lake.files_matching(pattern):
        folder = next((p for p in path.replace("\\", "/").split("/") if p.startswith("load_date=")), "")
        if (day := _date_in(folder.removeprefix("load_date="))) is not None:
            dates.add(day)
    return dates


def volume_history(day: dt.date, window: int) -> list[tuple[str, dt.date]]:
    """The (source, earlier date) stagings the volume check of `day` must wait for.

    The check (checks/audit/source_volume.yml) compares a date with the latest `window` earlier
    load dates that have a reconciliation record, as the lake holds them when its gate runs. In a
    backfill with several workers an earlier date may not be staged yet, so the verdict would depend
    on the run order. So per daily source the gate requires the staging of the latest `window`
    earlier dates that have, or will have, a reconciliation record (an incoming folder, a landed raw
    partition or a reconciliation partition) and whose staging partition is not in place yet. A date
    already staged needs nothing (its reconciliation is written before its staging partition, so a
    staging killed in between is finished first); a date whose file cannot be landed fails its own
    task and holds this gate back, instead of silently leaving the history.
    """
    needed = []
    for source in incoming.DAILY_SOURCES:
        try:
            folders = {d for name in os.listdir(os.path.join(config.data_dir(), source)) if (d := _date_in(name))}
        except FileNotFoundError:
            folders = set()
        reconciled = _partition_dates("audit", "reconciliation", os.path.join(f"source_table=stg_{source}", lake.DATA_FILE))
        known = folders | _partition_dates("raw", source, landing.MANIFEST) | reconciled
        staged = _partition_dates("staging", f"stg_{source}", lake.DATA_FILE)
        latest = sorted((d for d in known if d < day), reverse=True)[:window]
        needed += [(source, d) for d in latest if d not in staged]
    return needed


class QualityGate(CheckTask):
    """lake/audit/dq_results for one date: one row per SodaCL check; complete when nothing failed."""

    def requires(self) -> list[luigi.Task]:

        # the tasks themselves rather than the StageDaily/BuildWarehouse wrappers: one process less
        # to fork on the critical path; and the earlier dates the volume check compares with
        staging_of = {"orders": StageOrders, "events": StageEvents}
        history = volume_history(self.date, int(checks().volume_window))
        return [*(task(date=self.date) for task in MODEL_TASKS.values()),
                *(task(date=self.date) for task in MART_TASKS.values()),
                *(stage(date=self.date) for stage in STAGE_TASKS),
                *(staging_of[source](date=day) for source, day in history)]
