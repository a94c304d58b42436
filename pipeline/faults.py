"""Fault points: named places where the reliability tests make the pipeline fail; nothing in production.

The engine (`devtools/faults.py`, test tooling beside the product) is loaded only when the
ECOMM_FAULT environment variable is set: at `pipeline.tasks` import, before Luigi forks its task
processes (the engine counts hits in memory it shares with them), or at the first point reached.
Unset, every point is one environment lookup.
"""
from __future__ import annotations

import os
from types import ModuleType

ENV = "ECOMM_FAULT"

_engine: ModuleType | None = None


class FaultEngineMissing(RuntimeError):
    """ECOMM_FAULT is set where the fault engine (a repository checkout's devtools/) is not installed."""


def install() -> None:
    """Load the fault engine if ECOMM_FAULT is set (it registers Luigi's task-boundary points)."""
    global _engine
    if _engine is not None or not os.environ.get(ENV):
        return
    try:
        from devtools import faults as engine
    except ImportError as err:
        raise FaultEngineMissing(f"{ENV} is set, but the fault engine (devtools/faults.py) is only in a"
                                 " repository checkout; unset it") from err
    _engine = engine


def point(name: str, path: str | os.PathLike[str] | None = None, *, tag: str | None = None) -> None:
    """A named fault point: does nothing unless ECOMM_FAULT arms a fault that matches it."""
    if not os.environ.get(ENV):
        return
    install()
    _engine.point(name, path, tag=tag)
