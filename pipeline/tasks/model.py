"""Warehouse tasks: one per star-schema table (`sql/warehouse/<table>.sql`), built from a date's partitions."""
from __future__ import annotations

import luigi

from pipeline import lake
from pipeline.tasks.base import LakeTarget, PipelineTask
from pipeline.tasks.land import catalog_snapshot_dates
from pipeline.tasks.stage import CATALOG_STAGES, StageEvents, StageOrders, StageProducts, StageTask, StageUsers
from pipeline.transform import warehouse


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


# The staging tasks of a date that write each non-warehouse input of warehouse.INPUTS.
STAGES_OF_INPUT: dict[str, tuple[type[StageTask], ...]] = {
    "raw_orders": (StageOrders,), "stg_orders": (StageOrders,),
    "raw_events": (StageEvents,), "stg_events": (StageEvents,),
    "stg_products_snapshot": (StageProducts,), "stg_products_history": (StageProducts,),
    "stg_users_snapshot": (StageUsers,),
    "reconciliation": (StageOrders, StageEvents, StageProducts, StageUsers),
}


class _DailyModel(ModelTask):
    def requires(self) -> list[luigi.Task]:
        # Exactly what this model reads (warehouse.INPUTS): the date's staging tasks and warehouse
        # tables, and, for a model reading a catalog, the staging of every earlier snapshot of it
        # (in a backfill those belong to other dates' tasks, which may not have run yet). Not the
        # whole StageDaily: fact_orders need not wait for the events.
        reads = warehouse.INPUTS[self.table]
        unknown = [name for name in reads if name not in MODEL_TASKS and name not in STAGES_OF_INPUT]
        if unknown:
            raise KeyError(f"{self.table} reads {unknown}: map them to their tasks in STAGES_OF_INPUT")
        stages = dict.fromkeys(stage for name in reads for stage in STAGES_OF_INPUT.get(name, ()))
        upstream = [MODEL_TASKS[name](date=self.date) for name in reads if name in MODEL_TASKS]
        history = [stage(date=snapshot) for kind, stage in CATALOG_STAGES.items()
                   if any(name.startswith(f"stg_{kind}") for name in reads)
                   for snapshot in catalog_snapshot_dates(kind, self.date) if snapshot != self.date]
        return [*(stage(date=self.date) for stage in stages), *upstream, *history]


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


class BuildWarehouse(luigi.WrapperTask, PipelineTask):
    """Every warehouse partition of one date."""

    def requires(self) -> list[luigi.Task]:
        return [task(date=self.date) for task in MODEL_TASKS.values()]
