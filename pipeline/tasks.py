"""The Luigi tasks: one thin class per (layer, table); the mechanics live in `task_base`.

    uv run luigi --module pipeline.tasks LandDaily --date 2025-12-15 --local-scheduler
    uv run luigi --module pipeline.tasks DailyPipeline --date 2025-12-15 --local-scheduler
    uv run luigi --module pipeline.tasks RangeDaily --of DailyPipeline --start 2025-12-13 --stop 2025-12-20
"""
from __future__ import annotations

from typing import Any

import luigi
from luigi.tools.range import RangeDaily  # noqa: F401 - re-exported for `--module pipeline.tasks RangeDaily`

from pipeline import landing, warehouse
from pipeline.task_base import (
    CatalogLandTask,
    CatalogStageTask,
    CheckTask,
    LandTask,
    ModelTask,
    PipelineTask,
    PublishTask,
    StageTask,
)


class LandOrders(LandTask):
    """raw/orders for one date: one row per order record as received."""

    source = "orders"

    def land(self) -> dict[str, Any]:
        return landing.land_orders(self.date)


class LandEvents(LandTask):
    """raw/events for one date: one row per accepted CSV line; rejected lines go to audit."""

    source = "events"

    def land(self) -> dict[str, Any]:
        return landing.land_events(self.date)


class LandProducts(CatalogLandTask):
    """raw/products for the weekly snapshot covering a date: one row per product record."""

    source = "products"


class LandUsers(CatalogLandTask):
    """raw/users for the weekly snapshot covering a date: one row per user record."""

    source = "users"


class LandDaily(luigi.WrapperTask, PipelineTask):
    """Every source of one date landed in lake/raw (orders, events, products, users)."""

    def requires(self) -> list[luigi.Task]:
        return [LandOrders(date=self.date), LandEvents(date=self.date),
                LandProducts(date=self.date), LandUsers(date=self.date)]


class StageOrders(StageTask):
    """staging/stg_orders for one date: one row per valid, deduplicated order line."""

    source = "orders"

    def requires(self) -> luigi.Task:
        return LandOrders(date=self.date)


class StageEvents(StageTask):
    """staging/stg_events for one date: one row per valid, deduplicated event."""

    source = "events"

    def requires(self) -> luigi.Task:
        return LandEvents(date=self.date)


class StageProducts(CatalogStageTask):
    """staging/stg_products for the snapshot covering a date: one row per product."""

    source = "products"

    def requires(self) -> luigi.Task:
        return LandProducts(date=self.date)


class StageUsers(CatalogStageTask):
    """staging/stg_users for the snapshot covering a date: one row per user."""

    source = "users"

    def requires(self) -> luigi.Task:
        return LandUsers(date=self.date)


class StageDaily(luigi.WrapperTask, PipelineTask):
    """Every staging partition of one date."""

    def requires(self) -> list[luigi.Task]:
        return [StageOrders(date=self.date), StageEvents(date=self.date),
                StageProducts(date=self.date), StageUsers(date=self.date)]


class _DailyModel(ModelTask):
    def requires(self) -> list[luigi.Task]:
        # The staging partitions, plus the warehouse tables this model reads (warehouse.INPUTS).
        upstream = [MODEL_TASKS[name](date=self.date) for name in warehouse.INPUTS[self.table]
                    if name in MODEL_TASKS]
        return [StageDaily(date=self.date), *upstream]


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
    """warehouse/fact_orders for one load date: one row per order line."""

    table = "fact_orders"


class BuildFactEvents(_DailyModel):
    """warehouse/fact_events for one load date: one row per event."""

    table = "fact_events"


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


class QualityGate(CheckTask):
    """lake/audit/dq_results for one date: one row per SodaCL check; complete when nothing failed."""

    def requires(self) -> luigi.Task:
        return BuildWarehouse(date=self.date)


class Publish(PublishTask):
    """The date in the serving Postgres: facts, dimensions, daily_metrics and audit rows."""

    def requires(self) -> luigi.Task:
        return QualityGate(date=self.date)


class DailyPipeline(luigi.WrapperTask, PipelineTask):
    """The whole date: land -> stage -> model -> check -> publish."""

    force = luigi.BoolParameter(default=False, significant=False)

    def requires(self) -> luigi.Task:
        return Publish(date=self.date, force=self.force)
