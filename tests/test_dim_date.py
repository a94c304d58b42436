"""dim_date: the days a load date's facts refer to (late ones included) plus the load date itself."""
from __future__ import annotations

import datetime as dt

import pytest

from pipeline.transform import warehouse
from tests.support import rows as r

D = r.DAY  # Sunday 2025-12-14
FACTS = ("fact_orders", "fact_events", "dim_date")


@pytest.fixture(autouse=True)
def lake_dir(tmp_path, monkeypatch):
    return r.use_lake(tmp_path, monkeypatch)


def test_dates_of_the_facts_and_the_load_date_with_their_attributes():
    r.stage_day(D, orders=[r.order(timestamp="2025-12-12T10:00:00")],
                events=[r.event(event_ts="2025-12-13T22:00:00-05:00")])  # 2025-12-14 03:00 UTC
    r.build_day(D, FACTS)
    rows = r.read("warehouse", "dim_date", D, "date_id")
    assert [row["date_id"] for row in rows] == [20251212, 20251214]
    assert rows[1] == {
        "date_id": 20251214, "full_date": D, "year": 2025, "quarter": 4, "month": 12, "month_name": "December",
        "day_of_month": 14, "day_of_week": 7, "day_name": "Sunday", "week_of_year": 50, "iso_year": 2025,
        "is_weekend": True,
        "load_date": D,
    }
    assert (rows[0]["day_of_week"], rows[0]["day_name"], rows[0]["is_weekend"]) == (5, "Friday", False)


def test_iso_weeks_across_the_new_year():
    new_year = dt.date(2026, 1, 1)
    r.stage_day(new_year, orders=[r.order(timestamp="2025-12-29T08:00:00")], events=[])
    r.build_day(new_year, FACTS)
    rows = r.read("warehouse", "dim_date", new_year, "date_id")
    # the week of 2025-12-29 is week 1 of 2026: (year, week_of_year) would split it, (iso_year, week_of_year) not
    assert [(row["full_date"], row["year"], row["iso_year"], row["week_of_year"], row["day_of_week"])
            for row in rows] == [(dt.date(2025, 12, 29), 2025, 2026, 1, 1), (new_year, 2026, 2026, 1, 4)]


def test_a_day_without_facts_still_has_its_own_date_and_the_view_has_one_row_per_date():
    d2 = D + dt.timedelta(days=1)
    r.stage_day(D, orders=[], events=[])
    r.stage_day(d2, orders=[r.order(timestamp="2025-12-14T23:00:00")], events=[])
    for day in (d2, D):
        r.build_day(day, FACTS)
    assert [row["date_id"] for row in r.read("warehouse", "dim_date", D)] == [20251214]
    assert [(row["date_id"], row["load_date"]) for row in r.current("dim_date", "date_id")] == [
        (20251214, d2), (20251215, d2)]
    assert warehouse.current_view_sql("dim_date").lstrip().startswith("-- dim_date (current)")
