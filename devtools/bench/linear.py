"""Cost against a day's size (`python -m devtools.bench linear [--factor 4] [--repeat N]`).

The max-volume day (500,000 orders / 2,000,000 events) and a day `--factor` times its size
(default 4: 2,000,000 / 8,000,000; generated once into <dir>/day-<orders>x<events>) run through
the whole pipeline, interleaved (max, big, max, big ...) so that both see the same machine, each on
a fresh lake and database, with the bench's `--workers`. Reported: each size's median seconds,
their ratio (target: at most 1.1 x the factor), the task seconds of each stage at both sizes (which
step grows faster than the data), and the peak summed RSS of the pipeline and Postgres processes
(targets: max day 1.5 GiB, the 4x day 2 GiB).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
from typing import Any

from devtools import bench
from devtools.bench import env

Row = tuple[str, str, str, str]
STAGES = ("land", "stage", "model", "checks", "publish")
RSS_TARGETS = {1: 1.5 * env.GIB, 4: 2.0 * env.GIB}


def _one(args: argparse.Namespace, admin: str, volume: tuple[int, int], name: str) -> dict[str, Any]:
    incoming = bench.max_day_input(args.dir, volume)
    lake = bench._fresh_lake(args.dir, name)
    try:
        with env.fresh_database(admin), env.environment(ECOMM_LAKE_DIR=str(lake), ECOMM_DATA_DIR=str(incoming)):
            run = bench._child_run("days", [bench.MAX_DAY], args.workers, args.dir)
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    day = run["days"][0]
    return {"seconds": day["seconds"], "stages": day["stages"], "memory": run["memory"], "timeline": day["timeline"]}


def bench_linear(args: argparse.Namespace, admin: str) -> dict[str, Any]:
    """`--repeat` interleaved pairs: the max day, then the day `--factor` times its size."""
    small = args.max_volume
    big = (small[0] * args.factor, small[1] * args.factor)
    runs: dict[str, list[dict[str, Any]]] = {"small": [], "big": []}
    for i in range(args.repeat):
        for size, volume in (("small", small), ("big", big)):
            run = _one(args, admin, volume, f"linear-{size}")
            runs[size].append(run)
            print(f"  {volume[0]:,}/{volume[1]:,} day, pair {i + 1}/{args.repeat}: {run['seconds']:.2f} s,"
                  f" peak RSS {run['memory'].total_rss / env.MIB:.0f} MiB", flush=True)
            if args.timeline:
                print(env.format_timeline(run["timeline"]), flush=True)
    return {"runs": runs, "small": small, "big": big, "factor": args.factor}


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def linear_rows(linear: dict[str, Any]) -> list[Row]:
    """(what, figure, target, verdict) rows of `bench_linear`."""
    runs, factor = linear["runs"], linear["factor"]
    small, big = _med([r["seconds"] for r in runs["small"]]), _med([r["seconds"] for r in runs["big"]])
    ratio = _med([b["seconds"] / s["seconds"] for s, b in zip(runs["small"], runs["big"])])
    limit = 1.1 * factor
    label = f"{linear['big'][0]:,}/{linear['big'][1]:,} day ({factor}× the max day)"
    rows: list[Row] = [
        (f"max day / {label}, median of {len(runs['small'])} interleaved pairs", f"{small:.2f} s / {big:.2f} s",
         "", ""),
        (f"{label} / max day, median of per-pair ratios", f"{ratio:.2f}×", f"≤ {limit:.1f}×",
         "met" if ratio <= limit else "NOT met"),
    ]
    for stage in STAGES:
        s = _med([r["stages"].get(stage, {}).get("busy", 0.0) for r in runs["small"]])
        b = _med([r["stages"].get(stage, {}).get("busy", 0.0) for r in runs["big"]])
        rows.append((f"  {stage}: task seconds, max day / {factor}× day", f"{s:.2f} s / {b:.2f} s = {b / s:.2f}×"
                     if s else f"{s:.2f} s / {b:.2f} s", "", ""))
    for size, volume_factor in (("small", 1), ("big", factor)):
        peak = max(r["memory"].total_rss for r in runs[size])
        target = RSS_TARGETS.get(volume_factor)
        rows.append((f"peak RSS, pipeline + Postgres processes, {'max day' if size == 'small' else label}",
                     f"{peak / env.GIB:.2f} GiB", f"≤ {target / env.GIB:.1f} GiB" if target else "",
                     ("met" if peak <= target else "NOT met") if target else ""))
    return rows
