"""A catalog snapshot that arrives after a date was built makes the date late (pipeline.tasks.late_catalogs)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.tasks import catalog_cover, late_catalogs
from tests.support import rows as r
from tests.support.files import write_catalog_record
from tests.support.ops import Ops

MONDAY = dt.date(2025, 12, 8)
D = r.DAY  # the Sunday after MONDAY
SATURDAY = D - dt.timedelta(days=1)


@pytest.fixture
def incoming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lake with D built from MONDAY's products snapshot (and no users snapshot), and its incoming folder."""
    r.use_lake(tmp_path, monkeypatch)
    root = tmp_path / "incoming"
    (root / "products").mkdir(parents=True)
    (root / "products" / f"products_{MONDAY}.json").write_text("[]")
    monkeypatch.setenv("ECOMM_DATA_DIR", str(root))
    monkeypatch.delenv("ECOMM_PRODUCTS_URL", raising=False)
    r.stage_day(MONDAY, products=[r.product(product_id="PROD_0001")])
    r.stage_day(D, orders=[r.order()], events=[r.event()])
    r.build_day(D)
    return root


def test_a_date_built_with_the_snapshot_that_covers_it_is_not_late(incoming: Path) -> None:
    assert catalog_cover.recorded(D) == {"products": MONDAY, "users": None}
    assert late_catalogs.late_catalogs(D) == {} and late_catalogs.late_dates("products", MONDAY) == []


def test_a_snapshot_file_that_arrives_after_the_build_makes_the_date_late(incoming: Path) -> None:
    (incoming / "products" / f"products_{SATURDAY}.json").write_text("[]")  # not landed yet: the file is enough
    assert late_catalogs.late_catalogs(D) == {"products": late_catalogs.message("products", SATURDAY, [D])}
    assert late_catalogs.late_dates("products", SATURDAY) == [D]
    assert late_catalogs.notes([D + dt.timedelta(days=1)]) == [
        f"late catalog: {late_catalogs.message('products', SATURDAY, [D])}"]
    assert late_catalogs.notes([D]) == [], "a run's own dates are in its table, not in its notes"
    (incoming / "users").mkdir()
    (incoming / "users" / f"users_{MONDAY}.json").write_text("[]")  # no users snapshot was there when D was built
    assert set(late_catalogs.late_catalogs(D)) == {"products", "users"}


def test_from_the_api_only_a_landed_snapshot_is_late(incoming: Path, monkeypatch, luigi_settings) -> None:
    monkeypatch.setenv("ECOMM_PRODUCTS_URL", "http://127.0.0.1:9")  # never asked: nothing is fetched here
    luigi_settings("catalog", weekday=SATURDAY.weekday())
    assert late_catalogs.late_catalogs(D) == {}, "the API's snapshot of Saturday is fetched when a date needs it"
    from pipeline.ingest import landing

    r.write_products(SATURDAY, [r.product(product_id="PROD_0001")], source_kind="api")  # a later run landed it
    Path(landing.manifest_path("products", SATURDAY)).write_text('{"rows": 1}')
    assert set(late_catalogs.late_catalogs(D)) == {"products"}


def test_a_date_built_before_the_snapshots_were_recorded_is_not_judged(incoming: Path) -> None:
    from pipeline import lake
    from pipeline.lake import sqlrun

    path = lake.partition_file("warehouse", "daily_metrics", D)
    with sqlrun.connect() as con:
        con.execute(f"copy (select * exclude (products_snapshot_date, users_snapshot_date) from read_parquet('{path}'))"
                    f" to '{path}.old' (format parquet)")
    Path(f"{path}.old").replace(path)
    (incoming / "products" / f"products_{SATURDAY}.json").write_text("[]")
    assert catalog_cover.recorded(D) is None and late_catalogs.late_catalogs(D) == {}


def test_an_earlier_products_snapshot_landed_after_the_build_makes_the_date_late(incoming: Path) -> None:
    """D's product history holds every snapshot on or before it: one landed after D was built leaves it stale."""
    from pipeline.ingest import landing

    earlier = MONDAY - dt.timedelta(days=7)
    (incoming / "products" / f"products_{earlier}.json").write_text("[]")
    assert late_catalogs.late_catalogs(D) == {}, "a file no run has landed may predate the lake"
    r.write_products(earlier, [r.product(product_id="PROD_0001")])  # a run of its week landed it
    Path(landing.manifest_path("products", earlier)).write_text('{"rows": 1}')
    assert late_catalogs.late_catalogs(D) == {"products": late_catalogs.message("products", earlier, [D])}
    assert late_catalogs.late_dates("products", earlier) == [D]
    assert late_catalogs.notes([earlier]) == [f"late catalog: {late_catalogs.message('products', earlier, [D])}"]
    (incoming / "products" / f"products_{SATURDAY}.json").write_text("[]")  # and the one covering D came late too
    assert late_catalogs.late_catalogs(D) == {"products": late_catalogs.message("products", earlier, [D])}, (
        "the earliest is named: its restatement rebuilds D too")
    (incoming / "users").mkdir()
    r.write_users(earlier, [])  # a users snapshot feeds only the dates it covers
    Path(landing.manifest_path("users", earlier)).write_text('{"rows": 0}')
    assert set(late_catalogs.late_catalogs(D)) == {"products"}


def test_a_snapshot_unstaged_while_the_history_was_built_makes_the_date_late(incoming: Path) -> None:
    """A restatement of snapshot S removes its raw and staging partitions, then lands and stages it again. A run of
    a later date that builds its dim_product_history in between builds a history without S, and finds S staged
    again by the time it builds daily_metrics: the date records the history it built, not what is staged then."""
    from pipeline.ingest import landing
    from pipeline.transform import warehouse

    earlier = MONDAY - dt.timedelta(days=7)  # S: restated, its partitions gone while D's history is built
    warehouse.build("dim_product_history", D)
    assert warehouse.products_snapshot_dates(D) == [MONDAY], "the snapshots the history was built from"
    r.stage_day(earlier, products=[r.product(product_id="PROD_0001")])  # the restatement lands and stages S again
    Path(landing.manifest_path("products", earlier)).write_text('{"rows": 1}')
    for table in warehouse.TABLES[1:]:  # the rest of D's run, after S is staged again
        warehouse.build(table, D)
    assert late_catalogs.late_catalogs(D) == {"products": late_catalogs.message("products", earlier, [D])}
    assert late_catalogs.late_dates("products", earlier) == [D]
    warehouse.build("dim_product_history", D)  # its restatement rebuilds D from S on
    warehouse.build("daily_metrics", D)
    assert warehouse.products_snapshot_dates(D) == [earlier, MONDAY] and late_catalogs.late_catalogs(D) == {}


def test_a_history_built_before_its_snapshots_were_recorded_counts_those_staged(incoming: Path) -> None:
    """A dim_product_history partition of an earlier release has no record in its footer: the staged ones stand in."""
    from pipeline import lake
    from pipeline.lake import sqlrun
    from pipeline.transform import warehouse

    path = lake.partition_file("warehouse", "dim_product_history", D)
    assert warehouse.read_record("dim_product_history", D) == {"stg_products_history": f'["{MONDAY}"]'}
    with sqlrun.connect() as con:  # rewritten as an earlier release wrote it: no key-value metadata
        con.execute("copy (select * from read_parquet($p)) to $t (format parquet)", {"p": path, "t": f"{path}.old"})
    Path(f"{path}.old").replace(path)
    assert warehouse.read_record("dim_product_history", D) == {}
    earlier = MONDAY - dt.timedelta(days=7)
    r.stage_day(earlier, products=[r.product(product_id="PROD_0001")])
    assert warehouse.products_snapshot_dates(D) == [earlier, MONDAY]


@pytest.mark.slow
def test_a_date_run_before_its_files_arrived_is_built_with_the_snapshot_delivered_with_them(ops: Ops) -> None:
    """Run before its files arrived, the date built only its products history (no daily file needed); the files
    then arrive with a products snapshot of the date. Not built, the date is not late for it: the next run rebuilds
    the history with it and publishes, and a rerun finds the date done."""
    start, day = dt.date(2025, 12, 8), dt.date(2025, 12, 12)
    ops.generate(start, 4)
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(start), "--stop", str(day),
                         "--local-scheduler")
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    early = ops.luigi("DailyPipeline", "--date", str(day), "--local-scheduler")
    assert early.returncode == 30 and "SourceFileMissing" in early.stderr, early.stderr[-3000:]
    history = ops.lake / "warehouse" / "dim_product_history" / f"load_date={day}" / "data.parquet"
    assert history.exists() and not (ops.lake / "warehouse" / "daily_metrics" / f"load_date={day}").exists()
    ops.generate(day, 1)
    assert (ops.incoming / "products" / f"products_{day}.json").exists()
    for attempt in ("the run after the files arrived", "a rerun"):
        run = ops.luigi("DailyPipeline", "--date", str(day), "--local-scheduler")
        assert run.returncode == 0, f"{attempt}: {run.stderr[-3000:]}"
        assert "Unfulfilled dependency" not in run.stderr and "CatalogArrivedLate" not in run.stderr, attempt
    assert ops.query("select products_snapshot_date from warehouse.daily_metrics where run_date = %s", [day]) == [
        (day,)]
    assert ops.query("select count(*) from audit.publish_log where load_date = %s", [day]) == [(1,)]
    summary = ops.pipeline("summary", "--date", str(day))
    assert "catalog LATE" not in summary.stdout and "CatalogArrivedLate" not in summary.stdout, summary.stdout


def test_a_run_s_notes_read_each_built_date_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notes read every later date's record once per snapshot, which grew with the square of the dates: the
    summary of a no-op backfill over 2 years of weekly snapshots spent about a minute on them."""
    from pipeline.ingest import landing

    r.use_lake(tmp_path, monkeypatch)
    monkeypatch.setenv("ECOMM_DATA_DIR", str(tmp_path / "incoming"))
    monkeypatch.delenv("ECOMM_PRODUCTS_URL", raising=False)
    days = [MONDAY + dt.timedelta(days=n) for n in range(35)]
    mondays = days[::7]
    (tmp_path / "incoming" / "products").mkdir(parents=True)
    for monday in mondays:
        source = tmp_path / "incoming" / "products" / f"products_{monday}.json"
        source.write_text("[]")
        landing.write_manifest("products", monday, {"source_file": str(source), "rows": 0})
    for day in days:
        read = [monday for monday in mondays if monday <= day]
        write_catalog_record(day, read)
    reads: list[dt.date] = []
    monkeypatch.setattr(late_catalogs, "built_row", lambda day: reads.append(day) or catalog_cover.built_row(day))
    assert late_catalogs.notes(days) == []
    assert len(reads) == len(set(reads)) <= len(days), sorted(reads)
