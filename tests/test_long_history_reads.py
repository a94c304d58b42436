"""A long history costs the backfill's completeness check and the run summary a few listings, not a few a date
(pipeline.lake.read_once): the catalog folders, the landed snapshots, the restatement records and the run audit are
listed once for a range, and the decisions stay those of each date asked alone."""
from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import config, lake
from pipeline.ingest import landing
from pipeline.tasks import publish, restatements, run_audit, summary
from tests.support.files import write_catalog_record
from tests.support.postgres import Target

MONDAY = dt.date(2025, 9, 1)
RUN, OTHER_RUN = "20251201T000000_aaaaaaaa", "20251202T000000_bbbbbbbb"


def _landed(path: Path, text: str) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return {"source_file": str(path), "rows": 1, "rejected_count": 0, **landing.file_fingerprint(str(path))}


def _history(root: Path, weeks: int) -> list[dt.date]:
    """`weeks` weeks of built dates: a products snapshot file each Monday (landed), each date's orders and events
    files (landed), its daily_metrics record of the snapshots it read, and its run audit (two runs, 3 tasks each)."""
    days = [MONDAY + dt.timedelta(days=n) for n in range(7 * weeks)]
    mondays = days[::7]
    for monday in mondays:
        landing.write_manifest("products", monday, _landed(root / "products" / f"products_{monday}.json", "[]"))
    for day in days:
        landing.write_manifest("orders", day, _landed(root / "orders" / str(day) / "orders.json", "[]"))
        landing.write_manifest("events", day, _landed(root / "events" / str(day) / "events.csv", "event_id\n"))
        read = [monday for monday in mondays if monday <= day]
        write_catalog_record(day, read)
        for run in (OTHER_RUN, RUN):
            for n, family in enumerate(("LandOrders", "StageOrders", "Publish")):
                started = dt.datetime.combine(day, dt.time(1 if run == OTHER_RUN else 2, n))
                row = {name: None for name in run_audit.SCHEMA.names} | {
                    "run_id": run, "load_date": day, "task_id": f"{family}_{day:%Y_%m_%d}", "task_family": family,
                    "attempt": 1, "status": "done", "started_at": started, "ended_at": started,
                    "duration_seconds": 1.0, "in_postgres": False}
                run_audit._write(run_audit.twin_path(day, run, row["task_id"]), [row])
    return days


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Calls counted: lake listings, catalog folder listings, restatement record reads, run audit twin reads, and the
    settings read (each ~0.5 ms through Luigi's configuration)."""
    calls: Counter = Counter()
    for name in ("lake_dir", "data_dir", "products_url", "users_url", "ready_marker"):
        def counted_setting(read=getattr(config, name)) -> str:  # noqa: ANN001 - the setting's own function
            calls["setting"] += 1
            return read()
        monkeypatch.setattr(config, name, counted_setting)
    files_matching, listdir, open_input = lake.files_matching, os.listdir, lake.open_input

    def counted_files_matching(pattern: str) -> list[str]:
        calls["lake listing"] += 1
        return files_matching(pattern)

    def counted_listdir(path: str = ".") -> list[str]:
        if os.path.basename(str(path)) in landing.CATALOGS:
            calls["catalog folder listing"] += 1
        return listdir(path)

    def counted_open_input(path: str):  # noqa: ANN202 - whatever lake.open_input returns
        calls["restatement read" if path.endswith(lake.RESTATEMENT_FILE) else
              "twin read" if f"/{run_audit.TABLE}/" in path else "other read"] += 1
        return open_input(path)

    monkeypatch.setattr(lake, "files_matching", counted_files_matching)
    monkeypatch.setattr(os, "listdir", counted_listdir)
    monkeypatch.setattr(lake, "open_input", counted_open_input)
    return calls


def _history_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weeks: int) -> tuple[Path, list[dt.date]]:
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / f"lake{weeks}"))
    monkeypatch.setenv("ECOMM_DATA_DIR", str(tmp_path / f"incoming{weeks}"))
    monkeypatch.delenv("ECOMM_PRODUCTS_URL", raising=False)
    monkeypatch.delenv("ECOMM_USERS_URL", raising=False)
    monkeypatch.delenv("ECOMM_READY_MARKER", raising=False)
    root = tmp_path / f"incoming{weeks}"
    return root, _history(root, weeks)


def _published(target: Target, days: list[dt.date]) -> None:
    """The dates published and reconciled in the serving Postgres."""
    from pipeline.serving import migrations

    with psycopg.connect(target.dsn, autocommit=True) as conn:
        migrations.apply_schema(conn)
        conn.execute("delete from audit.publish_log")
        for day in days:
            conn.execute("insert into audit.publish_log (load_date, fact_orders_rows, fact_events_rows, reconciled_at)"
                         " values (%s, 1, 1, now())", [day])


def test_the_backfill_check_of_a_long_history_lists_each_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     fresh_db: Target, counted: Counter) -> None:
    """RangeDaily's check (`DailyPipeline.bulk_complete`) listed the catalog folder 4 times a date, the landed snapshots
    and a restatement record once a date: a no-op backfill over 214 published dates took 31 s."""
    listings = {}
    for weeks in (1, 4):
        _, days = _history_at(tmp_path, monkeypatch, weeks)
        _published(fresh_db, days)
        counted.clear()
        assert publish.DailyPipeline.bulk_complete(days) == days, "nothing changed: every date is complete"
        listings[weeks] = (counted["lake listing"], counted["catalog folder listing"], counted["restatement read"],
                           counted["setting"])
    assert listings[4] == listings[1], f"listings (or settings read) grew with the dates: {listings}"
    assert listings[4][0] + listings[4][1] <= 4 and listings[4][2] == 0, listings


def test_the_range_s_decisions_are_each_date_s_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  fresh_db: Target, counted: Counter) -> None:
    """A changed source file, a changed catalog snapshot, a late catalog and a pending restatement make the same dates
    incomplete asked for the range at once (one look at the lake, a few listings) as asked date by date."""
    root, days = _history_at(tmp_path, monkeypatch, 3)
    (root / "orders" / str(days[2]) / "orders.json").write_text('[{"order_id": "changed"}]')  # a changed source
    (root / "products" / f"products_{days[14]}.json").write_text('[{"id": 1}]')  # week 3's snapshot changed
    late = days[9]  # built with week 1's snapshot while week 2's covers it
    path = lake.partition_file("warehouse", "daily_metrics", late)
    pq.write_table(pa.table({"products_snapshot_date": pa.array([days[0]], pa.date32()),
                             "users_snapshot_date": pa.array([None], pa.date32()),
                             "products_snapshot_dates": pa.array([[days[0]]], pa.list_(pa.date32()))}), path)
    restatements.write_record(days[5], {"status": "pending", "requested_at": "2025-12-01T00:00:00+00:00"})
    restatements.write_record(days[6], {"status": "published", "requested_at": "2025-12-01T00:00:00+00:00"})
    one_by_one = {day for day in days if publish.still_current(day)}
    assert one_by_one == set(days) - {days[2], late, days[5], *days[14:]}, sorted(set(days) - one_by_one)
    _published(fresh_db, days)
    counted.clear()
    assert publish.DailyPipeline.bulk_complete(days) == sorted(one_by_one)
    assert counted["lake listing"] + counted["catalog folder listing"] <= 4, counted
    assert counted["restatement read"] == 2, "only the dates with a record are read: the pending and the published one"
    assert {day for day in days if publish.Publish(date=day).complete()} == one_by_one


def test_the_summary_of_a_long_history_lists_the_run_audit_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                counted: Counter) -> None:
    """The summary listed the run audit (a file per task per run) once a date; a run's own summary (a `luigi`
    command's, at its exit) read every run's files of every date, to keep its run's alone."""
    monkeypatch.setenv("ECOMM_PG_DATA", str(tmp_path / "no-pgdata"))  # Postgres not asked: the lake's side alone
    for var in ("ECOMM_PG_DSN", "PGHOST", "PGDATABASE", "PGUSER", "PGPORT", "PGSERVICE"):
        monkeypatch.delenv(var, raising=False)
    listings = {}
    for weeks in (1, 4):
        _, days = _history_at(tmp_path, monkeypatch, weeks)
        counted.clear()
        whole = summary.summarise(days, start_postgres=False)
        listings[weeks] = counted["lake listing"], counted["setting"]
        assert counted["twin read"] == len(days) * 6, "every run's twins: the latest run is found among them"
        counted.clear()
        own = summary.summarise(days, RUN, start_postgres=False)
        assert counted["twin read"] == len(days) * 3, "a run's summary reads that run's twins only"
        assert [s.seconds for s in own] == [3.0] * len(days)
    assert listings[4] == listings[1] and listings[4][0] <= 3, listings
    one_by_one = [summary.summarise([day], start_postgres=False)[0] for day in days]
    assert [(s.status, s.failures, s.seconds) for s in whole] == [(s.status, s.failures, s.seconds) for s in one_by_one]
