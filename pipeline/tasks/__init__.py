"""The Luigi tasks of the pipeline, one thin class per (layer, table), by kind:

- `pipeline.tasks.land`     LandOrders, LandEvents, LandProducts, LandUsers (LandDaily)
- `pipeline.tasks.stage`    StageOrders, StageEvents, StageProducts, StageUsers (StageDaily)
- `pipeline.tasks.model`    BuildFactOrders, BuildFactEvents, BuildDim*, BuildDailyMetrics (BuildWarehouse)
- `pipeline.tasks.marts`    BuildProductSalesDaily, BuildCustomerOrdersDaily, BuildUserActivityDaily,
                            BuildCompleteDays (BuildMarts)
- `pipeline.tasks.check`    QualityGate
- `pipeline.tasks.publish`  PreloadFactOrders, PreloadFactEvents, SourcesUnchanged, Publish, DailyPipeline

    luigi --module pipeline.tasks DailyPipeline --date 2025-12-15 --local-scheduler
    luigi --module pipeline.tasks RangeDaily --of DailyPipeline --start 2025-12-13 --stop 2025-12-20 --workers 2

Without `--local-scheduler` the run goes through the central scheduler of luigi.cfg [core]
(`make luigid`). When a `luigi` command-line run ends it prints the run summary of the dates it
scheduled (`pipeline.tasks.summary`), after Luigi's own execution summary.
"""
from __future__ import annotations

import atexit
import os

from pipeline.tasks import warmup  # noqa: I001 - first: the collector pauses for the imports below

warmup.pause_collector()
warmup.pyarrow_without_pandas()

import luigi

from pipeline import faults
from pipeline.tasks import cli_errors, command_line, scheduler_mail, summary, unscheduled
from pipeline.tasks.base import RangeDaily  # Luigi's, publishing oldest first
from pipeline.tasks.check import QualityGate
from pipeline.tasks.land import LandDaily, LandEvents, LandOrders, LandProducts, LandUsers, SourceReady
from pipeline.tasks.model import (
    MODEL_TASKS,
    BuildDailyMetrics,
    BuildDimDate,
    BuildDimProduct,
    BuildDimProductHistory,
    BuildDimUser,
    BuildFactEvents,
    BuildFactOrders,
    BuildWarehouse,
)
from pipeline.tasks.marts import (
    MART_TASKS,
    BuildCompleteDays,
    BuildCustomerOrdersDaily,
    BuildMarts,
    BuildProductSalesDaily,
    BuildUserActivityDaily,
)
from pipeline.tasks.publish import DailyPipeline, PreloadFactEvents, PreloadFactOrders, Publish, SourcesUnchanged
from pipeline.tasks.stage import StageDaily, StageEvents, StageOrders, StageProducts, StageUsers

__all__ = [
    "BuildDailyMetrics", "BuildDimDate", "BuildDimProduct", "BuildDimProductHistory", "BuildDimUser",
    "BuildCompleteDays", "BuildCustomerOrdersDaily", "BuildFactEvents", "BuildFactOrders", "BuildMarts",
    "BuildProductSalesDaily", "BuildUserActivityDaily", "BuildWarehouse", "DailyPipeline", "LandDaily", "LandEvents",
    "LandOrders", "LandProducts", "LandUsers", "MART_TASKS", "MODEL_TASKS", "PreloadFactEvents", "PreloadFactOrders",
    "Publish", "QualityGate", "RangeDaily", "SourceReady", "SourcesUnchanged", "StageDaily", "StageEvents",
    "StageOrders", "StageProducts", "StageUsers",
]

cli_errors.install()  # a bad --date, an unknown task, or no luigid: one line and an exit code, not a traceback
unscheduled.install()  # a task whose complete() or requires() raised: the summary says why its date did not run
scheduler_mail.install()  # a --local-scheduler run mails no false "DISABLED for 3600 seconds"
command_line.watch_the_lock()  # a run the pid lock refuses (exit 10) says so, naming the run that holds it
faults.install()  # ECOMM_FAULT's fault points at task boundaries (nothing unless it is set)
atexit.register(summary.at_exit, os.getpid())
for _event in (luigi.Event.DEPENDENCY_DISCOVERED, luigi.Event.DEPENDENCY_PRESENT, luigi.Event.DEPENDENCY_MISSING):
    luigi.Task.event_handler(_event)(command_line.note)  # the summary's command line, read as Luigi schedules
warmup.install()  # soda-core is imported by the worker process while its first task runs; imports frozen for gc
