"""The benchmark's surroundings: a throwaway embedded Postgres, peak-memory sampling, Luigi task timings.

Used by `devtools.bench` (see there for the commands); nothing here is part of the pipeline.

- `throwaway_postgres()`: the embedded server (`pipeline.serving.pg`) in a fresh data directory under
  data/bench on a free port, stopped and removed afterwards; the environment points the pipeline at it.
- `fresh_database()`: a new database on it with the serving schema applied (schema time is not timed).
- `MemorySampler`: the peak memory of every process involved, sampled from /proc: the pipeline's
  process and its children (Luigi's task processes) and the Postgres server processes.
- `TaskClock`: start and end of every Luigi task run, from Luigi's events (also in worker processes).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import resource
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import luigi
import psutil
import psycopg
from psycopg import sql

from pipeline import resources

BENCH_DIR = resources.REPO_ROOT / "data" / "bench"
PG_ENV = ("ECOMM_PG_DSN", "ECOMM_PG_DATA", "ECOMM_PG_PORT", "ECOMM_PG_DATABASE",
          "PGHOST", "PGDATABASE", "PGSERVICE", "PGUSER", "PGPORT", "PGPASSWORD", "PGOPTIONS")
GIB = 1024 ** 3
MIB = 1024 ** 2


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the block; restore them afterwards."""
    old = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def throwaway_postgres(folder: Path = BENCH_DIR) -> Iterator[str]:
    """The embedded Postgres in <folder>/pg-<pid> on a free port; yields its admin DSN (db postgres)."""
    from pipeline.serving import embedded, pg

    root = folder / f"pg-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    env = {name: None for name in PG_ENV}
    env.update(ECOMM_PG_DATA=str(root / "data"), ECOMM_PG_PORT=str(_free_port()), ECOMM_PG_DATABASE="postgres")
    with environment(**env):
        try:
            pg.start_embedded()
            info = pg.embedded_status()
            yield embedded.socket_dsn(info["socket_dir"], info["port"], "postgres")
        finally:
            with contextlib.suppress(pg.EmbeddedServerError):
                pg.stop_embedded()
            shutil.rmtree(root, ignore_errors=True)


def postmaster_pid() -> int | None:
    """The pid of the embedded server the environment points at (None: not running)."""
    from pipeline.serving import pg

    info = pg.embedded_status()
    return info["pid"] if info else None


def postgres_cpu(pid: int | None) -> float:
    """CPU seconds the server has used so far: the postmaster, its live backends and the ones it reaped."""
    if not pid:
        return 0.0
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        times = root.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                total += times.user + times.system
    return total


@contextlib.contextmanager
def fresh_database(admin_dsn: str, prefix: str = "bench") -> Iterator[str]:
    """A new database with the serving schema, selected through ECOMM_PG_DATABASE; dropped afterwards."""
    from pipeline.serving import migrations, pg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        with environment(ECOMM_PG_DATABASE=name):
            with pg.connect() as conn:
                migrations.ensure_schema(conn)
            yield name
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def checkpoint() -> None:
    """Flush Postgres' dirty buffers so that each measurement starts from the same state."""
    from pipeline.serving import pg

    with contextlib.suppress(psycopg.Error), pg.connect(autocommit=True) as conn:
        conn.execute("checkpoint")


# ------------------------------------------------------------------------------------ memory
@dataclasses.dataclass
class MemoryPeak:
    """Peak memory of a measured block, in bytes."""

    total_rss: int = 0  # max over samples of (pipeline processes + Postgres processes) summed RSS
    total_pss: int = 0  # PSS (shared pages counted once) of the same processes at the RSS peak
    pipeline_rss: int = 0  # max over samples of the pipeline process + its children (Luigi workers)
    postgres_rss: int = 0  # max over samples of the Postgres server processes (summed RSS)
    root_rss: int = 0  # max over samples of the pipeline process alone (Luigi's scheduling process)
    samples: int = 0


def _rss(procs: list[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def _pss(procs: list[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            total += getattr(info, "pss", info.rss)
    return total


class MemorySampler:
    """Samples the summed RSS of the pipeline's process tree and of the Postgres server every `interval` s.

    RSS is cheap to read (/proc/<pid>/statm); the process lists are refreshed every 10 samples and
    PSS (smaps_rollup, ~1 ms a process) is read only when the summed RSS reaches a new peak.
    """

    def __init__(self, roots: list[int | None], interval: float = 0.02) -> None:
        """`roots`: the pipeline's process (its children are included) and the postmaster (or None)."""
        self.interval = interval
        self.peak = MemoryPeak()
        self._roots = [psutil.Process(pid) if pid else None for pid in roots]
        self._procs: list[list[psutil.Process]] = [[] for _ in roots]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _refresh(self) -> None:
        for i, root in enumerate(self._roots):
            with contextlib.suppress(psutil.Error):
                self._procs[i] = [root, *root.children(recursive=True)] if root else []

    def _sample(self) -> None:
        if self.peak.samples % 10 == 0:
            self._refresh()
        mine, server = _rss(self._procs[0]), sum(_rss(procs) for procs in self._procs[1:])
        peak = self.peak
        peak.samples += 1
        peak.pipeline_rss = max(peak.pipeline_rss, mine)
        peak.postgres_rss = max(peak.postgres_rss, server)
        peak.root_rss = max(peak.root_rss, _rss(self._procs[0][:1]))
        if mine + server > peak.total_rss:
            peak.total_rss = mine + server
            peak.total_pss = sum(_pss(procs) for procs in self._procs)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemorySampler:  # noqa: PYI034 - a plain class, not subclassed
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


# ------------------------------------------------------------------------------- Luigi timings
STAGES = {"Land": "land", "Stage": "stage", "Build": "model", "QualityGate": "checks", "Preload": "publish",
          "Publish": "publish"}
_CLOCK_ENV = "ECOMM_BENCH_TASK_CLOCK"
_handlers_installed = False


def _stage_of(task: luigi.Task) -> str | None:
    if isinstance(task, luigi.WrapperTask):
        return None
    family = task.get_task_family()
    for prefix, stage in STAGES.items():
        if family.startswith(prefix):
            return stage
    return None


def _record(task: luigi.Task, event: str, *_: Any) -> None:
    path = os.environ.get(_CLOCK_ENV)
    stage = _stage_of(task)
    if not path or stage is None:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process's CPU so far: a task's is end minus start
    line = json.dumps({"task": task.task_id, "stage": stage, "event": event, "t": time.time(), "pid": os.getpid(),
                       "cpu": usage.ru_utime + usage.ru_stime})
    with open(path, "a", encoding="utf-8") as handle:  # one short append per event: atomic
        handle.write(line + "\n")


def install_task_clock() -> None:
    """Record every Luigi task's start and end (worker processes inherit the handlers)."""
    global _handlers_installed
    if _handlers_installed:
        return
    for event, name in ((luigi.Event.START, "start"), (luigi.Event.SUCCESS, "end"), (luigi.Event.FAILURE, "end")):
        luigi.Task.event_handler(event)(lambda task, *args, _n=name: _record(task, _n, *args))
    _handlers_installed = True


@contextlib.contextmanager
def task_clock(folder: Path) -> Iterator[Path]:
    """Collect the task events of the block into `folder`/tasks-<uuid>.jsonl (yielded)."""
    install_task_clock()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tasks-{uuid.uuid4().hex[:8]}.jsonl"
    path.write_text("")
    with environment(**{_CLOCK_ENV: str(path)}):
        yield path


def _task_spans(path: Path) -> list[dict[str, Any]]:
    """Each task's stage, start and end (epoch seconds), pairing the clock's start and end events."""
    starts: dict[str, dict[str, Any]] = {}
    spans: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["event"] == "start":
            starts[rec["task"]] = rec
        else:
            start = starts.pop(rec["task"], rec)
            spans.append({"task": rec["task"], "stage": rec["stage"], "start": start["t"], "end": rec["t"],
                          "cpu": rec.get("cpu", 0.0) - start.get("cpu", 0.0)})
    return spans


def stage_spans(path: Path) -> dict[str, dict[str, float]]:
    """Per stage: wall-clock span (first start to last end), summed task seconds, task count."""
    spans: dict[str, dict[str, float]] = {}
    for task in _task_spans(path):
        span = spans.setdefault(task["stage"], {"first": task["start"], "last": task["end"], "busy": 0.0, "tasks": 0})
        span["first"], span["last"] = min(span["first"], task["start"]), max(span["last"], task["end"])
        span["busy"] += task["end"] - task["start"]
        span["tasks"] += 1
    for span in spans.values():
        span["wall"] = span["last"] - span["first"]
    return spans


def timeline(path: Path) -> list[dict[str, Any]]:
    """Every task's start and end (seconds from the first start), in start order: the critical path."""
    tasks = _task_spans(path)
    zero = min((task["start"] for task in tasks), default=0.0)
    return sorted(({"task": task["task"].split("(")[0], "start": task["start"] - zero, "end": task["end"] - zero,
                    "cpu": task["cpu"]}
                   for task in tasks), key=lambda task: task["start"])


def format_timeline(tasks: list[dict[str, Any]]) -> str:
    """The timeline as text: start, end, seconds, the task process's CPU seconds and a bar (one character = 0.1 s).

    The CPU is the task's own (from its start event to its end event, in the process that ran it), not
    the Postgres server's work it asked for; "-" where it was not measured.
    """
    return "\n".join(
        f"    {t['start']:6.2f} {t['end']:6.2f} {t['end'] - t['start']:5.2f}"
        f" {'    -' if t.get('cpu') is None else format(t['cpu'], '5.2f')}  {t['task']:<24}"
        f" {' ' * int(t['start'] * 10)}{'#' * max(1, round((t['end'] - t['start']) * 10))}"
        for t in tasks)
