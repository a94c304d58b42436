"""Warehouse tasks: one per star-schema table (`sql/warehouse/<table>.sql`), built from a date's partitions.

A date is built once its daily_metrics partition, the last its build writes, exists. Until then a run
may have built part of it: the partitions that need no daily file (dim_product_history), when the
date was run before its files arrived, or those of the file that did arrive. A products snapshot that
lands meanwhile (a catalog file delivered with the day's files) feeds the date, and the partial build
did not read it: such a partition, and every partition of the date built from it, is not complete, so
the next run rebuilds it from every snapshot. Otherwise the date's daily_metrics would record a history
without the snapshot, and the date would be taken for one built before its catalog arrived
(`late_catalogs`: CatalogArrivedLate, or its Publish failing as that appears in the middle of the run).
A built date keeps what it was built from: `python -m pipeline restate --catalog` rebuilds it.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import logging

import luigi

from pipeline import lake
from pipeline.tasks.base import LakeTarget, PipelineTask
from pipeline.tasks.land import LAND_TASKS, catalog_snapshot_dates
from pipeline.tasks.stage import STAGE_TASKS
from pipeline.transform import warehouse

logger = logging.getLogger(__name__)
BUILT_MARK = "daily_metrics"  # the last partition of a date's build: the date is built
HISTORY, HISTORY_INPUT = "dim_product_history", "stg_products_history"


class ModelTask(PipelineTask):
    """Builds one warehouse table's partition for a date from that date's staging partitions."""

    table: str = ""
    retry_count = 1
    timeout_kind = "model"

    def output(self) -> LakeTarget:
        return LakeTarget(lake.partition_file("warehouse", self.table, self.date))

    def complete(self) -> bool:
        if not self.output().exists():
            return False
        if self.table == BUILT_MARK or not reads_history(self.table):
            return True
        if lake.exists(lake.partition_file("warehouse", BUILT_MARK, self.date)):
            return True  # a built date keeps its catalog until restated (late_catalogs)
        unread = unread_products_snapshots(self.date)
        if unread:
            logger.info("warehouse %s of %s (not yet built) is rebuilt: its products history lacks the snapshot(s)"
                        " %s", self.table, self.date, ", ".join(map(str, unread)))
        return not unread

    def run(self) -> None:
        self.report(f"building {self.table}", 0)
        self.rows_out = warehouse.build(self.table, self.date)
        self.report(f"built {self.rows_out} {self.table} rows", 100)


class _DailyModel(ModelTask):
    def requires(self) -> list[luigi.Task]:
        # Exactly what this model reads (warehouse.inputs: derived from its SQL): the tasks of the date
        # that write those partitions, and, for a model reading a catalog, the staging of every earlier
        # snapshot of it (in a backfill those belong to other dates' tasks, which may not have run yet).
        # Not the whole StageDaily: fact_orders need not wait for the events.
        required: dict[luigi.Task, None] = {}
        for name in warehouse.inputs(self.table):
            spec = warehouse.lake_input(name)
            for task in writers(spec):
                required[task(date=self.date)] = None
                if spec.snapshots is not None:
                    for snapshot in catalog_snapshot_dates(task.source, self.date):
                        required[task(date=snapshot)] = None
        return list(required)


@functools.cache
def reads_history(table: str) -> bool:
    """Whether a warehouse table is dim_product_history or is built from it (directly or through another table)."""
    return table == HISTORY or any(name in warehouse.TABLES and reads_history(name) for name in warehouse.inputs(table))


def unread_products_snapshots(day: dt.date) -> list[dt.date]:
    """The products snapshots feeding the date (landed, delivered, covering it) that its built dim_product_history
    partition did not read; none when that partition is missing or predates the record."""
    try:
        read = warehouse.read_record(HISTORY, day).get(HISTORY_INPUT)
    except warehouse.InputPartitionMissing:
        return []
    if read is None:
        return []
    seen = {dt.date.fromisoformat(snapshot) for snapshot in json.loads(read)}
    return [snapshot for snapshot in catalog_snapshot_dates("products", day) if snapshot not in seen]


class BuildDimDate(_DailyModel):
    """warehouse/dim_date for one date: one row per calendar day the date's facts refer to."""

    table = "dim_date"


class BuildDimUser(_DailyModel):
    """warehouse/dim_user for one date: one row per user seen that day (merged with min/max)."""

    table = "dim_user"


class BuildDimProduct(_DailyModel):
    """warehouse/dim_product as of one date: one row per product (current version or inferred)."""

    table = "dim_product"


class BuildDimProductHistory(_DailyModel):
    """warehouse/dim_product_history as of one date: one row per product version (SCD2)."""

    table = "dim_product_history"
    date_rank = 2  # reads the products catalog only: built beside the events' staging


class BuildFactOrders(_DailyModel):
    """warehouse/fact_orders for one load date: one row per order (one line each)."""

    table = "fact_orders"
    date_rank = 2


class BuildFactEvents(_DailyModel):
    """warehouse/fact_events for one load date: one row per event."""

    table = "fact_events"
    date_rank = 2


class BuildDailyMetrics(_DailyModel):
    """warehouse/daily_metrics for one run date: one row."""

    table = "daily_metrics"


MODEL_TASKS: dict[str, type[ModelTask]] = {
    task.table: task for task in (BuildFactOrders, BuildFactEvents, BuildDimDate, BuildDimProductHistory,
                                  BuildDimProduct, BuildDimUser, BuildDailyMetrics)
}
# The task of a date that writes each lake table outside the warehouse a model may read.
_LAKE_WRITERS: dict[tuple[str, str], type[PipelineTask]] = {
    **{("raw", task.source): task for task in LAND_TASKS},
    **{("staging", f"stg_{task.source}"): task for task in STAGE_TASKS},
}


def writers(spec: warehouse.LakeInput) -> list[type[PipelineTask]]:
    """The tasks of a date that write a model input's partitions (see warehouse.LAKE_INPUTS)."""
    if spec.layer == "warehouse":
        keys = [spec.table]
        found = [MODEL_TASKS.get(spec.table)]
    elif spec.layer == "audit" and spec.sources:  # a source's audit rows are written by its staging task
        keys = list(spec.sources)
        found = [_LAKE_WRITERS.get(("staging", source)) for source in spec.sources]
    else:
        keys = [spec.table]
        found = [_LAKE_WRITERS.get((spec.layer, spec.table))]
    missing = [key for key, task in zip(keys, found) if task is None]
    if missing:
        raise KeyError(f"no task writes {spec.layer}/{', '.join(missing)}, which a model reads:"
                       " map it to its task in pipeline.tasks.model")
    return [task for task in found if task is not None]


class BuildWarehouse(luigi.WrapperTask, PipelineTask):
    """Every warehouse partition of one date."""

    def requires(self) -> list[luigi.Task]:
        return [task(date=self.date) for task in MODEL_TASKS.values()]
