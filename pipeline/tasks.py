"""The Luigi tasks: one thin class per (layer, table); the mechanics live in `task_base`.

    uv run luigi --module pipeline.tasks LandDaily --date 2025-12-15 --local-scheduler
    uv run luigi --module pipeline.tasks DailyPipeline --date 2025-12-15 --local-scheduler
    uv run luigi --module pipeline.tasks RangeDaily --of DailyPipeline --start 2025-12-13 --stop 2025-12-20
"""
from __future__ import annotations

from typing import Any

import luigi
from luigi.tools.range import RangeDaily  # noqa: F401 - re-exported for `--module pipeline.tasks RangeDaily`

from pipeline import landing
from pipeline.task_base import CatalogLandTask, LandTask, PipelineTask


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
