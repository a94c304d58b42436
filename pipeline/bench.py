"""Benchmarks: `uv run python -m pipeline.bench [land]` (also `make bench`).

The max-volume day (500,000 orders, 2,000,000 events) is generated once into data/bench/max and
reused; each run lands it into a fresh lake under data/bench/lake-<pid> and reports seconds per step.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

from pipeline import config

BENCH_DIR = config.REPO_ROOT / "data" / "bench"
MAX_DAY = dt.date(2025, 12, 15)


def max_day_input() -> Path:
    """The cached max-volume day of incoming files (generated on first use)."""
    from pipeline import generate

    out = BENCH_DIR / "max"
    marker = out / ".complete"
    if not marker.exists():
        generate.generate(MAX_DAY, 1, out, orders_per_day=500_000, events_per_day=2_000_000)
        marker.write_text("500000 orders, 2000000 events\n")
    return out


def timed(label: str, func, figures: dict[str, float]) -> object:
    start = time.perf_counter()
    result = func()
    figures[label] = time.perf_counter() - start
    return result


def bench_land() -> dict[str, float]:
    """Seconds to land each source of the max-volume day into an empty lake."""
    from pipeline import landing

    incoming = max_day_input()
    lake = BENCH_DIR / f"lake-{os.getpid()}"
    os.environ["ECOMM_DATA_DIR"] = str(incoming)
    os.environ["ECOMM_LAKE_DIR"] = str(lake)
    figures: dict[str, float] = {}
    try:
        start = time.perf_counter()
        timed("land orders", lambda: landing.land_orders(MAX_DAY), figures)
        timed("land events", lambda: landing.land_events(MAX_DAY), figures)
        timed("land catalogs", lambda: (landing.land_catalog("products", MAX_DAY),
                                        landing.land_catalog("users", MAX_DAY)), figures)
        figures["land total"] = time.perf_counter() - start
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    return figures


def print_table(figures: dict[str, float]) -> None:
    width = max(len(label) for label in figures)
    for label, seconds in figures.items():
        print(f"{label:<{width}}  {seconds:8.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__)
    parser.add_argument("what", nargs="?", default="land", choices=["land"])
    args = parser.parse_args(argv)
    if args.what == "land":
        print_table(bench_land())
    return 0


if __name__ == "__main__":
    sys.exit(main())
