"""The Luigi task graph: what each task waits for, and which ready task the scheduler runs first.

The order is measured, not assumed: a real Luigi scheduler and worker schedule the graph (complete()
runs against an empty lake; Postgres is unreachable, so nothing counts as published) and the test
asks the scheduler for work the way a worker does.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import luigi
import luigi.scheduler
import luigi.worker
import pytest

from pipeline import tasks
from pipeline.tasks import model
from pipeline.transform import warehouse
from tests.support.paths import SEED_INCOMING
from tests.support.processes import free_port

D = dt.date(2025, 12, 15)
# the seed's other day: the gate of D waits for its orders and events staging (the volume check's
# history, pipeline.tasks.check.volume_history), 4 tasks handed out before D's as the earlier date's
HISTORY = 4


@pytest.fixture()
def empty_lake(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / "lake"))
    monkeypatch.setenv("ECOMM_DATA_DIR", str(SEED_INCOMING))
    monkeypatch.setenv("ECOMM_PG_DSN", f"postgresql://nobody@127.0.0.1:{free_port()}/nowhere?connect_timeout=2")
    luigi.task_register.Register.clear_instance_cache()


def first_tasks(*roots: luigi.Task, count: int, dates: set[dt.date] | None = None) -> list[str]:
    """The first `count` task families a 1-process worker would be handed, marking each done in turn
    (of those `dates` only, when given)."""
    scheduler = luigi.scheduler.Scheduler()
    handed: list[str] = []
    with luigi.worker.Worker(scheduler=scheduler, worker_processes=1) as worker:
        for root in roots:
            assert worker.add(root)
        for _ in range(count):
            work = scheduler.get_work(worker=worker._id)
            assert work["task_id"] is not None, f"nothing runnable after {handed}"
            handed.append(work["task_family"] + " " + work["task_params"]["date"])
            scheduler.add_task(worker=worker._id, task_id=work["task_id"], status=luigi.scheduler.DONE)
    return [entry for entry in handed if dates is None or entry.split()[1] in {str(day) for day in dates}]


def test_a_date_starts_with_its_events_chain(empty_lake) -> None:
    """The events (land, stage, fact) are the date's longest chain: they go first, then the orders."""
    handed = first_tasks(tasks.DailyPipeline(date=D), count=6 + HISTORY, dates={D})[:6]
    assert handed[:4] == [f"LandEvents {D}", f"StageEvents {D}", f"LandOrders {D}", f"StageOrders {D}"]
    assert {f"LandProducts {D}", f"StageProducts {D}"} <= set(handed[4:]), "the products catalog before the facts"


def test_a_backfill_runs_dates_in_order(empty_lake) -> None:
    later = D + dt.timedelta(days=1)
    handed = first_tasks(tasks.DailyPipeline(date=later), tasks.DailyPipeline(date=D), count=25 + HISTORY,
                         dates={D, later})
    dates = [entry.split()[1] for entry in handed]
    assert dates[0] == str(D)
    assert f"Publish {D}" in handed and handed.index(f"Publish {D}") < handed.index(f"LandEvents {later}"), \
        "every task of the earlier date is handed out before the later date's first"
    assert handed.index(f"LandEvents {D}") < handed.index(f"LandOrders {D}")


def test_priorities() -> None:
    events, orders = tasks.LandEvents(date=D), tasks.LandOrders(date=D)
    assert events.priority > tasks.StageEvents(date=D).priority > orders.priority \
        > tasks.StageOrders(date=D).priority > tasks.BuildFactEvents(date=D).priority \
        > tasks.BuildDimUser(date=D).priority > tasks.LandEvents(date=D + dt.timedelta(days=1)).priority
    # the catalogs (dim_user, which the gate needs, reads the users') run beside the events' staging,
    # not after the marts and the orders' preload, which wait for it anyway
    for catalog in (tasks.LandUsers(date=D), tasks.StageUsers(date=D), tasks.BuildDimProductHistory(date=D)):
        assert catalog.priority > tasks.BuildCustomerOrdersDaily(date=D).priority, catalog
        assert catalog.priority > tasks.PreloadFactOrders(date=D).priority, catalog


def test_each_model_waits_for_exactly_what_it_reads(empty_lake) -> None:
    requires = {name: {type(t) for t in task(date=D).requires() if t.date == D}
                for name, task in tasks.MODEL_TASKS.items()}
    # the facts' is_known_product: the products with a current version in the catalog's history
    assert requires["fact_orders"] == {tasks.StageOrders, tasks.BuildDimProductHistory}, "not the events"
    assert requires["fact_events"] == {tasks.StageEvents, tasks.BuildDimProductHistory}
    assert tasks.BuildFactOrders in requires["dim_user"] and tasks.StageUsers in requires["dim_user"]
    assert requires["daily_metrics"] == {tasks.LandOrders, tasks.LandEvents, tasks.StageOrders, tasks.StageEvents,
                                         tasks.BuildFactOrders, tasks.BuildFactEvents, tasks.StageProducts,
                                         tasks.StageUsers, tasks.BuildDimProductHistory}
    for name in tasks.MODEL_TASKS:
        wanted = {task for read in warehouse.inputs(name) for task in model.writers(warehouse.lake_input(read))}
        assert wanted == requires[name], name
    gate = {type(t) for t in tasks.QualityGate(date=D).requires()}
    assert set(tasks.MODEL_TASKS.values()) | {tasks.StageOrders, tasks.StageEvents} <= gate


def test_the_facts_are_preloaded_beside_the_gate(empty_lake) -> None:
    """Publish waits for the gate and both preloads; a preload waits only for its fact (and the
    orders' also for the events' staging, the date's memory peak), not for the gate."""
    publish = {type(t) for t in tasks.Publish(date=D).requires()}
    assert publish == {tasks.QualityGate, tasks.PreloadFactOrders, tasks.PreloadFactEvents, tasks.SourcesUnchanged}
    assert type(tasks.PreloadFactEvents(date=D).requires()) is tasks.BuildFactEvents
    assert {type(t) for t in tasks.PreloadFactOrders(date=D).requires()} == {tasks.BuildFactOrders, tasks.StageEvents}
    # once the events' fact is built, its preload is handed out before the dimensions and the gate
    handed = first_tasks(tasks.DailyPipeline(date=D), count=22 + HISTORY, dates={D})  # every task of the seed's date
    preload = handed.index(f"PreloadFactEvents {D}")
    assert handed[preload - 1] == f"BuildFactEvents {D}"
    assert preload < handed.index(f"QualityGate {D}") and handed[-2:] == [f"Publish {D}", f"DailyPipeline {D}"]


def test_the_gate_waits_for_the_earlier_dates_its_volume_check_compares_with(empty_lake) -> None:
    """Its verdict must not depend on the run order (a backfill's workers may reach D before D - 1)."""
    earlier = sorted((type(t).__name__, t.date) for t in tasks.QualityGate(date=D).requires() if t.date != D)
    day_before = D - dt.timedelta(days=1)
    assert earlier == [("StageEvents", day_before), ("StageOrders", day_before)]


def test_a_catalog_snapshot_is_landed_and_staged_by_its_own_dates_tasks_only(empty_lake) -> None:
    # D's products snapshot covers D + 1: that date's tasks wait for D's instead of landing and staging it beside them
    later = D + dt.timedelta(days=1)
    land, stage = tasks.LandProducts, tasks.StageProducts
    assert land(date=D).requires() == [] and land(date=later).requires() == [land(date=D)]
    assert stage(date=D).requires() == [land(date=D)]
    assert stage(date=later).requires() == [land(date=later), stage(date=D)]
    # no users snapshot (and no products one before D) covers a date: nothing to wait for
    assert tasks.LandUsers(date=later).requires() == [] and tasks.StageUsers(date=later).requires() == [
        tasks.LandUsers(date=later)]
    assert land(date=D - dt.timedelta(days=1)).requires() == []


def test_a_date_a_staged_snapshot_covers_does_not_stage_it_again(empty_lake) -> None:
    assert luigi.build([tasks.StageProducts(date=D)], local_scheduler=True, workers=1)
    staged = Path(tasks.StageProducts(date=D).output().path)
    written = staged.stat().st_ino
    tasks.StageProducts(date=D + dt.timedelta(days=1)).run()  # as if scheduled beside D's task, which won
    assert staged.stat().st_ino == written, "the snapshot's partition was written again"
