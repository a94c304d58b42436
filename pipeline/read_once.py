"""Reads of the lake and the data folder made once per question over many dates, not once per date.

The completeness check of a backfill (`DailyPipeline.bulk_complete`) and the run summary ask the same
things of every date of a range: which catalog snapshots are in the data folder, which are landed, which
dates have a restatement record, a snapshot's manifest, whether its file changed, and the settings that
say where the lake and the data folder are (~0.5 ms each through Luigi's configuration). Asked date by
date they listed the catalog folder four times a date and the landed snapshots once a date, so a no-op
backfill over a long history spent most of its time listing. Inside `scope()` each such read
(`once(key, read)`) is made on its first use and remembered until the scope ends; outside one it is
made every time, as before. A scope is one look at the lake, as a single date's check is: something
written during it is seen by the next scope, not by this one. Errors are not remembered (the next
use reads again).

A scope says which dates it covers (`scope(days)`): a table with a folder per date is listed whole only
for more than `FEW_DATES` of them (`many_dates()`); for a few (the summary of one date, a date's own
completeness check) a date's folder is listed, or its file opened, as outside a scope: on S3 a whole
table's listing costs far more than one date's.

What a scope remembers is its own thread's: Luigi runs tasks in the scheduling process (one worker, no
timeout) and the gate runs checks in threads, so another thread never sees it. It is dropped when the
lake or the data folder is pointed elsewhere (ECOMM_LAKE_DIR, ECOMM_DATA_DIR: `restate` lands into a
scratch lake in the same process) or Luigi's command-line parser is replaced: a remembered setting,
listing or manifest would otherwise be the other lake's.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import sys
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

FEW_DATES = 4  # up to this many dates in a scope, a table of date folders is read a date's folder at a time
WHERE = ("ECOMM_LAKE_DIR", "ECOMM_DATA_DIR")  # the settings that say which lake and which data folder


class _Scope(threading.local):
    memo: dict[Hashable, object] | None = None
    dates: set[dt.date] | None = None  # None: the scope did not say (few, then)
    where: tuple[object, ...] = ()


_scope = _Scope()


@contextlib.contextmanager
def scope(days: Iterable[dt.date] | None = None) -> Iterator[None]:
    """Within: each `once` read is made once (a scope inside another is the outer one's; its `days` add to the
    outer's). `days`: the dates it covers (None: not said, counted as few)."""
    if days is not None:
        days = set(days)
    if _scope.memo is not None:
        outer = _scope.dates
        if days is not None:
            _scope.dates = days | (outer or set())
        try:
            yield
        finally:
            _scope.dates = outer  # the outer scope's dates again: its own reads choose as they did before
        return
    _scope.memo, _scope.dates, _scope.where = {}, days, _where()
    try:
        yield
    finally:
        _scope.memo, _scope.dates, _scope.where = None, None, ()


def active() -> bool:
    """Whether a scope is open."""
    return _scope.memo is not None


def many_dates() -> bool:
    """Whether a scope is open over more than FEW_DATES dates (a caller may then read a whole table of date folders
    once instead of a date's folder at a time)."""
    return _scope.memo is not None and _scope.dates is not None and len(_scope.dates) > FEW_DATES


def once(key: Hashable, read: Callable[[], T]) -> T:
    """`read()`, remembered under `key` while a scope is open (the caller copies what it hands out to be changed)."""
    memo = _scope.memo
    if memo is None:
        return read()
    where = _where()
    if where != _scope.where:  # another lake, data folder or Luigi parser: nothing remembered holds for it
        memo.clear()
        _scope.where = where
    if key not in memo:
        memo[key] = read()
    return memo[key]  # type: ignore[return-value]


def _where() -> tuple[object, ...]:
    """What says which lake and data folder the reads are of: the environment's settings, Luigi's parser (asked at
    each `once` in a scope: ~2 us, tens of thousands of times in a long range's check)."""
    parser = sys.modules.get("luigi.cmdline_parser")
    # the parser itself, not its id: a new parser may get a collected one's id (tuples compare it by identity)
    instance = None if parser is None else parser.CmdlineParser._instance
    return *(os.environ.get(name) for name in WHERE), instance


def scoped(function: Callable[..., T]) -> Callable[..., T]:
    """`function`, each call of it inside a `scope()` (its dates not said)."""
    @functools.wraps(function)
    def in_scope(*args: Any, **kwargs: Any) -> T:
        with scope():
            return function(*args, **kwargs)
    return in_scope


def scoped_over(function: Callable[..., T]) -> Callable[..., T]:
    """`function`, each call of it inside a `scope()` over the dates of its first argument."""
    @functools.wraps(function)
    def in_scope(days: Iterable[dt.date], *args: Any, **kwargs: Any) -> T:
        days = list(days)
        with scope(days):
            return function(days, *args, **kwargs)
    return in_scope
