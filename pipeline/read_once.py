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
use reads again). One process, one thread: Luigi runs each task in a process of its own.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_memo: dict[Hashable, object] | None = None


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """Within: each `once` read is made once (a scope inside another is the outer one's)."""
    global _memo
    if _memo is not None:
        yield
        return
    _memo = {}
    try:
        yield
    finally:
        _memo = None


def active() -> bool:
    """Whether a scope is open (a caller may then read a whole table once instead of a date's part of it)."""
    return _memo is not None


def once(key: Hashable, read: Callable[[], T]) -> T:
    """`read()`, remembered under `key` while a scope is open (the caller copies what it hands out to be changed)."""
    if _memo is None:
        return read()
    if key not in _memo:
        _memo[key] = read()
    return _memo[key]  # type: ignore[return-value]


def scoped(function: Callable[..., T]) -> Callable[..., T]:
    """`function`, each call of it inside a `scope()`."""
    @functools.wraps(function)
    def in_scope(*args: Any, **kwargs: Any) -> T:
        with scope():
            return function(*args, **kwargs)
    return in_scope
