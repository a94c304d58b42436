"""`make demo` (`python -m devtools.demo`): a week of sample data through the whole pipeline.

1. generates 7 days (3,000 orders and 30,000 events a day, 2 % dirty rows) into the incoming folder
   (`ECOMM_DATA_DIR`, default data/incoming); the files are byte-identical on every run;
2. backfills them with Luigi's RangeDaily, 2 workers, local scheduler: the documented command
   `luigi --module pipeline.tasks RangeDaily --of DailyPipeline ...`, run as a subprocess whose
   log goes to `<lake>/_logs/demo-luigi.log`, into the serving Postgres (the embedded one unless
   ECOMM_PG_DSN is set);
3. prints the run summary of the week, how to connect, and two of the seed system's sample
   queries from queries/ (revenue by category per day, pipeline health), run on Postgres.

A rerun regenerates the same bytes (landing sees unchanged checksums), finds every date published
and runs nothing. Options: `--start`, `--days`, `--orders-per-day`, `--events-per-day`,
`--dirty-rate`, `--workers`.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline import cli, config, resources
from pipeline.lake import s3

QUERIES_DIR = resources.QUERIES_DIR
# Two of the seed system's sample queries (queries/README.md); they run unchanged on Postgres.
SAMPLE_QUERIES = ("revenue_by_category_daily", "pipeline_health")
TOP_PER_DAY = 3  # rows shown per day of the revenue query


def _parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog="python -m devtools.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--start", type=cli.date_arg, default=dt.date(2025, 12, 13), help="first day (YYYY-MM-DD)")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--orders-per-day", type=int, default=3000)
    p.add_argument("--events-per-day", type=int, default=30000)
    p.add_argument("--dirty-rate", type=float, default=0.02)
    p.add_argument("--workers", type=int, default=2)
    return p


def _step(message: str) -> None:
    print(f"\n== {message}", flush=True)


def backfill_command(start: dt.date, stop: dt.date, workers: int) -> list[str]:
    """The documented backfill command (local scheduler)."""
    return [sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "RangeDaily", "--of", "DailyPipeline",
            "--start", start.isoformat(), "--stop", stop.isoformat(), "--workers", str(workers), "--local-scheduler"]


def _title(text: str, name: str) -> str:
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    return first.lstrip("-").strip() if first.startswith("--") else name


MAX_WIDTH = 100  # characters a printed table may take; a wider one is printed turned (one row per column)


def _lines(columns: list[str], cells: list[list[str]]) -> list[str]:
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return ["    " + line.rstrip() for line in lines]


def _table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A text table; wider than MAX_WIDTH, it is turned (a column per row of the result) and split into blocks."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    lines = _lines(columns, cells)
    if max(len(line) for line in lines) <= MAX_WIDTH or not cells:
        return "\n".join(lines)
    label = max(len(c) for c in columns[1:]) if len(columns) > 1 else 0
    per_block = max(1, (MAX_WIDTH - 4 - label) // (max(len(v) for r in cells for v in r) + 2))
    blocks = []
    for first in range(0, len(cells), per_block):
        chunk = cells[first:first + per_block]
        turned = [[name, *(row[i] for row in chunk)] for i, name in enumerate(columns) if i]
        blocks.append("\n".join(_lines([columns[0], *(row[0] for row in chunk)], turned)))
    return "\n\n".join(blocks)


def _top_per_day(rows: list[tuple[Any, ...]], days: list[dt.date]) -> list[tuple[Any, ...]]:
    """The first TOP_PER_DAY rows of each of the demo's days (by the first date column)."""
    index = next((i for i, v in enumerate(rows[0]) if isinstance(v, dt.date)), None) if rows else None
    if index is None:
        return rows
    shown, seen = [], {}
    for row in rows:
        day = row[index]
        seen[day] = seen.get(day, 0) + 1
        if day in days and seen[day] <= TOP_PER_DAY:
            shown.append(row)
    return shown


def run_query(name: str, days: list[dt.date]) -> None:
    """Run queries/<name>.sql on the serving Postgres and print it (the revenue one trimmed per day)."""
    from pipeline.serving import pg

    path = QUERIES_DIR / f"{name}.sql"
    text = path.read_text(encoding="utf-8")
    with pg.connect() as conn:
        cur = conn.execute(text)
        columns = [d.name for d in cur.description]
        rows = cur.fetchall()
    note = ""
    if name.startswith("revenue"):
        total = len(rows)
        rows = _top_per_day(rows, days)
        note = f" (top {TOP_PER_DAY} per day shown, of {total} rows)"
    print(f"\n  {_title(text, name)}{note}\n  [{path.relative_to(resources.REPO_ROOT)}]")
    print(_table(columns, rows))


def connection_help() -> list[str]:
    """How to reach the serving Postgres the demo used."""
    from pipeline.serving import embedded, pg

    lines = ["psql:      make psql   (or: python -m pipeline.serving.pg psql)"]
    target = pg.dsn()
    lines.append(f"DSN:       {pg.redact(target) if target else '(libpq PG* environment)'}")
    info = pg.embedded_status() if not os.environ.get(pg.ENV_DSN) else None
    if info and info.get("port"):
        lines.append(f"BI tools:  postgresql://bi_reader@127.0.0.1:{info['port']}/{embedded.database()}"
                     "  (read-only role, local connections only)")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from devtools import generate
    from pipeline.tasks import summary

    began = time.monotonic()
    days = [args.start + dt.timedelta(days=i) for i in range(args.days)]
    stop = args.start + dt.timedelta(days=args.days)
    incoming = Path(config.data_dir())

    _step(f"1/3 generating {args.days} days from {args.start} into {incoming}")
    t0 = time.monotonic()
    generate.generate(args.start, args.days, incoming, orders_per_day=args.orders_per_day,
                      events_per_day=args.events_per_day, dirty_rate=args.dirty_rate)
    print(f"  {args.orders_per_day} orders and {args.events_per_day} events a day, {args.dirty_rate:.0%} dirty"
          f" rows ({time.monotonic() - t0:.1f}s)")

    command = backfill_command(args.start, stop, args.workers)
    logs = resources.REPO_ROOT / "lake" if s3.is_remote(config.lake_dir()) else Path(config.lake_dir())
    log_path = logs / "_logs" / "demo-luigi.log"  # a local file, also when the lake is in a bucket
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _step("2/3 backfilling with Luigi (local scheduler)")
    print("  " + " ".join(["luigi", *command[3:]]))
    t0 = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        result = subprocess.run(command, cwd=resources.REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
    print(f"  exit code {result.returncode} after {time.monotonic() - t0:.1f}s; Luigi's log: {log_path}")
    if result.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        print("\n".join("  | " + line for line in tail), file=sys.stderr)

    _step("3/3 results")
    summaries = summary.print_summary(days)
    print()
    for line in connection_help():
        print("  " + line)
    if any(s.status == "published" for s in summaries):
        for name in SAMPLE_QUERIES:
            run_query(name, days)
    print(f"\ndemo finished in {time.monotonic() - began:.1f}s. Next, in this shell:")
    for command, what in next_steps(days[-1]):
        print(f"  {command:<50} # {what}")
    return result.returncode


def next_steps(last_day: dt.date) -> list[tuple[str, str]]:
    """The commands to go on with, as a user types them (tests/test_readme_commands.py runs them)."""
    activate = Path(sys.prefix) / "bin" / "activate"
    with contextlib.suppress(ValueError):
        activate = activate.relative_to(Path.cwd())
    steps = [(f"source {activate}", "the project's luigi and python on the PATH, once per shell"),
             (f"python -m pipeline report --date {last_day}", "the daily report of the last day, as HTML")]
    if not os.environ.get("ECOMM_PG_DSN"):
        steps.append(("python -m pipeline.serving.pg stop", "stop the embedded Postgres (it keeps running for BI)"))
    return steps


if __name__ == "__main__":
    sys.exit(main())
