"""dim_date: every day a load date's facts may refer to (its late window and the load date), plus any other
day they do refer to: dense, so a BI date spine has no gaps."""
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


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def test_the_late_window_and_the_load_date_with_their_attributes():
    r.stage_day(D, orders=[r.order(timestamp="2025-12-12T10:00:00")],
                events=[r.event(event_ts="2025-12-13T22:00:00-05:00")])  # 2025-12-14 03:00 UTC
    r.build_day(D, FACTS)
    rows = r.read("warehouse", "dim_date", D, "date_id")
    # [model] late_window_days = 30: every day a fact of D may refer to, with or without facts on it
    assert [row["full_date"] for row in rows] == days(D - dt.timedelta(days=30), D)
    assert [row["date_id"] for row in rows][-3:] == [20251212, 20251213, 20251214]
    assert rows[-1] == {
        "date_id": 20251214, "full_date": D, "year": 2025, "quarter": 4, "month": 12, "month_name": "December",
        "day_of_month": 14, "day_of_week": 7, "day_name": "Sunday", "week_of_year": 50, "iso_year": 2025,
        "is_weekend": True,
        "load_date": D,
    }
    assert (rows[-3]["day_of_week"], rows[-3]["day_name"], rows[-3]["is_weekend"]) == (5, "Friday", False)


def test_a_day_after_the_load_date_that_a_fact_refers_to_is_there_too():
    # within [model] future_tolerance_hours of the load date's end: staged, and its day is the next one
    r.stage_day(D, orders=[], events=[r.event(event_ts="2025-12-15T01:00:00")])
    r.build_day(D, FACTS)
    assert [row["full_date"] for row in r.read("warehouse", "dim_date", D, "date_id")][-2:] == [D, D + dt.timedelta(days=1)]


def test_the_window_follows_the_setting(luigi_settings):
    luigi_settings("model", late_window_days=2)
    r.stage_day(D, orders=[], events=[])
    r.build_day(D, FACTS)
    assert [row["full_date"] for row in r.read("warehouse", "dim_date", D, "date_id")] == days(D - dt.timedelta(days=2), D)


def test_iso_weeks_across_the_new_year():
    new_year = dt.date(2026, 1, 1)
    r.stage_day(new_year, orders=[r.order(timestamp="2025-12-29T08:00:00")], events=[])
    r.build_day(new_year, FACTS)
    rows = r.read("warehouse", "dim_date", new_year, "date_id")
    # the week of 2025-12-29 is week 1 of 2026: (year, week_of_year) would split it, (iso_year, week_of_year) not
    assert [(row["full_date"], row["year"], row["iso_year"], row["week_of_year"], row["day_of_week"])
            for row in rows][-4:] == [(dt.date(2025, 12, 29), 2025, 2026, 1, 1), (dt.date(2025, 12, 30), 2025, 2026, 1, 2),
                                      (dt.date(2025, 12, 31), 2025, 2026, 1, 3), (new_year, 2026, 2026, 1, 4)]
    assert (rows[0]["full_date"], rows[0]["iso_year"], rows[0]["week_of_year"]) == (dt.date(2025, 12, 2), 2025, 49)


def test_a_day_without_facts_still_has_its_days_and_the_view_has_one_row_per_date():
    d2 = D + dt.timedelta(days=1)
    r.stage_day(D, orders=[], events=[])
    r.stage_day(d2, orders=[r.order(timestamp="2025-12-14T23:00:00")], events=[])
    for day in (d2, D):
        r.build_day(day, FACTS)
    assert [row["full_date"] for row in r.read("warehouse", "dim_date", D, "date_id")] == days(D - dt.timedelta(days=30), D)
    current = [(row["full_date"], row["load_date"]) for row in r.current("dim_date", "date_id")]
    assert [day for day, _ in current] == days(D - dt.timedelta(days=30), d2), "one row per date, no gap"
    assert current[0] == (D - dt.timedelta(days=30), D) and current[1:] == [
        (day, d2) for day in days(D - dt.timedelta(days=29), d2)], "the latest load date that has the day"
    assert warehouse.current_view_sql("dim_date").lstrip().startswith("-- dim_date (current)")
