"""What a `read_once.scope` remembers is right for the scope: a one-date scope (the summary of a date, a date's own
check) reads that date's folders only; a malformed or unreadable restatements folder is what it was outside a
scope; another lake (a restatement's scratch lake), another Luigi parser or another thread sees nothing of it."""
from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from luigi.cmdline_parser import CmdlineParser

import pipeline.tasks  # noqa: F401 - the tasks a Luigi command line names
from pipeline import config, lake, read_once, setting_source
from pipeline.ingest import landing
from pipeline.tasks import lake_gaps, publish, restate_steps, restatements, run_audit, run_audit_files, summary
from tests.support import rows
from tests.test_long_history_reads import RUN, _history_at

PENDING = {"status": "pending", "requested_at": "2025-12-01T00:00:00+00:00"}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The lake listings (their patterns), folder listings and lake files opened, in order."""
    seen: list[str] = []
    files_matching, listdir, open_input = lake.files_matching, os.listdir, lake.open_input

    def listed(pattern: str) -> list[str]:
        seen.append(f"list {pattern}")
        return files_matching(pattern)

    def listed_folder(path: str = ".") -> list[str]:
        seen.append(f"listdir {path}")
        return listdir(path)

    def opened(path: str):  # noqa: ANN202 - whatever lake.open_input returns
        seen.append(f"open {path}")
        return open_input(path)

    monkeypatch.setattr(lake, "files_matching", listed)
    monkeypatch.setattr(os, "listdir", listed_folder)
    monkeypatch.setattr(lake, "open_input", opened)
    return seen


def _no_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOMM_PG_DATA", str(tmp_path / "no-pgdata"))  # the lake's side alone
    for var in ("ECOMM_PG_DSN", "PGHOST", "PGDATABASE", "PGUSER", "PGPORT", "PGSERVICE"):
        monkeypatch.delenv(var, raising=False)


def test_a_one_date_summary_lists_only_that_date_s_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           reads: list[str]) -> None:
    """The summary of one date (the daily cron's at its exit, `summary --date D`) listed the run audit of every date
    (on S3 the whole prefix), and a date's own check listed every restatement record to open one."""
    _no_postgres(tmp_path, monkeypatch)
    _, days = _history_at(tmp_path, monkeypatch, 4)
    day = days[10]
    restatements.write_record(days[3], PENDING)
    audit, records = lake.table_dir("audit", run_audit_files.TABLE), lake.table_dir("audit", "restatements")
    for run in (None, RUN):
        reads.clear()
        [one] = summary.summarise([day], run, start_postgres=False)
        assert one.seconds == 3.0, "the latest run's, or the run's own"
        listings = [r for r in reads if audit in r and not r.startswith("open")]
        assert listings and all(f"load_date={day}/" in r for r in listings), listings
        assert len(listings) == 1, f"the date's folder once (runs, then runtime): {listings}"
        assert not [r for r in reads if records in r and not r.startswith("open")], reads
    reads.clear()
    assert publish.still_current_dates([day]) == {day}
    assert publish.still_current_dates([days[3]]) == set(), "its restatement is pending"
    assert not [r for r in reads if records in r and not r.startswith("open")], "one record opened, none listed"
    assert [r for r in reads if records in r] == [f"open {restatements.marker_path(d)}" for d in (day, days[3])]
    reads.clear()
    assert publish.still_current_dates(days) == set(days) - {days[3]}, "a long range: the same decisions"
    assert len([r for r in reads if records in r and not r.startswith("open")]) == 1, "listed once for the range"


def test_a_one_date_summary_looks_for_that_date_s_partitions_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  reads: list[str]) -> None:
    """What of a published date's lake is gone (`lake_gaps`): the summary of one date listed each table whole."""
    _, days = _history_at(tmp_path, monkeypatch, 4)
    day = days[10]
    whole = lake_gaps.missing(day, lake_gaps.Listing(days))
    assert len([r for r in reads if r.startswith("list")]) > 5
    assert all("load_date" not in r for r in reads if r.startswith("list")), "each table listed whole"
    reads.clear()
    assert lake_gaps.missing(day, lake_gaps.Listing([day])) == whole
    listed = [r for r in reads if r.startswith("list")]
    assert listed and all(f"/load_date={day}/" in r for r in listed), listed
    assert "warehouse/daily_metrics/load_date=" not in " ".join(whole), "the date's partition is there"


def test_a_malformed_restatement_folder_is_no_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stray `load_date=2025-02-30` folder raised ValueError in a range's check (every date's, and every Publish's
    completeness) while a date asked alone ignored it."""
    _, days = _history_at(tmp_path, monkeypatch, 2)
    restatements.write_record(days[3], PENDING)
    stray = Path(lake.table_dir("audit", "restatements")) / "load_date=2025-02-30" / restatements.MARKER
    stray.parent.mkdir(parents=True)
    stray.write_text(json.dumps(PENDING))
    assert {day for day in days if publish.still_current(day)} == set(days) - {days[3]}
    assert publish.still_current_dates(days) == set(days) - {days[3]}
    assert restatements.recorded_dates() == [days[3]]


def test_an_unreadable_restatements_folder_raises_as_outside_a_scope(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A local glob finds nothing in a folder it cannot read: listed once for a range, such a restatements folder made
    every date look unrestated (complete), where each date's own read raised. (Not a folder: unreadable even as
    root.)"""
    _, days = _history_at(tmp_path, monkeypatch, 2)
    table = Path(lake.table_dir("audit", "restatements"))
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("not a folder")
    with pytest.raises(NotADirectoryError):
        publish.still_current(days[0])
    with pytest.raises(NotADirectoryError):
        publish.still_current_dates(days)


def test_a_scratch_lake_inside_a_scope_is_not_the_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`restate` lands the new files into a scratch lake (ECOMM_LAKE_DIR pointed there, in the same process) to see
    that they land: inside a scope the lake's root, read before, was remembered, and the trial landed into the
    lake itself."""
    root, days = _history_at(tmp_path, monkeypatch, 2)
    day = days[0]
    (root / "orders" / str(day) / "orders.json").write_text(json.dumps([rows.order()]))
    lake_dir = Path(config.lake_dir())
    before = sorted(str(p.relative_to(lake_dir)) for p in lake_dir.rglob("*"))
    with read_once.scope(days):
        assert lake.root() == str(lake_dir)
        restate_steps.trial_land(day, ["orders"], "the date stays as it is")
        assert lake.root() == str(lake_dir), "back in the lake: read again"
    assert sorted(str(p.relative_to(lake_dir)) for p in lake_dir.rglob("*")) == before, "nothing landed in the lake"


def test_another_luigi_parser_inside_a_scope_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lake's root set on a command line (`--paths-lake-dir`): a parser made current inside a scope (the summary
    at exit makes the run's current again; the central scheduler's notes read luigi.cfg alone) is read."""
    monkeypatch.delenv("ECOMM_LAKE_DIR", raising=False)
    first, second = (CmdlineParser(["DailyPipeline", "--date", "2025-09-01", "--paths-lake-dir", str(tmp_path / name)])
                     for name in ("first", "second"))
    with setting_source.luigi_parser(first), read_once.scope():
        assert lake.root() == str(tmp_path / "first")
        with setting_source.luigi_parser(second):
            assert lake.root() == str(tmp_path / "second")
        assert lake.root() == str(tmp_path / "first")


def test_another_thread_sees_nothing_of_a_scope(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Luigi runs tasks in the scheduling process (one worker, no timeout) and the gate starts threads: a scope's
    memo was a module global, so another thread's reads came from it, and its scope ended this one's."""
    _, days = _history_at(tmp_path, monkeypatch, 1)
    seen: dict[str, object] = {}

    def other() -> None:
        seen["active"] = read_once.active()
        seen["pending"] = restatements.pending(days[2])  # read now: the scope's listing predates the record
        with read_once.scope(days):
            pass

    with read_once.scope(days):
        assert publish.still_current_dates(days) == set(days), "no restatement yet"
        restatements.write_record(days[2], PENDING)
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert read_once.active(), "the other thread's scope ended its own, not this one"
        assert not restatements.pending(days[2]), "this scope's one look at the lake"
    assert seen == {"active": False, "pending": True}


def test_a_date_s_twin_files_are_a_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run audit's listing was handed out as remembered: a caller that changed its list changed every later
    answer of the scope."""
    _, days = _history_at(tmp_path, monkeypatch, 1)
    for scope_days in (days, days[:1]):
        with read_once.scope(scope_days):
            run_audit_files.twin_files(days[0], None).clear()
            assert len(run_audit_files.twin_files(days[0], None)) == 6


def test_a_run_s_own_executions_are_its_rows_of_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's summary lists its own run folder only: the same rows as every run's, then kept to the run's, in a
    scope over many dates, over one, and outside one."""
    _, days = _history_at(tmp_path, monkeypatch, 1)

    def both() -> list[tuple[list[dict], list[dict]]]:
        return [(run_audit.executions(day, RUN), [r for r in run_audit.executions(day) if r["run_id"] == RUN])
                for day in days]

    for found in (both(), read_once.scoped_over(lambda _: both())(days), read_once.scoped_over(lambda _: both())(
            days[:1])):
        assert all(len(own) == 3 and own == kept for own, kept in found)


def test_an_older_twin_file_is_read_as_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run audit file written by an older version (timestamps in ns, a column it did not have yet, one since
    dropped) reads as today's schema: the missing column NULL, the dropped one left out, timestamps as today's."""
    rows.use_lake(tmp_path, monkeypatch)
    day = dt.date(2025, 9, 1)
    started = dt.datetime(2025, 9, 1, 1, 2, 3, 456789)
    old = pa.table({"run_id": [RUN], "load_date": pa.array([day], pa.date32()), "task_id": ["LandOrders_2025_09_01"],
                    "task_family": ["LandOrders"], "attempt": pa.array([1], pa.int64()), "status": ["done"],
                    "started_at": pa.array([started], pa.timestamp("ns")), "since_dropped": ["x"]})
    path = run_audit.twin_path(day, RUN, "LandOrders_2025_09_01")
    Path(path).parent.mkdir(parents=True)
    pq.write_table(old, path)
    [row] = lake.read_rows(path, schema=run_audit.SCHEMA)
    assert list(row) == run_audit.SCHEMA.names
    assert row["started_at"] == started and row["ended_at"] is None and row["in_postgres"] is None
    assert row["attempt"] == 1 and row["status"] == "done"
    assert run_audit.executions(day) == [row]


def test_catalogs_from_the_api_decide_the_same_in_a_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          reads: list[str]) -> None:
    """Catalogs from the API (a catalog URL set: the covering snapshot is the week's landed one, a snapshot landed
    later in a week is late for the dates built before it, a week with none landed asks which are): the range's
    decisions are each date's, in a few listings, and nothing is fetched (no server answers the URL)."""
    listings = {}
    for weeks in (2, 4):
        _, days = _history_at(tmp_path, monkeypatch, weeks)
        monkeypatch.setenv("ECOMM_PRODUCTS_URL", "http://127.0.0.1:9")
        later = days[9]  # week 2's Wednesday: a later snapshot of the week, landed after its dates were built
        landing.write_manifest("products", later, {"source_file": "http://127.0.0.1:9/products", "rows": 1,
                                                   "rejected_count": 0, "source_kind": "api"})
        os.remove(landing.manifest_path("products", days[-7]))  # the last week's: to be fetched (landed dates asked)
        one_by_one = {day for day in days if publish.still_current(day)}
        assert set(days) - one_by_one == set(days[9:14]), sorted(set(days) - one_by_one)
        reads.clear()
        assert publish.still_current_dates(days) == one_by_one
        listings[weeks] = [r.replace(f"lake{weeks}", "lake") for r in reads
                           if not r.startswith("open") and f"/lake{weeks}/" in r]  # (each date's incoming folder)
    assert listings[4] == listings[2] and len(listings[4]) == 3, f"listings grew with the dates: {listings}"


def test_an_inner_scope_s_dates_end_with_it() -> None:
    """A summary's scope over 180 dates inside the run's undated one (`at_exit`) left 180 dates behind: the outer
    scope's later reads took the whole-table way, a second look at the lake within one."""
    days = [dt.date(2026, 5, 4) + dt.timedelta(days=n) for n in range(read_once.FEW_DATES + 1)]
    with read_once.scope():
        assert not read_once.many_dates()
        with read_once.scope(days):
            assert read_once.many_dates()
        assert not read_once.many_dates()
