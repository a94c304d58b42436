"""Mart tasks: one per per-load-date mart (`sql/marts/<table>.sql`), built from the date's warehouse partitions.

The marts' partitions (`lake/marts/<table>/load_date=D`) are built beside the facts' preloads and
checked by the quality gate with the warehouse; the publish of the date adds them to the Postgres
marts in its transaction (`pipeline.serving.marts`).
"""
from __future__ import annotations

import luigi

from pipeline import lake
from pipeline.tasks.base import LakeTarget, PipelineTask
from pipeline.tasks.model import MODEL_TASKS
from pipeline.transform import marts


class MartTask(PipelineTask):
    """Builds one mart's partition for a date from that date's warehouse partitions (those its SQL reads)."""

    table: str = ""
    retry_count = 1
    timeout_kind = "model"
    date_rank = 1  # after the facts' preloads (2 for the events'): beside the gate they wait for anyway

    def output(self) -> LakeTarget:
        return LakeTarget(lake.partition_file(marts.LAYER, self.table, self.date))

    def requires(self) -> list[luigi.Task]:
        return [MODEL_TASKS[name](date=self.date) for name in marts.inputs(self.table)]

    def run(self) -> None:
        self.report(f"building mart {self.table}", 0)
        self.rows_out = marts.build(self.table, self.date)
        self.report(f"built {self.rows_out} {self.table} rows", 100)


class BuildProductSalesDaily(MartTask):
    """marts/product_sales_daily for one load date: one row per order date per product of the date's orders."""

    table = "product_sales_daily"


class BuildCustomerOrdersDaily(MartTask):
    """marts/customer_orders_daily for one load date: one row per customer per order date of the date's orders."""

    table = "customer_orders_daily"


class BuildUserActivityDaily(MartTask):
    """marts/user_activity_daily for one load date: one row per event date per user of the date's events."""

    table = "user_activity_daily"


class BuildCompleteDays(MartTask):
    """marts/complete_days for one load date: the business day the date's file completes (one row)."""

    table = "complete_days"


MART_TASKS: dict[str, type[MartTask]] = {
    task.table: task for task in (BuildProductSalesDaily, BuildCustomerOrdersDaily, BuildUserActivityDaily,
                                  BuildCompleteDays)
}


class BuildMarts(luigi.WrapperTask, PipelineTask):
    """Every mart partition of one date."""

    def requires(self) -> list[luigi.Task]:
        return [task(date=self.date) for task in MART_TASKS.values()]
