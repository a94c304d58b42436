"""One step at two sizes (`python -m devtools.bench linear --stage land|stage [--factor 4] [--repeat N]`).

The whole-pipeline `linear` bench says which stage grows faster than the data; this one isolates a
stage. For each source (events, orders), the max day and the day `--factor` times its size run the
step alone, interleaved (max, big, max, big ...), each in a fresh child process
(`python -m devtools.bench _step <step> <source> <date>`) on a lake where the previous step is done
(for `stage`, each size is landed once beforehand). Measured: the step's wall and CPU seconds
(inside the child, after its imports: a task process is forked from a warm worker), the child's
peak RSS (its rusage once reaped: DuckDB's memory included) and the peak size of DuckDB's spill
folder while it ran.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from devtools import bench
from devtools.bench import env

SOURCES = ("events", "orders")
Row = tuple[str, str, str, str]


def _land(source: str, day: dt.date) -> None:
    from pipeline.ingest import landing

    {"orders": landing.land_orders, "events": landing.land_events}[source](day)


def _stage(source: str, day: dt.date) -> None:
    from pipeline.transform import staging

    staging.stage(source, day)


STEPS = {"land": _land, "stage": _stage}


def run_child(argv: list[str]) -> int:
    """Child process: run one step of one source and date, nothing else; write its seconds and CPU seconds.

    Timed inside the child, after the imports: a Luigi task process is forked from a worker that
    has imported everything already (and without cached bytecode the imports alone cost seconds).
    """
    import json
    import logging
    import resource

    logging.basicConfig(level=logging.WARNING)
    step, source, day, report = argv
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    STEPS[step](source, dt.date.fromisoformat(day))
    after, seconds = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    Path(report).write_text(json.dumps({"seconds": seconds, "cpu": cpu}))
    return 0


def _folder_bytes(folder: Path, pid: int | None = None) -> int:
    """The bytes of the files in a folder; with `pid`, of that process's DuckDB spill files only (the default spill
    folder is shared by every process of the user)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            if pid is not None and not name.startswith(f"duckdb_temp_{pid}_"):
                continue
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:  # DuckDB removed it meanwhile
                pass
    return total


def spill_folder() -> Path:
    """Where the child's DuckDB spills: [duckdb] temp_directory (`pipeline.lake.spill.folder`)."""
    from pipeline.lake import spill

    return Path(spill.folder())


def measure(step: str, source: str, lake: Path, incoming: Path) -> dict[str, float]:
    """Run one step in a child process: wall and CPU seconds, peak RSS and peak spilled bytes."""
    report = lake.parent / f"step-{os.getpid()}.json"
    cmd = [sys.executable, "-m", "devtools.bench", "_step", step, source, bench.MAX_DAY.isoformat(), str(report)]
    spill_dir = spill_folder()
    spill = {"peak": 0, "pid": 0}  # the child's pid once it started: only its spill files count
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            if spill["pid"]:
                spill["peak"] = max(spill["peak"], _folder_bytes(spill_dir, spill["pid"]))

    watcher = threading.Thread(target=watch, daemon=True)
    log = lake.parent / f"step-{os.getpid()}.log"
    with env.environment(ECOMM_LAKE_DIR=str(lake), ECOMM_DATA_DIR=str(incoming)), open(log, "w") as out:
        watcher.start()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=env.resources.REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        spill["pid"] = proc.pid
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not every child's maximum
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    watcher.join()
    text = log.read_text(errors="replace")
    log.unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"{step} {source} failed (exit {proc.returncode}):\n{text[-4000:]}")
    figures = json.loads(report.read_text())
    report.unlink()
    return {**figures, "process_seconds": seconds, "rss": usage.ru_maxrss * 1024, "spill": spill["peak"]}


def _prepared_lake(args: argparse.Namespace, volume: tuple[int, int], name: str) -> tuple[Path, Path]:
    """A lake for the step: empty for `land`; for `stage`, both daily sources landed (once)."""
    incoming = bench.max_day_input(args.dir, volume)
    lake = bench._fresh_lake(args.dir, name)
    if args.stage == "stage":
        for source in SOURCES:
            measure("land", source, lake, incoming)
    return lake, incoming


def _reset(step: str, source: str, lake: Path) -> None:
    """Remove what the step wrote, so that its next run does the whole work again."""
    layers = {"land": [("raw", source), ("audit", "rejected_lines")],
              "stage": [("staging", f"stg_{source}"), ("audit", "bad_records"), ("audit", "reconciliation")]}
    for layer, table in layers[step]:
        shutil.rmtree(lake / layer / table, ignore_errors=True)


def bench_step(args: argparse.Namespace) -> dict[str, Any]:
    """`--repeat` interleaved pairs of one step, per source: the max day, then `--factor` times it."""
    small = args.max_volume
    big = (small[0] * args.factor, small[1] * args.factor)
    runs: dict[str, dict[str, list[dict[str, float]]]] = {s: {"small": [], "big": []} for s in SOURCES}
    lakes = {size: _prepared_lake(args, volume, f"step-{size}") for size, volume in (("small", small), ("big", big))}
    try:
        for i in range(args.repeat):
            for source in SOURCES:
                for size, volume in (("small", small), ("big", big)):
                    lake, incoming = lakes[size]
                    _reset(args.stage, source, lake)
                    run = measure(args.stage, source, lake, incoming)
                    runs[source][size].append(run)
                    print(f"  {args.stage} {source} {volume[0]:,}/{volume[1]:,} day, pair {i + 1}/{args.repeat}:"
                          f" {run['seconds']:.2f} s, {run['cpu']:.2f} CPU s, peak RSS {run['rss'] / env.MIB:.0f} MiB,"
                          f" spilled {run['spill'] / env.MIB:.0f} MiB", flush=True)
    finally:
        for lake, _ in lakes.values():
            shutil.rmtree(lake, ignore_errors=True)
    return {"runs": runs, "small": small, "big": big, "factor": args.factor, "stage": args.stage}


def step_rows(result: dict[str, Any]) -> list[Row]:
    """(what, figure, target, verdict) rows of `bench_step`: per source, medians at both sizes."""
    factor, stage = result["factor"], result["stage"]
    rows: list[Row] = []
    for source, runs in result["runs"].items():
        def med(size: str, key: str) -> float:
            return statistics.median(r[key] for r in runs[size])

        for key, label, unit, scale in (("seconds", "wall", "s", 1), ("cpu", "CPU", "s", 1),
                                         ("rss", "peak RSS", "MiB", env.MIB), ("spill", "spilled", "MiB", env.MIB)):
            s, b = med("small", key) / scale, med("big", key) / scale
            ratio = f" = {b / s:.2f}×" if s else ""
            rows.append((f"{stage} {source}: {label}, max day / {factor}× day", f"{s:.1f} {unit} / {b:.1f} {unit}{ratio}",
                         f"≤ {1.1 * factor:.1f}×" if key == "seconds" else "", ""))
    return rows
