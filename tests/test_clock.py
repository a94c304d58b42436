"""Moments shown to the operator name their zone, and their date when it is not today (`pipeline.clock`)."""
from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator

import pytest

from pipeline import clock
from pipeline.tasks import central

MIDNIGHT_UTC = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)  # 09:00 in Tokyo, 19:00 the day before in Honolulu


@pytest.fixture
def zone() -> Iterator[object]:
    """Sets the process's local zone (TZ) for a test and restores it after."""
    before = os.environ.get("TZ")

    def use(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield use
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_a_moment_of_today_is_its_local_time_and_zone(zone) -> None:
    zone("Asia/Tokyo")
    assert clock.local(MIDNIGHT_UTC.timestamp(), today=dt.date(2026, 12, 7)) == "09:00:00 JST"
    assert clock.local(MIDNIGHT_UTC, today=dt.date(2026, 12, 7)) == "09:00:00 JST"
    zone("Pacific/Honolulu")
    assert clock.local(MIDNIGHT_UTC, today=dt.date(2026, 12, 6)) == "14:00:00 HST"


def test_a_moment_of_another_day_also_names_its_date(zone) -> None:
    zone("Asia/Tokyo")
    assert clock.local(MIDNIGHT_UTC.timestamp(), today=dt.date(2026, 12, 6)) == "2026-12-07 09:00:00 JST"
    zone("UTC")
    assert clock.local(MIDNIGHT_UTC - dt.timedelta(seconds=1), today=dt.date(2026, 12, 7)) == "2026-12-06 23:59:59 UTC"


def test_a_naive_datetime_is_refused_it_names_no_instant() -> None:
    with pytest.raises(ValueError, match="names no zone"):
        clock.local(dt.datetime(2026, 12, 7, 9, 0))


def _disabled_lines(since: float, persist: int) -> list[str]:
    """central.describe's lines for a task luigid disabled at `since` (epoch seconds), with that disable_persist."""
    luigi_config = central.luigi.configuration.get_config()
    before = luigi_config.get("scheduler", "disable_persist", None)
    luigi_config.set("scheduler", "disable_persist", str(persist))
    try:
        return central.describe("http://127.0.0.1:8082", {"t": {"display_name": "LandOrders(date=2025-12-15)",
                                                                 "last_updated": since}}, [dt.date(2025, 12, 15)])
    finally:
        if before is None:
            luigi_config.remove_option("scheduler", "disable_persist")
        else:
            luigi_config.set("scheduler", "disable_persist", before)


def test_a_disabled_task_s_end_a_day_later_says_which_day(zone) -> None:
    """luigid's re-enable time with a disable_persist of a day (Luigi's default) was a bare clock time, which reads
    as earlier today."""
    zone("UTC")
    since = dt.datetime(2026, 12, 7, 12, tzinfo=dt.timezone.utc).timestamp()
    lines = _disabled_lines(since, 86400)
    assert (f"LandOrders(date=2025-12-15) is DISABLED since {clock.local(since)}, until about"
            " 2026-12-08 12:00:00 UTC ([scheduler] disable_persist = 86400 s)") in lines[1], lines


def test_a_disabled_task_s_end_across_a_dst_change_is_the_instant_luigid_keeps(zone) -> None:
    """86400 s after 11:00 CET on the day before summer time is 12:00 CEST: a local wall time plus a day said 11:00."""
    zone("Europe/Berlin")
    since = dt.datetime(2026, 3, 28, 10, tzinfo=dt.timezone.utc).timestamp()  # 11:00 CET
    lines = _disabled_lines(since, 86400)
    assert "is DISABLED since 2026-03-28 11:00:00 CET, until about 2026-03-29 12:00:00 CEST (" in lines[1], lines
