"""The Luigi tasks: one thin class per (layer, table); the mechanics live in `task_base`.

    uv run luigi --module pipeline.tasks LandDaily --date 2025-12-15 --local-scheduler
    uv run luigi --module pipeline.tasks DailyPipeline --date 2025-12-15 --local-scheduler
    uv run luigi --module pipeline.tasks RangeDaily --of DailyPipeline --start 2025-12-13 --stop 2025-12-20 --workers 2

Without `--local-scheduler` the run goes through the central scheduler of luigi.cfg [core]
(`make luigid`). When a `luigi` command-line run ends it prints the run summary of the dates it
scheduled (`pipeline.tasks.summary`), after Luigi's own execution summary.
"""
from __future__ import annotations

import atexit
import datetime as dt
import os
from collections.abc import Iterable
from typing import Any

import luigi
from luigi.tools.range import RangeDaily  # noqa: F401 - re-exported for `--module pipeline.tasks RangeDaily`

from devtools import faults  # noqa: F401 - ECOMM_FAULT fault points at task boundaries (a no-op unless set)
from pipeline.ingest import landing
from pipeline.tasks import summary, warmup
from pipeline.transform import warehouse
from pipeline.tasks.base import (
    CatalogLandTask,
    CatalogStageTask,
    CheckTask,
    LandTask,
    ModelTask,
    PipelineTask,
    PreloadTask,
    PublishTask,
    SourceReady,  # noqa: F401 - the land tasks' requirement when [landing] ready_marker is set
    SourcesUnchangedTask,
    StageTask,
    catalog_snapshot_dates,
    current_published_dates,
)


class LandOrders(LandTask):
    """raw/orders for one date: one row per order record as received."""

    source = "orders"
    date_rank = 4

    def land(self) -> dict[str, Any]:
        return landing.land_orders(self.date)


class LandEvents(LandTask):
    """raw/events for one date: one row per accepted CSV line; rejected lines go to audit."""

    source = "events"
    date_rank = 6

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

    def requires(self) -> luigi.Task:
        return LandProducts(date=self.date)


class StageUsers(CatalogStageTask):
    """staging/stg_users for the snapshot covering a date: one row per user."""

    source = "users"

    def requires(self) -> luigi.Task:
        return LandUsers(date=self.date)


CATALOG_STAGES: dict[str, type[CatalogStageTask]] = {"products": StageProducts, "users": StageUsers}


class StageDaily(luigi.WrapperTask, PipelineTask):
    """Every staging partition of one date."""

    def requires(self) -> list[luigi.Task]:
        return [StageOrders(date=self.date), StageEvents(date=self.date),
                StageProducts(date=self.date), StageUsers(date=self.date)]


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


class QualityGate(CheckTask):
    """lake/audit/dq_results for one date: one row per SodaCL check; complete when nothing failed."""

    def requires(self) -> list[luigi.Task]:
        # the tasks themselves rather than the StageDaily/BuildWarehouse wrappers: one process less
        # to fork on the critical path
        return [*(task(date=self.date) for task in MODEL_TASKS.values()),
                *(stage(date=self.date) for stage in (StageOrders, StageEvents, StageProducts, StageUsers))]


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


class SourcesUnchanged(SourcesUnchangedTask):
    """No landed orders/events file of the date changed since it was landed (fails with SourceChanged otherwise)."""


class Publish(PublishTask):
    """The date in the serving Postgres: facts, dimensions, daily_metrics and audit rows."""

    def requires(self) -> list[luigi.Task]:
        # the facts' COPY and index builds (most of a publish) run beside the gate, as preloads
        return [QualityGate(date=self.date), PreloadFactOrders(date=self.date), PreloadFactEvents(date=self.date),
                SourcesUnchanged(date=self.date)]


class DailyPipeline(luigi.WrapperTask, PipelineTask):
    """The whole date: land -> stage -> model -> check (beside it: preload) -> publish; complete when published."""

    force = luigi.BoolParameter(default=False, significant=False)

    def requires(self) -> luigi.Task:
        return Publish(date=self.date, force=self.force)

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


atexit.register(summary.at_exit, os.getpid())
warmup.install()  # soda-core is imported by the worker process while its first task runs
