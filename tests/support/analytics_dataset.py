"""A generated multi-day dataset run through the real pipeline, for the analytics tests.

`build(root, ...)` writes sample files with dirty rows (devtools.generate), then runs Luigi in process
(`luigi.build`, local scheduler) either to the quality gate (a complete lake) or through Publish into
the Postgres the environment points at. A dirty rate of 13 % puts every kind of bad row the generator
knows into every day's orders (quarantine, duplicates, late and restated orders, unknown products).
Orders stay under the gate's volume minimum (`[checks] orders_min_rows` = 100), so every date
records warned checks: the data-quality views have rows to show, and nothing blocks a date.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest

from devtools import generate
from pipeline import tasks
from pipeline.serving import pg

START = dt.date(2025, 12, 13)  # a Saturday: the dates span two ISO weeks (cohorts), late rows a third day


@dataclasses.dataclass
class Dataset:
    """Where a built dataset lives."""

    root: Path
    lake: Path
    incoming: Path
    dates: list[dt.date]
    database: str | None = None  # the Postgres database it was published to (None: lake only)
    dsn: str | None = None  # a superuser DSN to that database

    def reader_dsn(self) -> str:
        """The same database as the read-only BI login, bi_reader."""
        assert self.dsn is not None
        return self.dsn.replace("postgresql://postgres@", "postgresql://bi_reader@", 1)


def build(root: Path, *, days: int = 4, publish: bool = True, orders_per_day: int = 90,
          events_per_day: int = 700, start: dt.date = START) -> Dataset:
    """Generate `days` days from `start` and run the pipeline on them (env must point at lake and PG)."""
    incoming, lake_dir = root / "incoming", root / "lake"
    generate.generate(start, days, incoming, orders_per_day=orders_per_day, events_per_day=events_per_day,
                      users=300, seed=11, dirty_rate=0.13)
    dates = [start + dt.timedelta(days=i) for i in range(days)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECOMM_DATA_DIR", str(incoming))
        mp.setenv("ECOMM_LAKE_DIR", str(lake_dir))
        task = tasks.DailyPipeline if publish else tasks.QualityGate
        luigi.task_register.Register.clear_instance_cache()
        result = luigi.build([task(date=day) for day in dates], local_scheduler=True, workers=1,
                             detailed_summary=True, log_level="WARNING")
        luigi.task_register.Register.clear_instance_cache()
    assert result.status.name == "SUCCESS", result.summary_text
    return Dataset(root=root, lake=lake_dir, incoming=incoming, dates=dates)


@contextlib.contextmanager
def pipeline_dataset(root: Path, server, *, publish: bool = True, **options) -> Iterator[Dataset]:
    """build() with the environment pointing at `root` and a fresh database on the embedded server.

    The environment stays set while the caller uses the dataset. Even a lake-only build gets its own
    database: the run audit may record task runs in Postgres, and it must never reach a real one.
    """
    database = f"a_{uuid.uuid4().hex[:10]}"
    with pytest.MonkeyPatch.context() as mp:
        server.env(mp, database)
        pg.start_embedded()  # creates the database
        data = build(root, publish=publish, **options)
        data.database, data.dsn = database, server.dsn(database)
        mp.setenv("ECOMM_LAKE_DIR", str(data.lake))
        mp.setenv("ECOMM_DATA_DIR", str(data.incoming))
        yield data
