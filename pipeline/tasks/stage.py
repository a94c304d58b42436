"""Staging tasks: a date's raw partitions become typed staging rows, quarantine and reconciliation.

The SQL is `sql/staging/`; the mechanics `pipeline.transform.staging`.
"""
from __future__ import annotations

import datetime as dt

import luigi

from pipeline import lake
from pipeline.tasks.base import LakeTarget, PipelineTask
from pipeline.tasks.catalog_cover import covering_snapshot
from pipeline.tasks.land import LAND_TASKS, LandEvents, LandOrders, snapshot_task


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

    date_rank = 2  # beside the events' staging, not after the marts: see PipelineTask.priority

    def snapshot(self) -> dt.date | None:
        return covering_snapshot(self.source, self.date)

    def complete(self) -> bool:
        snapshot = self.snapshot()
        return snapshot is None or partition_exists("staging", f"stg_{self.source}", snapshot)

    def requires(self) -> list[luigi.Task]:
        land = [task(date=self.date) for task in LAND_TASKS if task.source == self.source]
        return land + snapshot_task(self, self.snapshot())  # staged by its own date's task, as it is landed

    def run(self) -> None:
        from pipeline.transform import staging

        snapshot = self.snapshot()
        if snapshot is None or partition_exists("staging", f"stg_{self.source}", snapshot):
            return  # no snapshot yet, or staged by its own date's task
        self.report(f"staging the {self.source} snapshot of {snapshot}", 0)
        counts = staging.stage(self.source, snapshot) or {}
        self.rows_in, self.rows_out = counts.get("raw_count"), counts.get("staged_count")
        self.report(f"staged {self.rows_out} {self.source} rows", 100)


class StageOrders(StageTask):
    """staging/stg_orders for one date: one row per valid, deduplicated order (one line each)."""

    source = "orders"
    date_rank = 3

    def requires(self) -> luigi.Task:
        return LandOrders(date=self.date)


class StageEvents(StageTask):
    """staging/stg_events for one date: one row per valid, deduplicated event."""

    source = "events"
    date_rank = 5

    def requires(self) -> luigi.Task:
        return LandEvents(date=self.date)


class StageProducts(CatalogStageTask):
    """staging/stg_products for the snapshot covering a date: one row per product."""

    source = "products"


class StageUsers(CatalogStageTask):
    """staging/stg_users for the snapshot covering a date: one row per user."""

    source = "users"


STAGE_TASKS: tuple[type[StageTask], ...] = (StageOrders, StageEvents, StageProducts, StageUsers)


class StageDaily(luigi.WrapperTask, PipelineTask):
    """Every staging partition of one date."""

    def requires(self) -> list[luigi.Task]:
        return [task(date=self.date) for task in STAGE_TASKS]
