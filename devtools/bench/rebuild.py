"""`python -m devtools.bench rebuild`: days per minute of `python -m pipeline rebuild-serving`.

Writes `--days` (default 5) synthetic dates of `--orders`/`--events` (default 100,000 / 1,000,000)
into a temporary lake (`fixtures.write_day`: facts, dimensions, daily_metrics and audit partitions,
plus a passed quality-gate result per date, as the pipeline leaves them), then rebuilds a fresh
database of a throwaway embedded Postgres from it with `pipeline.tasks.rebuild.rebuild`, which
prints its per-date lines and the throughput. Generating the lake is not timed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

from devtools.bench import env

FIRST = dt.date(2030, 3, 2)


def write_lake(days: list[dt.date], orders: int, events: int) -> None:
    """The dates' warehouse and audit partitions, each with a passed gate (one check)."""
    from devtools.bench.fixtures import write_day
    from pipeline.quality import gate

    for day in days:
        write_day(day, orders, events)
        gate.write_results(gate.GateResult(day, [gate.CheckResult(
            "row_count > 0", "fact_orders", "row_count", "pass", str(orders), "")],
            dt.datetime(day.year, day.month, day.day, 6)))


def bench_rebuild(args: argparse.Namespace, admin: str) -> dict[str, Any]:
    """Rebuild `--days` dates into a fresh database; the rebuild's own summary."""
    from pipeline.tasks import rebuild

    orders, events = args.day_volume
    days = [FIRST + dt.timedelta(days=i) for i in range(args.days)]
    with tempfile.TemporaryDirectory(prefix="lake-rebuild-", dir=args.dir) as root, \
            env.environment(ECOMM_LAKE_DIR=root):
        began = time.perf_counter()
        write_lake(days, orders, events)
        print(f"  lake of {len(days)} dates written in {time.perf_counter() - began:.0f} s (not timed)", flush=True)
        with env.fresh_database(admin, "rebuild"):
            return rebuild.rebuild(out=lambda line: print(f"  {line}", flush=True))


def main(args: argparse.Namespace) -> int:
    """`python -m devtools.bench rebuild` (arguments parsed by devtools.bench.main)."""
    with env.throwaway_postgres(Path(args.dir)) as admin:
        found = bench_rebuild(args, admin)
    print(f"\nrebuild-serving: {found['published']} dates of {args.day_volume[0]:,} orders /"
          f" {args.day_volume[1]:,} events in {found['seconds']:.1f} s: {found['days_per_minute']:.2f} days per minute")
    return 0
