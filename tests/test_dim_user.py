"""dim_user: each load date's contribution (activity that day, location from the latest snapshot) and the merge."""
from __future__ import annotations

import datetime as dt

import pytest

from tests.support import rows as r

MONDAY = dt.date(2025, 12, 8)
D = r.DAY  # Sunday 2025-12-14
TABLES = ("fact_orders", "fact_events", "dim_user")


@pytest.fixture(autouse=True)
def lake_dir(tmp_path, monkeypatch):
    return r.use_lake(tmp_path, monkeypatch)


def test_a_contribution_has_the_days_activity_and_the_latest_location():
    r.stage_day(MONDAY, users=[r.user(user_id="USER_0001", city="Paris", country="France")])
    r.stage_day(D, users=[r.user(user_id="USER_0003", city="Oslo", country="Norway")], orders=[
        r.order(order_id="ORD_1", user_id="USER_0001", timestamp="2025-12-14T10:00:00"),
        r.order(order_id="ORD_2", user_id="USER_0001", timestamp="2025-12-13T23:00:00"),  # late
    ], events=[
        r.event(event_id="EVT_1", user_id="USER_0001", event_ts="2025-12-14T12:00:00"),
        r.event(event_id="EVT_2", user_id="USER_0002", event_ts="2025-12-14T01:00:00"),  # unknown user
    ])
    r.build_day(D, TABLES)
    assert r.read("warehouse", "dim_user", D, "user_id") == [
        {"user_id": "USER_0001", "first_seen_date": dt.date(2025, 12, 13), "first_order_date": dt.date(2025, 12, 13),
         "last_seen_date": D, "city": None, "country": None, "load_date": D},
        {"user_id": "USER_0002", "first_seen_date": D, "first_order_date": None, "last_seen_date": D,
         "city": None, "country": None, "load_date": D},
        {"user_id": "USER_0003", "first_seen_date": None, "first_order_date": None, "last_seen_date": None,
         "city": "Oslo", "country": "Norway", "load_date": D},
    ]  # USER_0001 is not in D's snapshot, the latest one on or before D: no location


def test_the_location_comes_from_the_latest_snapshot_on_or_before_the_date():
    r.stage_day(MONDAY, users=[r.user(user_id="USER_0001", city="Paris", country="France")])
    r.stage_day(D + dt.timedelta(days=1), users=[r.user(user_id="USER_0001", city="Lyon")])  # after D
    r.stage_day(D, orders=[r.order(user_id="USER_0001")], events=[])
    r.build_day(D, TABLES)
    (row,) = r.read("warehouse", "dim_user", D)
    assert (row["city"], row["country"]) == ("Paris", "France")


def test_a_user_is_one_member_in_any_unicode_form_and_as_the_catalogs_number():
    """A user id written precomposed or with a combining mark prints the same: one member, not two; the catalog
    API's id 4512 and an order's or event's user_id 4512 are one user, USER_4512."""
    nfc, nfd = "USER_\u00c91", "USER_E\u03011"
    r.stage_day(MONDAY, users=[r.user(user_id=nfc, city="Paris", country="France"),
                               {"id": 4512, "firstName": "Bo", "address": {"city": "Oslo", "country": "Norway"}}])
    r.stage_day(D, orders=[r.order(order_id="ORD_1", user_id=nfd), r.order(order_id="ORD_2", user_id=4512)],
                events=[r.event(event_id="EVT_1", user_id=nfc), r.event(event_id="EVT_2", user_id="4512"),
                        r.event(event_id="EVT_3", user_id="USER_0001\u200b")])
    r.build_day(D, TABLES)
    assert [(row["user_id"], row["first_order_date"], row["city"]) for row in r.read("warehouse", "dim_user", D,
                                                                                       "user_id")] == [
        ("USER_0001", None, None), ("USER_4512", D, "Oslo"), (nfc, D, "Paris")]


@pytest.mark.parametrize("build_order", ["forward", "backward"])
def test_the_merged_view_does_not_depend_on_the_build_order(build_order):
    d1, d2, d3 = D, D + dt.timedelta(days=1), D + dt.timedelta(days=2)
    r.stage_day(d1, users=[r.user(user_id="USER_0001", city="Paris", country="France")],
                orders=[r.order(user_id="USER_0001", timestamp="2025-12-14T09:00:00")], events=[])
    r.stage_day(d2, users=[r.user(user_id="USER_0001", city=None, country="Spain")], orders=[],
                events=[r.event(user_id="USER_0001", event_ts="2025-12-13T20:00:00")])  # late event
    r.stage_day(d3, users=[r.user(user_id="USER_0002")], orders=[],
                events=[r.event(user_id="USER_0001", event_ts="2025-12-16T08:00:00")])
    for day in ([d1, d2, d3] if build_order == "forward" else [d3, d2, d1]):
        r.build_day(day, TABLES)
    assert r.current("dim_user", "user_id") == [
        # d3's snapshot lacks USER_0001: the location stays the one of d2 (country only, kept as a pair)
        {"user_id": "USER_0001", "first_seen_date": dt.date(2025, 12, 13), "first_order_date": d1,
         "last_seen_date": d3, "city": None, "country": "Spain", "load_date": d3},
        {"user_id": "USER_0002", "first_seen_date": None, "first_order_date": None, "last_seen_date": None,
         "city": "London", "country": "United Kingdom", "load_date": d3},
    ]
