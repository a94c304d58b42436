"""The figures table of `python -m devtools.bench`: every figure, its target and the ratios.

Printed as Markdown (docs/performance.md pastes its tables from it). Inputs are the results of
`devtools.bench.day.bench_day`, `devtools.bench`'s `bench_history` and `bench_scale`.
"""
from __future__ import annotations

import argparse
import statistics
from typing import Any

from devtools.bench import env as env
from pipeline import config

ORIGINAL_SECONDS = 79.0  # the Airflow system, 100K orders + 1M events, same kind of machine
TARGETS = {"floor_ratio": 1.2, "day_seconds": 4.0, "rss_bytes": 1.5 * env.GIB, "history_ratio": 1.1,
           "generate_seconds": 10.0, "speed_up": 20.0, "cli_seconds": 3.95,
           "read_floor_ratio": 2.0}
Row = tuple[str, str, str, str]


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _verdict(value: float, target: float) -> str:
    return "met" if value <= target else "NOT met"


def _day_rows(day: dict[str, Any], workers: int) -> list[Row]:
    runs, (orders, events) = day["runs"], day["volume"]
    total = _med([r["seconds"] for r in runs])
    binary = _med([r["floor"]["binary"] for r in runs])
    ratio = _med([r["seconds"] / r["floor"]["binary"] for r in runs])
    read_ratio = _med([r["seconds"] / (r["floor"]["read"] + r["floor"]["binary"]) for r in runs])
    cores = config.cores()
    spread = [(r["cpu"]["pipeline"] + r["cpu"]["postgres"]) / cores for r in runs]
    spread_ratio = [s / (r["floor"]["read"] + r["floor"]["binary"]) for s, r in zip(spread, runs, strict=True)]
    rows: list[Row] = [
        (f"generate a max-volume day ({orders:,} orders, {events:,} events)", f"{day['generate']:.2f} s", "≤ 10 s",
         _verdict(day["generate"], TARGETS["generate_seconds"])),
    ]
    for stage in ("land", "stage", "model", "checks", "publish"):
        busy = _med([r["stages"].get(stage, {}).get("busy", 0.0) for r in runs])
        wall = _med([r["stages"].get(stage, {}).get("wall", 0.0) for r in runs])
        rows.append((f"max day: {stage} (task seconds; wall span)", f"{busy:.2f} s; {wall:.2f} s", "", ""))
    rows += [
        (f"max day: whole pipeline, {workers} Luigi worker(s), median of {len(runs)}", f"{total:.2f} s", "", ""),
        ("COPY floor, binary (facts + dimensions, one stream)", f"{binary:.2f} s", "", ""),
        ("COPY floor, CSV", f"{_med([r['floor']['csv'] for r in runs]):.2f} s", "", ""),
        ("whole max day / COPY floor (binary), median of per-run ratios", f"{ratio:.2f}×", "≤ 1.2×",
         _verdict(ratio, TARGETS["floor_ratio"])),
        ("floor with the input read: DuckDB reads the day's JSON and CSV into Parquet + the binary COPY",
         f"{_med([r['floor']['read'] for r in runs]):.2f} s + {binary:.2f} s", "", ""),
        ("whole max day / that floor, median of per-run ratios", f"{read_ratio:.2f}×", "≤ 2×",
         _verdict(read_ratio, TARGETS["read_floor_ratio"])),
        ("max day: CPU seconds, Luigi + task processes / Postgres (medians)",
         f"{_med([r['cpu']['pipeline'] for r in runs]):.2f} s / {_med([r['cpu']['postgres'] for r in runs]):.2f} s",
         "", ""),
        (f"  that CPU spread evenly over the {cores} cores (no schedule is shorter) / the floor with the input read",
         f"{_med(spread):.2f} s = {_med(spread_ratio):.2f}×",
         "", ""),
        ("whole max day / COPY floor (CSV)", f"{_med([r['seconds'] / r['floor']['csv'] for r in runs]):.2f}×", "", ""),
        ("publish work (preload + Publish task seconds) / COPY floor (binary)",
         f"{_med([r['stages'].get('publish', {}).get('busy', 0.0) / r['floor']['binary'] for r in runs]):.2f}×", "", ""),
        ("the Publish task after the gate (the preloads ran beside the gate) / COPY floor (binary)",
         f"{_med([r['publish_task'] for r in runs]):.2f} s ="
         f" {_med([r['publish_task'] / r['floor']['binary'] for r in runs]):.2f}×", "", ""),
    ]
    mem = day["memory"]  # one more run, sampled and not timed (the timed runs go unobserved)
    # Luigi's process: sampled (its getrusage ru_maxrss keeps the bench parent's peak across exec)
    luigi_rss = mem.root_rss
    largest_task = max(r["child_maxrss"][1] for r in runs)
    rows += [
        ("max day: peak RSS, pipeline + Postgres processes (sampled sum, one more run, not timed)", f"{mem.total_rss / env.GIB:.2f} GiB",
         "≤ 1.5 GiB", _verdict(mem.total_rss, TARGETS["rss_bytes"])),
        ("  of which pipeline processes / Postgres (peaks)",
         f"{mem.pipeline_rss / env.MIB:.0f} / {mem.postgres_rss / env.MIB:.0f} MiB", "", ""),
        ("  PSS at the peak (shared pages counted once)", f"{mem.total_pss / env.MIB:.0f} MiB", "", ""),
        ("  Luigi's process (sampled RSS) / largest task process (getrusage ru_maxrss)",
         f"{luigi_rss / env.MIB:.0f} / {largest_task / env.MIB:.0f} MiB", "", ""),
    ]
    return rows


def _history_rows(history: dict[str, Any]) -> list[Row]:
    secs, (orders, events) = history["seconds"], history["volume"]
    n, median = len(secs), _med(secs)
    speed_up = ORIGINAL_SECONDS / median
    rows: list[Row] = [
        (f"{orders:,}/{events:,} day: median of {n} days", f"{median:.2f} s", "≤ 4 s",
         _verdict(median, TARGETS["day_seconds"])),
        (f"{orders:,}/{events:,} day: fastest / slowest of {n}", f"{min(secs):.2f} s / {max(secs):.2f} s", "", ""),
    ]
    cold = history.get("cold") or [False] * n
    warm_secs = [s for s, c in zip(secs, cold) if not c]
    cold_secs = [s for s, c in zip(secs, cold) if c]
    if warm_secs and cold_secs:
        rows += [
            (f"  in a running process (a backfill's later dates), median of {len(warm_secs)}",
             f"{_med(warm_secs):.2f} s = {ORIGINAL_SECONDS / _med(warm_secs):.1f}×", "≤ 4 s",
             _verdict(_med(warm_secs), TARGETS["day_seconds"])),
            (f"  first date of a process (imports, Soda's warm-up), median of {len(cold_secs)}",
             f"{_med(cold_secs):.2f} s = {ORIGINAL_SECONDS / _med(cold_secs):.1f}×", "≤ 4 s",
             _verdict(_med(cold_secs), TARGETS["day_seconds"])),
        ]
    rows += [
        (f"speed-up vs the original system's {ORIGINAL_SECONDS:.0f} s (median day)", f"{speed_up:.1f}×", "≥ 20×",
         "met" if speed_up >= TARGETS["speed_up"] else "NOT met"),
        (f"day 1 / day {n} (single runs)", f"{secs[0]:.2f} s / {secs[-1]:.2f} s", "", ""),
        (f"day {n} / day 1 (single runs)", f"{secs[-1] / secs[0]:.2f}×", "≤ 1.1×",
         _verdict(secs[-1] / secs[0], TARGETS["history_ratio"])),
    ]
    pairs = history["pairs"]
    if pairs:
        paired = _med([a / b for a, b in pairs])
        label = (f"paired: a date after {n - len(pairs)}–{n - 1} days of history / the same date after 1"
                 f" (median of {len(pairs)} interleaved pairs)")
        rows.append((label, f"{paired:.2f}×", "≤ 1.1×", _verdict(paired, TARGETS["history_ratio"])))
    return rows


def _scale_rows(scale: dict[str, Any]) -> list[Row]:
    days, secs = scale["days"], scale["seconds"]
    one, two = _med(secs[1]), _med(secs[2])
    return [
        (f"backfill {days} days (RangeDaily), 1 worker", f"{one:.1f} s ({days * 60 / one:.1f} days/min)", "", ""),
        (f"backfill {days} days (RangeDaily), 2 workers", f"{two:.1f} s ({days * 60 / two:.1f} days/min)", "", ""),
        ("speed-up 2 workers / 1 worker", f"{one / two:.2f}×", "", ""),
    ]


def _cli_rows(cli: dict[str, Any], volume: tuple[int, int]) -> list[Row]:
    runs = cli["runs"]
    seconds = _med([r["seconds"] for r in runs])
    mem = cli["memory"]
    return [
        (f"the README's daily command (`luigi --module pipeline.tasks DailyPipeline ... --local-scheduler`), whole"
         f" process, {volume[0]:,}/{volume[1]:,} day {cli['date']}, fresh lake, median of {len(runs)}",
         f"{seconds:.2f} s = {ORIGINAL_SECONDS / seconds:.1f}×", f"≤ {TARGETS['cli_seconds']} s",
         _verdict(seconds, TARGETS["cli_seconds"])),
        ("  its CPU seconds: luigi + task processes / Postgres (medians)",
         f"{_med([r['cpu'] for r in runs]):.2f} s / {_med([r['postgres_cpu'] for r in runs]):.2f} s", "", ""),
        ("  its peak RSS, luigi + task processes + Postgres (sampled sum, one more run)",
         f"{mem.total_rss / env.GIB:.2f} GiB",
         "", ""),
    ]


def figures_table(day: dict[str, Any] | None, history: dict[str, Any] | None, scale: dict[str, Any] | None,
                  args: argparse.Namespace, load: tuple[float, float] | None = None,
                  cli: dict[str, Any] | None = None) -> list[Row]:
    """(what, figure, target, verdict) rows for the benches that ran."""
    rows: list[Row] = []
    if day:
        rows += _day_rows(day, args.workers)
    if history:
        rows += _history_rows(history)
    if cli:
        rows += _cli_rows(cli, args.day_volume)
    if scale:
        rows += _scale_rows(scale)
    if load:
        rows.append(("machine load during the run (1-minute load average, start / end; 2 cores)",
                     f"{load[0]:.1f} / {load[1]:.1f}", "", ""))
    return rows


def print_table(rows: list[Row]) -> None:
    """A Markdown table (the README's Performance table is pasted from it)."""
    print("\n| what | figure | target | |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
