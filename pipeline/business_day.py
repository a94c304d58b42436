"""Whether a load date's business day is over: a date runs once it has ended, never while it goes on.

A date's files can be complete only once its business day, in [model] business_timezone, has ended by
the wall clock. A run before that published the part of the day sent so far as the whole day, and
`marts.latest_complete_day` named a day still in progress. The clock alone decides: a sender's
`[landing] ready_marker` cannot make a day that goes on complete, and `[model] future_tolerance_hours`
(timestamps a little after midnight from a sender's fast clock) does not move the day's end. A zone
east of UTC ends its day before UTC does: Asia/Tokyo's 2026-12-07 runs from 2026-12-07 15:00 UTC.
"""
from __future__ import annotations

import datetime as dt

from pipeline import config


class DayNotOver(ValueError):
    """A load date whose business day has not ended yet: its files cannot be complete."""


def day_end(day: dt.date) -> dt.datetime:
    """The instant (UTC) `day` ends: the next midnight in [model] business_timezone."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=config.business_zone())
    return end.astimezone(dt.timezone.utc)


def runs_from(day: dt.date) -> str:
    """When `day` can run, in UTC and in the business zone: `2026-12-07 23:00 UTC (2026-12-08 00:00 Europe/Berlin)`."""
    end, zone = day_end(day), config.business_zone()
    return f"{end:%Y-%m-%d %H:%M} UTC ({end.astimezone(zone):%Y-%m-%d %H:%M} {zone.key})"


def capped(now: dt.datetime | None = None) -> dt.datetime:
    """`now` (default: the clock), never after the clock: a run may judge as of an earlier time (Luigi's `--now`, to
    run as then), never as of a later one, when a day that goes on would pass as over."""
    clock = dt.datetime.now(dt.timezone.utc)
    return clock if now is None else min(now, clock)


def first_open(now: dt.datetime | None = None) -> dt.date:
    """The earliest date whose business day has not ended at `now` (default: the clock): today's business date."""
    return config.business_date(now)


def ended(day: dt.date, now: dt.datetime | None = None) -> dt.date:
    """`day`, if its business day has ended at `now` (ValueError if it is after today, DayNotOver if it goes on)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if day > (today := first_open(now)):
        try:
            config.not_after_today(day)  # its own words; it raises unless midnight passed in between
        except ValueError as err:
            raise DayNotOver(str(err)) from None  # one kind of refusal, told in one line wherever it is met
    if day >= today:
        zone = config.business_zone()
        raise DayNotOver(f"{day} is not over yet in [model] business_timezone {zone.key} (it is"
                         f" {now.astimezone(zone):%Y-%m-%d %H:%M} there): its files cannot be complete; it can run"
                         f" from {runs_from(day)}")
    return day


def ended_by_clock(day: dt.date) -> dt.date:
    """`ended(day)` by the clock, whatever `--now` a run was given; at once for a date before UTC's yesterday, over in
    every zone (the last day, UTC-12's, ends at 12:00 UTC the next day): a backfill builds thousands of tasks."""
    if day < dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1):
        return day
    return ended(day)


def left_out(start: dt.date | None, stop: dt.date | None, now: dt.datetime | None = None) -> str | None:
    """The line saying which dates of [start, stop) a backfill leaves out, their day not over (None: none); no `start`
    (Luigi's `--reverse` without `--start`): from as far back as the backfill goes."""
    first = first_open(now) if start is None else max(start, first_open(now))
    if stop is None or first >= stop:
        return None
    count = (stop - first).days
    dates = str(first) if count == 1 else f"{first} to {stop - dt.timedelta(days=1)} ({count} dates)"
    its, later = ("their", ", each later date a day after") if count > 1 else ("its", "")
    return (f"RangeDaily left out {dates}: {its} business day in [model] business_timezone"
            f" {config.business_zone().key} is not over, so {its} files cannot be complete; {first} can run from"
            f" {runs_from(first)}{later} (run the range again then)")
