"""The README's daily command timed as a whole process, the way cron runs it (`python -m devtools.bench cli`).

    luigi --module pipeline.tasks DailyPipeline --date D --local-scheduler

runs `--repeat` times on a 100,000 orders / 1,000,000 events day (the history window's first date,
generated once; or `--input DIR --date D`, any incoming folder), each time on a fresh lake and a fresh
database (schema applied beforehand, as on a server that has published before) of the benchmark's
throwaway Postgres. Measured per run, from outside the command: wall seconds from its start to its
exit (Python's start, the imports, scheduling, every task and the run summary), the CPU seconds of
the `luigi` process and every task process it forked (getrusage of the reaped children), the
Postgres server's CPU seconds in the same span, and the peak summed RSS of both (sampled). With
`--timeline`, each run's tasks as the command's own run audit recorded them (start and end from the
command's start, and each task's CPU seconds, `pipeline.tasks.run_audit`), and when the process
exited: where the wall seconds and the CPU went, from nothing but what the command writes anyway.

The command runs without PYTHONDONTWRITEBYTECODE (cron does not set it): Python then reads the
modules' cached bytecode instead of compiling ~600 modules on every start (~0.9 s of CPU).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devtools.bench import env


def luigi_command() -> str:
    """The project's `luigi` script (the one `source .venv/bin/activate` puts on PATH)."""
    beside = Path(sys.executable).with_name("luigi")
    found = str(beside) if beside.exists() else shutil.which("luigi")
    if not found:
        raise SystemExit("no `luigi` command beside this Python or on PATH: run `make setup` first")
    return found


def readme_command(day: dt.date) -> list[str]:
    """The daily command exactly as the README prints it."""
    return [luigi_command(), "--module", "pipeline.tasks", "DailyPipeline", "--date", day.isoformat(),
            "--local-scheduler"]


def cron_environment() -> dict[str, str]:
    """This process's environment as cron would give it to the command: bytecode caching as Python's default."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def run_once(day: dt.date, workdir: Path, *, sample_memory: bool = False) -> dict[str, Any]:
    """One run of the README command in the current environment (lake, data, database); its figures.

    Memory is sampled only when asked: the sampler walks ~25 processes every 20 ms, which costs the
    command ~0.8 s of its 2 cores' time, so timed runs go unobserved and one more run takes the peak.
    """
    postmaster = env.postmaster_pid()
    env.checkpoint()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pg_before = env.postgres_cpu(postmaster)
    log = workdir / f"cli-{os.getpid()}-{time.monotonic_ns()}.log"
    with open(log, "w", encoding="utf-8") as out:
        began = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # the run audit's clock: naive UTC
        started = time.perf_counter()
        proc = subprocess.Popen(readme_command(day), cwd=env.resources.REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env=cron_environment())
        with env.MemorySampler([proc.pid, postmaster]) if sample_memory else contextlib.nullcontext() as memory:
            code = proc.wait()
        seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    time.sleep(0.2)  # the run's backends exit when its connections close: let the postmaster reap them
    pg_cpu = env.postgres_cpu(postmaster) - pg_before
    text = log.read_text(encoding="utf-8", errors="replace")
    log.unlink()
    if code != 0:
        raise RuntimeError(f"the daily command exited {code}:\n{text[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu": cpu, "postgres_cpu": pg_cpu, "memory": memory.peak if memory else None,
            "timeline": audited_timeline(day, began)}


def audited_timeline(day: dt.date, began: dt.datetime) -> list[dict[str, Any]]:
    """The date's task executions in the run audit of the current lake, in seconds from `began`, in start order."""
    from pipeline.tasks import run_audit

    return sorted(({"task": row["task_family"], "start": (row["started_at"] - began).total_seconds(),
                    "end": (row["ended_at"] - began).total_seconds(), "cpu": row.get("cpu_seconds")}
                   for row in run_audit.executions(day) if row["started_at"] and row["ended_at"]),
                  key=lambda task: task["start"])


def bench_cli(args: argparse.Namespace, admin: str, incoming: Path, day: dt.date) -> dict[str, Any]:
    """`--repeat` runs of the README command on fresh lakes and databases."""
    runs = []
    for i in range(args.repeat + 1):  # the timed runs, then one whose memory is sampled
        lake = args.dir / f"lake-{os.getpid()}-cli{i}"
        shutil.rmtree(lake, ignore_errors=True)
        try:
            with env.fresh_database(admin), env.environment(ECOMM_LAKE_DIR=str(lake), ECOMM_DATA_DIR=str(incoming)):
                runs.append(run_once(day, args.dir, sample_memory=i == args.repeat))
        finally:
            shutil.rmtree(lake, ignore_errors=True)
        run = runs[-1]
        what = (f"peak RSS {run['memory'].total_rss / env.MIB:.0f} MiB (memory sampled, not timed)" if run["memory"]
                else f"{run['seconds']:.2f} s wall")
        print(f"  daily command run {i + 1}/{args.repeat + 1}: {what}, {run['cpu']:.2f} CPU s"
              f" (+ Postgres {run['postgres_cpu']:.2f})", flush=True)
        if args.timeline:
            print(env.format_timeline(run["timeline"]), flush=True)
            print(f"    {run['seconds']:6.2f}  the process exited", flush=True)
    return {"runs": runs[:-1], "memory": runs[-1]["memory"], "date": day, "input": incoming}

