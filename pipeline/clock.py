"""How a moment is shown to the operator: the machine's local clock, with its zone, and the date when not today.

Log lines, retry notes and luigid's "DISABLED since ... until ..." printed a bare `HH:MM:SS`: from a UTC
cron host read in another zone, or a re-enable time a day later (`[scheduler] disable_persist` is 24 h by
default), the reader could not tell which instant was meant. `03:36:37 CET` names the zone;
`2026-12-08 03:36:37 CET` also the day, whenever it is not the day the line is printed.
"""
from __future__ import annotations

import datetime as dt


def local(moment: float | dt.datetime, today: dt.date | None = None) -> str:
    """`HH:MM:SS ZONE` on the local clock, `YYYY-MM-DD HH:MM:SS ZONE` when its date is not `today` (default: now's).

    `moment`: seconds since the epoch, or an aware datetime (a naive one names no instant: ValueError)."""
    if isinstance(moment, dt.datetime) and moment.utcoffset() is None:
        raise ValueError(f"{moment} names no zone: give seconds since the epoch or an aware datetime")
    when = (dt.datetime.fromtimestamp(moment) if isinstance(moment, (int, float)) else moment).astimezone()
    shown = f"{when:%H:%M:%S %Z}".rstrip()
    return shown if when.date() == (today or dt.datetime.now().astimezone().date()) else f"{when:%Y-%m-%d} {shown}"
