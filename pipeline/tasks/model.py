"""Warehouse tasks: one per star-schema table (`sql/warehouse/<table>.sql`), built from a date's partitions."""
from __future__ import annotations

import luigi

from pipeline import lake
from pipeline.tasks.base import LakeTarget, PipelineTask
from pipeline.tasks.land import LAND_TASKS, catalog_snapshot_dates
from pipeline.tasks.stage import STAGE_TASKS
from pipeline.transform import warehouse


class ModelTask(PipelineTask):
    """Builds one warehouse table's partition for a date from that date's staging partitions."""

    table: str = ""
    retry_count = 1
    timeout_kind = "model"

    def output(self) -> LakeTarget:
        return LakeTarget(lake.partition_file("warehouse", self.table, self.date))

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
