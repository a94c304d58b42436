"""The benchmark: `make bench` = `python -m devtools.bench` (= `... bench all`).

    python -m devtools.bench [all|day|history|cli|linear|scale|land] [--orders N] [--events N] [--days N]
        [--repeat N] [--workers N] [--scale-days N] [--timeline] [--dir DIR] [--input DIR --date D] [--factor N]
    python -m devtools.bench serving [--sizes 100,365] [--runs 5]   # see devtools/bench/serving.py

- `day`: the max-volume day (500,000 orders, 2,000,000 events; generated once into <dir>/max) runs
  through the whole Luigi pipeline (`DailyPipeline`: land, stage, model, checks, publish) on a fresh
  lake and a fresh database of a throwaway embedded Postgres (<dir>/pg-<pid>), `--repeat` times.
  Reported: each stage's busy seconds (sum of its tasks) and wall span, the total, and, in the
  same run, the floor: a bare single-stream COPY of the same final fact and dimension rows into
  empty tables of the same shape (binary and CSV), and DuckDB reading the input. Those runs go
  unobserved; one more run samples peak memory (summed RSS of the pipeline processes and the
  Postgres server; and getrusage) and is not timed. Also the generator's time for a max-volume day.
- `history`: `--days` (30) consecutive days of 100,000 orders / 1,000,000 events (generated once
  into <dir>/history-<orders>x<events>) through the pipeline, one date after the other, into one
  lake and one database; day N's time against day 1's, and (noise-robust) the last days run as
  interleaved pairs against a second lake and database without history (see `bench_history`).
- `cli`: the README's daily command as cron runs it, a whole `luigi` process per run (devtools/bench/cli.py),
  `--repeat` times on the history window's first date (or `--input DIR --date D`), fresh lake and database.
- `all` (the default): `day`, `history`, then `cli`; one table with every figure, target and ratio.
- `linear`: the max day and a day `--factor` (4) times its size, interleaved pairs: the ratio of their
  times, each stage's task seconds at both sizes, peak RSS (devtools/bench/linear.py).
- `scale`: backfill throughput: `RangeDaily` over `--scale-days` (10) of the history days with 1 and
  with 2 Luigi workers, each on a fresh lake and database.
- `land`: the landing step alone on the max-volume day: wall and CPU seconds per source.
- `rebuild`: days per minute of `python -m pipeline rebuild-serving` (see devtools/bench/rebuild.py).
- `partitions`: query, publish and view figures at `--small` vs `--large` daily partitions
  (see devtools/bench/partitions.py).

`--orders/--events` replace both volumes (tests run `--orders 2000 --events 10000 --days 2`). The
pipeline runs in a child process (`python -m devtools.bench _run ...`) so that getrusage and the
memory samples see only the pipeline; its time excludes the interpreter's start and imports.
Timings on a shared 2-core machine are noisy: figures are medians of `--repeat` runs, and every
ratio compares figures measured in the same run.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devtools.bench import env as env
from devtools.bench.table import figures_table, print_table

BENCH_DIR = env.BENCH_DIR
MAX_DAY = dt.date(2025, 12, 15)
HISTORY_START = dt.date(2026, 1, 5)  # a Monday: the weekly catalog snapshots fall inside the window
MAX_VOLUME = (500_000, 2_000_000)
DAY_VOLUME = (100_000, 1_000_000)


# ------------------------------------------------------------------------------------- inputs
def _generate(root: Path, start: dt.date, days: int, orders: int, events: int) -> Path:
    """Generate (once: a marker per day) `days` days of incoming files from `start` under root."""
    from devtools import generate

    window = [start + dt.timedelta(days=i) for i in range(days)]
    missing = [day for day in window if not (root / f".complete-{day.isoformat()}").exists()]
    if missing:
        first = missing[0]
        generate.generate(first, (window[-1] - first).days + 1, root, orders_per_day=orders, events_per_day=events)
        if first != start and first.weekday() != 0:
            # the generator writes catalogs on its first day: keep the window's weekly snapshots only
            for kind in ("products", "users"):
                (root / kind / f"{kind}_{first.isoformat()}.json").unlink(missing_ok=True)
        for day in window:
            (root / f".complete-{day.isoformat()}").write_text(f"{orders} orders, {events} events\n")
    return root


def max_day_input(root: Path = BENCH_DIR, volume: tuple[int, int] = MAX_VOLUME) -> Path:
    """The cached max-volume day of incoming files (generated on first use)."""
    folder = root / ("max" if volume == MAX_VOLUME else f"day-{volume[0]}x{volume[1]}")
    legacy = folder / ".complete"  # the marker of earlier versions of this module
    if legacy.exists():
        return folder
    return _generate(folder, MAX_DAY, 1, *volume)


def history_input(days: int, root: Path = BENCH_DIR, volume: tuple[int, int] = DAY_VOLUME) -> Path:
    """The cached history window: `days` consecutive days from HISTORY_START."""
    return _generate(root / f"history-{volume[0]}x{volume[1]}", HISTORY_START, days, *volume)


def generator_seconds(root: Path, volume: tuple[int, int]) -> float:
    """Seconds `python -m devtools.generate` takes for one day of `volume` (into a scratch folder)."""
    out = root / f"gen-{os.getpid()}"
    try:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "devtools.generate", MAX_DAY.isoformat(), "1",
                        "--orders-per-day", str(volume[0]), "--events-per-day", str(volume[1]), "--out", str(out)],
                       check=True, stdout=subprocess.DEVNULL, cwd=env.resources.REPO_ROOT)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)


# --------------------------------------------------------------------------- pipeline runs
def _child_run(mode: str, dates: list[dt.date], workers: int, clock_dir: Path, *,
               sample_memory: bool = True) -> dict[str, Any]:
    """Run the pipeline in a child process (see `_run`); return its report plus peak memory (None: not sampled).

    The sampler walks the pipeline's ~25 processes every 20 ms, which costs the run ~0.8 s of the
    machine's two cores: a run whose time is reported as what a user sees goes unsampled.
    """
    report = clock_dir / f"report-{os.getpid()}-{time.monotonic_ns()}.json"
    cmd = [sys.executable, "-m", "devtools.bench", "_run", mode, *(d.isoformat() for d in dates),
           "--workers", str(workers), "--report", str(report), "--dir", str(clock_dir)]
    env.checkpoint()
    # the child's progress lines go straight to our stdout; its log (stderr) is kept for errors
    proc = subprocess.Popen(cmd, cwd=env.resources.REPO_ROOT, stderr=subprocess.PIPE, text=True)
    with (env.MemorySampler([proc.pid, env.postmaster_pid()]) if sample_memory
          else contextlib.nullcontext()) as memory:
        _, log = proc.communicate()
    if proc.returncode != 0 or not report.exists():
        raise RuntimeError(f"the pipeline run failed (exit {proc.returncode}):\n{log[-4000:]}")
    result = json.loads(report.read_text())
    report.unlink()
    result["memory"] = memory.peak if memory else None
    return result


def _run(argv: list[str]) -> int:
    """Child process: run DailyPipeline per date (`days`) or one RangeDaily (`range`); write a report."""
    import logging

    import luigi

    parser = argparse.ArgumentParser(prog="python -m devtools.bench _run")
    parser.add_argument("mode", choices=["days", "range"])
    parser.add_argument("dates", nargs="+", type=dt.date.fromisoformat)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--timeline", action="store_true", help="print each max-day run's task timeline")
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # A failed task must fail the benchmark now, not wait [scheduler] retry_delay for a retry.
    luigi.configuration.get_config().set("worker", "keep_alive", "false")
    from pipeline import tasks

    postmaster = env.postmaster_pid()
    cpu: dict[str, float] = {}

    def own_cpu() -> float:  # this process and the task processes it reaped
        usages = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return sum(usage.ru_utime + usage.ru_stime for usage in usages)

    def build(*roots: luigi.Task) -> float:
        luigi.task_register.Register.clear_instance_cache()
        started, cpu_before, pg_before = time.perf_counter(), own_cpu(), env.postgres_cpu(postmaster)
        if not luigi.build(list(roots), workers=args.workers, local_scheduler=True, log_level="WARNING"):
            raise SystemExit(f"the pipeline failed for {[r.task_id for r in roots]}")
        seconds = time.perf_counter() - started
        time.sleep(0.2)  # the run's backends exit when its connections close: let the postmaster reap them
        cpu.update(pipeline=own_cpu() - cpu_before, postgres=env.postgres_cpu(postmaster) - pg_before)
        return seconds

    out: dict[str, Any] = {"days": []}
    if args.mode == "range":
        start, stop = min(args.dates), max(args.dates) + dt.timedelta(days=1)
        with env.task_clock(args.dir) as clock:
            seconds = build(tasks.RangeDaily(of=tasks.DailyPipeline, start=start, stop=stop,
                                             days_back=100_000))
        out["days"].append({"dates": [d.isoformat() for d in args.dates], "seconds": seconds,
                            "stages": env.stage_spans(clock)})
        clock.unlink()
    else:
        for i, day in enumerate(args.dates):
            with env.task_clock(args.dir) as clock:
                seconds = build(tasks.DailyPipeline(date=day))
            out["days"].append({"date": day.isoformat(), "seconds": seconds, "stages": env.stage_spans(clock),
                                "timeline": env.timeline(clock), "cpu": dict(cpu)})
            clock.unlink()
            if len(args.dates) > 1:
                print(f"    {day}: {seconds:.2f} s ({i + 1}/{len(args.dates)})", flush=True)
    out["self_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["children_maxrss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    args.report.write_text(json.dumps(out))
    return 0


def _fresh_lake(root: Path, name: str) -> Path:
    lake = root / f"lake-{os.getpid()}-{name}"
    shutil.rmtree(lake, ignore_errors=True)
    return lake


# ------------------------------------------------------------------------------- the benches
def bench_history(args: argparse.Namespace, admin: str) -> dict[str, Any]:
    """`--days` consecutive days into one lake and database (A); each day's pipeline seconds.

    On a shared machine one day's time swings with the load more than with the history, so the last
    k days are also run as interleaved pairs: the date on A (the whole history before it) and the
    same date on B (a second lake and database holding only the previous date, run first to warm
    it up), one right after the other. The median ratio of the pairs isolates the cost of history.
    No run is memory-sampled: the day times are the target's figures (the max day reports the peak).
    """
    incoming = history_input(args.days, args.dir, args.day_volume)
    dates = [HISTORY_START + dt.timedelta(days=i) for i in range(args.days)]
    k = min(5, args.days // 4) if args.days >= 4 else min(1, args.days - 1)
    lakes = {name: _fresh_lake(args.dir, f"history-{name}") for name in ("a", "b")}
    pairs: list[tuple[float, float]] = []
    try:
        with env.fresh_database(admin) as db_a, env.fresh_database(admin) as db_b:
            where = {"a": {"ECOMM_LAKE_DIR": str(lakes["a"]), "ECOMM_PG_DATABASE": db_a},
                     "b": {"ECOMM_LAKE_DIR": str(lakes["b"]), "ECOMM_PG_DATABASE": db_b}}

            def run(name: str, days: list[dt.date]) -> dict[str, Any]:
                with env.environment(ECOMM_DATA_DIR=str(incoming), **where[name]):
                    return _child_run("days", days, args.workers, args.dir, sample_memory=False)

            history = run("a", dates[:len(dates) - k])
            days = history["days"]
            cold = [i == 0 for i in range(len(days))]  # the first date of a process pays its imports
            if k:
                run("b", [dates[-k - 1]])  # B's warm-up: its first date also lands the catalogs
            for day in dates[len(dates) - k:]:
                on_a, on_b = run("a", [day]), run("b", [day])
                days += on_a["days"]
                cold.append(True)
                pairs.append((on_a["days"][0]["seconds"], on_b["days"][0]["seconds"]))
                print(f"    pair {day}: {pairs[-1][0]:.2f} s after {len(days) - 1} days of history,"
                      f" {pairs[-1][1]:.2f} s after 1", flush=True)
    finally:
        for lake in lakes.values():
            shutil.rmtree(lake, ignore_errors=True)
    for i, day in enumerate(days):
        stages = ", ".join(f"{stage} {span['busy']:.2f}" for stage, span in day["stages"].items())
        print(f"  history day {i + 1:2d} ({day['date']}): {day['seconds']:.2f} s (task seconds: {stages})", flush=True)
    return {"seconds": [d["seconds"] for d in days], "cold": cold, "pairs": pairs, "volume": args.day_volume}


def bench_scale(args: argparse.Namespace, admin: str) -> dict[str, Any]:
    """Backfill of `--scale-days` history days with RangeDaily, 1 and 2 workers."""
    incoming = history_input(args.scale_days, args.dir, args.day_volume)
    dates = [HISTORY_START + dt.timedelta(days=i) for i in range(args.scale_days)]
    out: dict[int, list[float]] = {1: [], 2: []}
    for i in range(args.repeat):
        for workers in (1, 2):
            lake = _fresh_lake(args.dir, f"scale{workers}")
            try:
                with env.fresh_database(admin), env.environment(ECOMM_LAKE_DIR=str(lake),
                                                               ECOMM_DATA_DIR=str(incoming)):
                    run = _child_run("range", dates, workers, args.dir, sample_memory=False)  # timed only
            finally:
                shutil.rmtree(lake, ignore_errors=True)
            out[workers].append(run["days"][0]["seconds"])
            print(f"  backfill run {i + 1}/{args.repeat}, {workers} worker(s): {len(dates)} days in"
                  f" {out[workers][-1]:.1f} s", flush=True)
    return {"seconds": out, "days": len(dates), "volume": args.day_volume}


def bench_land(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds to land each source of the max-volume day into an empty lake.

    CPU seconds are this process's (DuckDB's threads included): on a shared machine they move far
    less with the other work than the wall seconds do.
    """
    from pipeline.ingest import landing

    incoming = max_day_input(args.dir, args.max_volume)
    lake = _fresh_lake(args.dir, "land")
    figures: dict[str, tuple[float, float]] = {}
    try:
        with env.environment(ECOMM_DATA_DIR=str(incoming), ECOMM_LAKE_DIR=str(lake)):
            start, start_cpu = time.perf_counter(), time.process_time()
            for label, func in (("land orders", lambda: landing.land_orders(MAX_DAY)),
                                ("land events", lambda: landing.land_events(MAX_DAY)),
                                ("land catalogs", lambda: [landing.land_catalog(k, MAX_DAY)
                                                           for k in ("products", "users")])):
                began, began_cpu = time.perf_counter(), time.process_time()
                func()
                figures[label] = (time.perf_counter() - began, time.process_time() - began_cpu)
            figures["land total"] = (time.perf_counter() - start, time.process_time() - start_cpu)
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_run"]:
        return _run(argv[1:])
    if argv[:1] == ["_step"]:  # one step of one source and date (devtools/bench/step.py)
        from devtools.bench import step

        return step.run_child(argv[1:])
    if argv[:1] == ["serving"]:  # BI queries and the publish at two history sizes (devtools/bench/serving.py)
        from devtools.bench import serving

        return serving.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m devtools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="all",
                        choices=["all", "day", "history", "cli", "linear", "scale", "land", "rebuild", "partitions"])
    parser.add_argument("--orders", type=int, help="orders per day for every bench (default 500K max day, 100K days)")
    parser.add_argument("--events", type=int, help="events per day for every bench (default 2M max day, 1M days)")
    parser.add_argument("--days", type=int, default=30, help="history days (default 30)")
    parser.add_argument("--scale-days", type=int, default=10, help="days of the scale-out backfill (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="max-day runs (medians; default 3)")
    parser.add_argument("--workers", type=int, default=2, help="Luigi workers of the day and history runs")
    parser.add_argument("--timeline", action="store_true",
                        help="print each max-day run's task timeline (cli: each run's, from its run audit)")
    parser.add_argument("--small", type=int, default=30, help="partitions: the smaller count (default 30)")
    parser.add_argument("--large", type=int, default=1000, help="partitions: the larger count (default 1000)")
    parser.add_argument("--dir", type=Path, default=BENCH_DIR, help="cache and scratch folder (default data/bench)")
    parser.add_argument("--factor", type=int, default=4, help="linear: the big day's size in max days (default 4)")
    parser.add_argument("--stage", choices=["land", "stage"],
                        help="linear: that step alone per source, at both sizes (devtools/bench/step.py)")
    parser.add_argument("--input", type=Path, help="cli: an incoming folder to run instead of the generated day")
    parser.add_argument("--date", type=dt.date.fromisoformat, help="cli: the date of --input to run")
    args = parser.parse_args(argv)
    if args.days < 1 or args.repeat < 1 or args.scale_days < 1:
        parser.error("--days, --repeat and --scale-days must be at least 1")
    if (args.input is None) != (args.date is None):
        parser.error("--input and --date go together")
    args.dir = args.dir.absolute()
    args.dir.mkdir(parents=True, exist_ok=True)
    args.max_volume = (args.orders or MAX_VOLUME[0], args.events or MAX_VOLUME[1])
    args.day_volume = (args.orders or DAY_VOLUME[0], args.events or DAY_VOLUME[1])
    if args.what in ("rebuild", "partitions"):
        import importlib

        if args.what == "rebuild" and "--days" not in argv:
            args.days = 5
        return importlib.import_module(f"devtools.bench.{args.what}").main(args)
    if args.what == "linear" and args.stage:
        from devtools.bench import step

        load_before = os.getloadavg()[0]
        print(f"linearity of one step: {args.stage}, the max day and {args.factor}x its size, interleaved", flush=True)
        rows = step.step_rows(step.bench_step(args))
        print_table([*rows, ("load average (1 min), before / after", f"{load_before:.1f} / {os.getloadavg()[0]:.1f}",
                             "", "")])
        return 0
    if args.what == "land":
        print_table([(f"{label}: wall; CPU seconds", f"{wall:.2f} s; {cpu:.2f} s", "", "")
                     for label, (wall, cpu) in bench_land(args).items()])
        return 0
    day = history = scale = cli = linear = None
    load_before = os.getloadavg()[0]
    with env.throwaway_postgres(args.dir) as admin:
        if args.what in ("all", "day"):
            print(f"max-volume day: {args.max_volume[0]:,} orders, {args.max_volume[1]:,} events", flush=True)
            from devtools.bench import day as day_bench

            day = day_bench.bench_day(args, admin)
        if args.what in ("all", "history"):
            print(f"history: {args.days} days of {args.day_volume[0]:,} orders, {args.day_volume[1]:,} events",
                  flush=True)
            history = bench_history(args, admin)
        if args.what in ("all", "cli"):
            from devtools.bench import cli as cli_bench

            incoming, date = ((args.input.absolute(), args.date) if args.input
                              else (history_input(1, args.dir, args.day_volume), HISTORY_START))
            print(f"the README's daily command, whole process: {date} from {incoming}", flush=True)
            cli = cli_bench.bench_cli(args, admin, incoming, date)
        if args.what == "linear":
            from devtools.bench import linear as linear_bench

            print(f"linearity: the max day and {args.factor}x its size, interleaved", flush=True)
            linear = linear_bench.bench_linear(args, admin)
        if args.what == "scale":
            print(f"scale-out: {args.scale_days} days, 1 and 2 workers", flush=True)
            scale = bench_scale(args, admin)
    rows = figures_table(day, history, scale, args, (load_before, os.getloadavg()[0]), cli=cli)
    if linear:
        from devtools.bench import linear as linear_bench

        rows[-1:-1] = linear_bench.linear_rows(linear)  # before the machine's load
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
