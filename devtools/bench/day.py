"""The max-volume day against its floors (`python -m devtools.bench day [--repeat N] [--timeline]`).

`--repeat` timed runs of the whole pipeline on the max day (see devtools/bench/__init__.py), each
followed by its floors in the same run: the bare binary and CSV COPY of the final rows
(`fixtures.bare_copy`) and DuckDB reading the day's input into Parquet (`fixtures.read_floor`);
then one more run, not timed, whose memory is sampled (the sampler costs a run CPU time).
"""
from __future__ import annotations

import argparse
import shutil
from typing import Any

from devtools import bench
from devtools.bench import env


def bench_day(args: argparse.Namespace, admin: str) -> dict[str, Any]:
    """The max-volume day, `--repeat` timed runs, then one run whose memory is sampled (not timed).

    Each timed run: stages, total and, in the same run, the floors (the bare COPY of the final rows,
    DuckDB reading the input). The timed runs go unobserved (see `devtools.bench._child_run`); the last run's
    figures are its peak memory only.
    """
    from devtools.bench import fixtures
    from pipeline.serving import pg

    volume = args.max_volume
    incoming = bench.max_day_input(args.dir, volume)
    runs: list[dict[str, Any]] = []
    memory: Any = None
    for i in range(args.repeat + 1):
        sampled = i == args.repeat
        lake = bench._fresh_lake(args.dir, f"day{i}")
        try:
            with env.fresh_database(admin), env.environment(ECOMM_LAKE_DIR=str(lake), ECOMM_DATA_DIR=str(incoming)):
                run = bench._child_run("days", [bench.MAX_DAY], args.workers, args.dir, sample_memory=sampled)
                day = run["days"][0]
                if sampled:
                    memory = run["memory"]
                    print(f"  max day run {i + 1}/{args.repeat + 1}: peak RSS {memory.total_rss / env.MIB:.0f} MiB"
                          f" (memory sampled, not timed: its {day['seconds']:.2f} s are not counted)", flush=True)
                    continue
                with pg.connect() as conn:
                    floors = {fmt: fixtures.bare_copy(
                        conn, bench.MAX_DAY, fmt, tables=fixtures.FACT_TABLES + fixtures.DIMENSION_TABLES)
                        for fmt in ("binary", "csv")}
                    rows = conn.execute("select fact_orders_rows + fact_events_rows from audit.publish_log"
                                        " where load_date = %s", [bench.MAX_DAY]).fetchone()[0]
                floors["read"] = fixtures.read_floor(incoming, bench.MAX_DAY, lake)
        finally:
            shutil.rmtree(lake, ignore_errors=True)
        publish_task = sum(t["end"] - t["start"] for t in day["timeline"] if t["task"].startswith("Publish_"))
        runs.append({"seconds": day["seconds"], "stages": day["stages"], "publish_task": publish_task,
                     "floor": floors, "rows": rows, "child_maxrss": (run["self_maxrss"], run["children_maxrss"]),
                     "cpu": day["cpu"]})
        print(f"  max day run {i + 1}/{args.repeat + 1}: pipeline {day['seconds']:.2f} s"
              f" ({day['cpu']['pipeline']:.2f} CPU s + Postgres {day['cpu']['postgres']:.2f}), COPY floor binary"
              f" {floors['binary']:.2f} s / csv {floors['csv']:.2f} s, reading the input {floors['read']:.2f} s"
              f" (memory not sampled)", flush=True)
        if args.timeline:
            print(env.format_timeline(day["timeline"]), flush=True)
    return {"runs": runs, "memory": memory, "generate": bench.generator_seconds(args.dir, volume), "volume": volume}
