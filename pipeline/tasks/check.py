"""The quality gate task: the date's SodaCL checks (`checks/`, `pipeline.quality.gate`) before anything is published."""
from __future__ import annotations

import logging

import luigi

from pipeline import lake
from pipeline.tasks.base import PipelineTask
from pipeline.tasks.marts import MART_TASKS
from pipeline.tasks.model import MODEL_TASKS
from pipeline.tasks.stage import STAGE_TASKS

logger = logging.getLogger(__name__)


class CheckTask(PipelineTask):
    """Runs the date's SodaCL quality gate (output: lake/audit/dq_results, complete when it passed).

    A blocked gate records its outcomes in Postgres (audit.dq_failures) and fails the task with
    every failed check and its value; bad data is not retried.
    """

    retry_count = 1
    timeout_kind = "check"

    def complete(self) -> bool:
        from pipeline.quality import gate

        return gate.gate_passed(self.date)

    def run(self) -> None:
        from pipeline.quality import gate
        from pipeline.serving import publish

        self.report("running the quality gate", 0)
        result = gate.run_gate(self.date)
        self.rows_out = len(result.results)
        self.report(f"{len(result.results)} checks run: {result.passed} passed, {result.warned} warned,"
                    f" {result.failed} failed, {result.errored} errored", 100)
        if result.blocked:
            try:
                publish.publish_audit_only(self.date, gate.dq_failure_rows(result))
            except Exception as err:  # noqa: BLE001 - the blocked gate is the error to report
                logger.warning("could not record the blocked gate of %s in Postgres (%s); the outcomes are in %s",
                               self.date, err, lake.partition_file("audit", "dq_results", self.date))
            result.raise_if_blocked()


class QualityGate(CheckTask):
    """lake/audit/dq_results for one date: one row per SodaCL check; complete when nothing failed."""

    def requires(self) -> list[luigi.Task]:
        # the tasks themselves rather than the StageDaily/BuildWarehouse wrappers: one process less
        # to fork on the critical path
        return [*(task(date=self.date) for task in MODEL_TASKS.values()),
                *(task(date=self.date) for task in MART_TASKS.values()),
                *(stage(date=self.date) for stage in STAGE_TASKS)]
