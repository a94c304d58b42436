"""Which snapshot covers a date from the catalog API (pipeline.tasks.catalog_cover), on a lake of manifests and
daily_metrics records written here: the rule alone, fast, for the cases the end-to-end switch tests do not run."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import lake
from pipeline.ingest import landing
from pipeline.tasks import catalog_cover
from pipeline.tasks.catalog_cover import covering_snapshot
from tests.support import rows as r

SATURDAY = dt.date(2025, 12, 20)  # [catalog] weekday: Monday (0), the default
MONDAY, TUESDAY, WEDNESDAY, THURSDAY = (dt.date(2025, 12, 22) + dt.timedelta(days=n) for n in range(4))
API = "http://127.0.0.1:9/products"


@pytest.fixture(autouse=True)
def api_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r.use_lake(tmp_path, monkeypatch)
    monkeypatch.setenv("ECOMM_DATA_DIR", str(tmp_path / "incoming"))
    monkeypatch.setenv("ECOMM_PRODUCTS_URL", API)  # never asked: nothing is fetched here
    monkeypatch.setenv("ECOMM_USERS_URL", API.replace("products", "users"))


def landed(snapshot: dt.date, source: str, kind: str = "products") -> None:
    """A landed snapshot: its manifest, from a file (`source` a path) or from the API (`source` a URL)."""
    landing.write_manifest(kind, snapshot, {"source_file": source, "rows": 1})


def built(day: dt.date, products: dt.date | None, users: dt.date | None = None) -> None:
    """A built date: its daily_metrics partition's record of the snapshots it read."""
    path = lake.partition_file("warehouse", "daily_metrics", day)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.table({"products_snapshot_date": pa.array([products], pa.date32()),
                             "users_snapshot_date": pa.array([users], pa.date32())}), path)


def unbuilt(day: dt.date) -> None:
    """A restatement of the date removed its build."""
    os.remove(lake.partition_file("warehouse", "daily_metrics", day))


def test_from_the_api_from_the_start_the_week_s_day_covers_it() -> None:
    assert covering_snapshot("products", WEDNESDAY) == MONDAY  # to be fetched by Monday's task
    landed(MONDAY, API)
    assert covering_snapshot("products", MONDAY + dt.timedelta(days=6)) == MONDAY
    assert covering_snapshot("products", dt.date(2025, 12, 10)) == dt.date(2025, 12, 8), "an older week: its own"


def test_a_switch_in_mid_week_keeps_the_file_snapshot_of_the_dates_built_from_it_even_restated() -> None:
    landed(SATURDAY, "/incoming/products/products_2025-12-20.json")
    for day in (SATURDAY, MONDAY, TUESDAY):
        built(day, SATURDAY)
    assert covering_snapshot("products", THURSDAY) == WEDNESDAY, "after the week's last date built from files"
    assert covering_snapshot("products", WEDNESDAY) == WEDNESDAY
    assert [covering_snapshot("products", day) for day in (SATURDAY, MONDAY, TUESDAY)] == [SATURDAY] * 3
    landed(WEDNESDAY, API)
    assert covering_snapshot("products", THURSDAY) == WEDNESDAY
    unbuilt(TUESDAY)  # restated: between the file's snapshot and the API's first, files fed it
    assert covering_snapshot("products", TUESDAY) == SATURDAY
    unbuilt(MONDAY)
    assert covering_snapshot("products", MONDAY) == SATURDAY


def test_a_date_files_fed_between_two_file_snapshots_keeps_the_one_before_it() -> None:
    landed(dt.date(2025, 12, 13), "/incoming/products/products_2025-12-13.json")
    landed(SATURDAY, "/incoming/products/products_2025-12-20.json")
    assert covering_snapshot("products", dt.date(2025, 12, 16)) == dt.date(2025, 12, 13), "never built: a gap"


def test_a_catalog_no_file_ever_fed_keeps_none_for_the_dates_built_without_it() -> None:
    built(MONDAY, SATURDAY, users=None)
    assert covering_snapshot("users", MONDAY) is None
    assert covering_snapshot("users", WEDNESDAY) == TUESDAY, "the first date after those built without one"


def test_a_changed_file_of_a_snapshot_the_rule_keeps_is_found(tmp_path: Path) -> None:
    """changed_catalogs looked at the API week's day, which was never landed: a file-fed date's edited file hid."""
    source = tmp_path / "products_2025-12-20.json"
    source.write_text("[]")
    landing.write_manifest("products", SATURDAY, {"source_file": str(source), "rows": 0,
                                                   **landing.file_fingerprint(str(source))})
    source.write_text('[{"id": 1}]')  # edited after it was landed
    built(TUESDAY, SATURDAY)
    assert set(catalog_cover.changed_catalogs(TUESDAY)) == {"products"}
    assert landing.changed_catalogs(TUESDAY) == {}, "the source's own rule: Monday's, never landed"
