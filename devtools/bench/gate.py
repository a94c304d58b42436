"""The quality gate alone, as a date's gate task runs it (`python -m devtools.bench.gate [--date D] [--repeat N]`).

On a lake where the date is built up to its gate (ECOMM_LAKE_DIR; for instance after
`luigi --module pipeline.tasks QualityGate --date 2026-01-05 --local-scheduler` with ECOMM_DATA_DIR at the day
`python -m devtools.bench cli` generates, data/bench/history-100000x1000000), each run is a fresh process that
imports `pipeline.tasks` and runs the soda-core warm-up as the `luigi` process does
(`pipeline.tasks.warmup`), then forks a child that runs `gate.run_gate` for the date; printed per run: the
child's CPU seconds (getrusage, user + system) and wall seconds, from the gate's start to its end.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys

_CHILD = """
import datetime as dt, gc, os, resource, sys, time
import pipeline.tasks
from pipeline.tasks import warmup
warmup._import()
gc.freeze()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    from pipeline.quality import gate
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    gate.run_gate(dt.date.fromisoformat(sys.argv[1]))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    os.write(write, f"{cpu:.3f} {time.perf_counter() - started:.3f}".encode())
    os._exit(0)
os.close(write)
os.waitpid(pid, 0)
print(os.read(read, 100).decode())
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.gate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--date", type=dt.date.fromisoformat, default=dt.date(2026, 1, 5))
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    if "ECOMM_LAKE_DIR" not in os.environ:
        parser.error("set ECOMM_LAKE_DIR to a lake where the date is built up to its gate")
    cpus = []
    for i in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", _CHILD, args.date.isoformat()], capture_output=True, text=True,
                             check=True).stdout.split()
        cpus.append(float(out[0]))
        print(f"gate run {i + 1}/{args.repeat}: {out[0]} CPU s, {out[1]} s wall,"
              f" load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"median {statistics.median(cpus):.3f} CPU s ({min(cpus):.3f}-{max(cpus):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
