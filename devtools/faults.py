"""Fault injection: named points where the ECOMM_FAULT environment variable makes the pipeline fail.

The reliability tests run the real Luigi CLI with a fault armed, then run it again without one and
check that nothing was lost, duplicated or left half-written. Unset (always, in production) every
point is a dictionary lookup and nothing else.

    ECOMM_FAULT="<point>[:<qualifier>]:<action>[@<n>][,<another fault>...]"

    ECOMM_FAULT=lake.promote:kill                     SIGKILL the worker at the first partition rename
    ECOMM_FAULT=lake.write:staging/stg_orders:enospc  disk full while writing stg_orders
    ECOMM_FAULT=publish.merge:pause                   hold the publish transaction (see `pause`)
    ECOMM_FAULT=task.start:BuildFactOrders:kill       SIGKILL the worker as BuildFactOrders starts
    ECOMM_FAULT=task.start:*:kill@2                   ... as the second task of this run starts

Points (POINTS):
    task.start, task.success  Luigi START / SUCCESS of any task (registered below as event handlers;
                              SUCCESS fires after the task's output is complete, before the scheduler
                              hears of it). Luigi swallows exceptions from event handlers, so only
                              `kill` and `pause` make sense here.
    landing.manifest          a raw partition's data.parquet is in place, its _manifest.json (the
                              landing task's completion marker) not yet written
    lake.write                a partition's temporary file is written (by DuckDB's COPY), not yet checked
                              nor renamed: `kill` and `enospc` first cut the file to half its size, as a
                              write interrupted by a dying process or a full disk leaves it
    lake.promote              a complete temporary file is about to be renamed into place (every
                              partition file and every manifest goes through here)
    publish.copy              a fact partition has been COPYed into its stage table, inside a
                              preload's transaction or the publish transaction (qualifier:
                              fact_orders / fact_events)
    publish.merge             inside the publish transaction, holding the date's lock: the facts are
                              in their stage tables, nothing a reader sees is written or locked yet
    publish.commit            the publish transaction has done everything and is about to commit
    compact.swap              inside a month's compaction transaction (`python -m pipeline
                              compact-serving`): the monthly tables are built and indexed, the daily
                              partitions still attached (qualifier: the month, YYYY-MM)
    marts.rebuild             inside `python -m pipeline rebuild-marts`'s transaction, holding the publish
                              lock: every mart recomputed, nothing committed yet

Qualifier: matches the family of the running Luigi task (`LandOrders`) or a tag of the point: for a
lake file `<layer>/<table>` (`raw/orders`) and its file name (`data.parquet`, `_manifest.json`); for
publish points the fact table. `*` or no qualifier matches anything.

Actions (ACTIONS):
    kill    SIGKILL the Luigi worker (the parent process that forked this task) and this process
    raise   raise FaultInjected
    enospc  raise OSError(ENOSPC), as a full disk does
    pause   create `$ECOMM_FAULT_DIR/<point>.paused`, wait until the test creates `<point>.resume`
            (at most $ECOMM_FAULT_PAUSE_SECONDS, default 300), remove both and go on: a test changes
            the world meanwhile (stops Postgres, starts a competing run ...); every hit pauses again

`@n` fires only at the n-th matching hit. Hits are counted across the Luigi worker and the task
processes it forks (a shared memory page created at import; exact with one worker process), so
`task.start:*:kill@2` lets one task run and kills the worker as the next one starts. With
ECOMM_FAULT_DIR set, every fault that fires appends a line to `$ECOMM_FAULT_DIR/fired.log`.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import mmap
import os
import signal
import struct
import sys
import time
from pathlib import Path

import luigi

logger = logging.getLogger(__name__)

ENV = "ECOMM_FAULT"
ENV_DIR = "ECOMM_FAULT_DIR"
ENV_PAUSE_SECONDS = "ECOMM_FAULT_PAUSE_SECONDS"

POINTS = (
    "task.start", "task.success", "landing.manifest", "lake.write", "lake.promote", "publish.copy",
    "publish.merge", "publish.commit", "compact.swap", "marts.rebuild",
)
ACTIONS = ("kill", "raise", "enospc", "pause")
TASK_POINTS = ("task.start", "task.success")
WRITING_POINTS = ("lake.write",)  # points whose path is a file still being written
MAX_FAULTS = 64

# Set at import, before Luigi forks task processes: the worker's pid, and hit counters the forked
# processes share with it (MAP_SHARED anonymous memory).
_ROOT_PID = os.getpid()
_COUNTS = mmap.mmap(-1, 8 * MAX_FAULTS)
_current_task: str | None = None


class FaultInjected(RuntimeError):
    """An error raised on purpose at a fault point (ECOMM_FAULT)."""


class FaultSpecError(ValueError):
    """ECOMM_FAULT cannot be parsed, or names a point or action that does not exist."""


@dataclasses.dataclass(frozen=True)
class Fault:
    """One armed fault: where, for what, what to do, and at which matching hit (None: every hit)."""

    point: str
    qualifier: str | None
    action: str
    nth: int | None
    slot: int


def parse(spec: str) -> list[Fault]:
    """The faults of an ECOMM_FAULT value (empty: none)."""
    faults = []
    for slot, item in enumerate(part.strip() for part in spec.split(",") if part.strip()):
        if slot >= MAX_FAULTS:
            raise FaultSpecError(f"{ENV}: at most {MAX_FAULTS} faults")
        fields = item.split(":")
        if len(fields) not in (2, 3):
            raise FaultSpecError(f"{ENV}: {item!r} is not <point>[:<qualifier>]:<action>[@<n>]")
        point, action = fields[0], fields[-1]
        qualifier = fields[1] if len(fields) == 3 and fields[1] not in ("", "*") else None
        nth = None
        if "@" in action:
            action, _, count = action.partition("@")
            if not count.isdigit() or int(count) < 1:
                raise FaultSpecError(f"{ENV}: {item!r}: @n needs a whole number >= 1")
            nth = int(count)
        if point not in POINTS:
            raise FaultSpecError(f"{ENV}: unknown point {point!r} in {item!r}; points: {', '.join(POINTS)}")
        if action not in ACTIONS:
            raise FaultSpecError(f"{ENV}: unknown action {action!r} in {item!r}; actions: {', '.join(ACTIONS)}")
        if point in TASK_POINTS and action not in ("kill", "pause"):
            raise FaultSpecError(f"{ENV}: {item!r}: Luigi swallows errors raised at task boundaries; use kill or pause")
        faults.append(Fault(point, qualifier, action, nth, slot))
    return faults


def point(name: str, path: str | os.PathLike[str] | None = None, *, tag: str | None = None) -> None:
    """A named fault point: does nothing unless ECOMM_FAULT arms a fault that matches it."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    if name not in POINTS:
        raise FaultSpecError(f"fault point {name!r} is not declared in devtools.faults.POINTS")
    tags = _tags(path, tag)
    for fault in parse(spec):
        if fault.point != name or not _matches(fault, tags):
            continue
        if fault.nth is not None and _hit(fault.slot) != fault.nth:
            continue
        _fire(fault, tags, path)


def _tags(path: str | os.PathLike[str] | None, tag: str | None) -> set[str]:
    tags = {tag} if tag else set()
    if _current_task:
        tags.add(_current_task)
    if path is not None:
        from pipeline import config

        full, root = os.fspath(path), config.lake_dir()
        tags.add(full.rsplit("/", 1)[-1].split(".tmp-")[0])
        parts = full[len(root):].strip("/").split("/") if full.startswith(root + "/") else []
        if len(parts) >= 2:
            tags.add(f"{parts[0]}/{parts[1]}")
    return tags


def _matches(fault: Fault, tags: set[str]) -> bool:
    return fault.qualifier is None or fault.qualifier in tags


def _hit(slot: int) -> int:
    """Count one matching hit of a fault (shared with the forked task processes); return the count."""
    (count,) = struct.unpack_from("q", _COUNTS, 8 * slot)
    struct.pack_into("q", _COUNTS, 8 * slot, count + 1)
    return count + 1


def _record(fault: Fault, tags: set[str]) -> None:
    folder = os.environ.get(ENV_DIR)
    message = f"{fault.point} {fault.action} pid={os.getpid()} tags={','.join(sorted(tags))}"
    logger.warning("fault injected (%s): %s", ENV, message)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    if folder:
        with open(os.path.join(folder, "fired.log"), "a", encoding="utf-8") as handle:
            handle.write(message + "\n")


def _cut_in_half(path: str | os.PathLike[str] | None) -> None:
    if path is not None and os.path.isfile(path):
        os.truncate(path, os.path.getsize(path) // 2)


def _fire(fault: Fault, tags: set[str], path: str | os.PathLike[str] | None) -> None:
    _record(fault, tags)
    if fault.action in ("kill", "enospc") and fault.point in WRITING_POINTS:
        _cut_in_half(path)
    if fault.action == "kill":
        kill_worker()
    elif fault.action == "raise":
        raise FaultInjected(f"fault injected at {fault.point} ({ENV})")
    elif fault.action == "enospc":
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (injected at {fault.point})", str(path or ""))
    else:
        _pause(fault.point)


def kill_worker() -> None:
    """SIGKILL the Luigi worker that forked this task process (if it did), then this process."""
    me = os.getpid()
    if _ROOT_PID != me and os.getppid() == _ROOT_PID:
        os.kill(_ROOT_PID, signal.SIGKILL)
    os.kill(me, signal.SIGKILL)
    time.sleep(60)  # SIGKILL is delivered asynchronously; never run on past the point


def _pause(name: str) -> None:
    folder = os.environ.get(ENV_DIR)
    if not folder:
        raise FaultSpecError(f"{ENV}: the pause action needs {ENV_DIR} (where <point>.paused/.resume live)")
    paused, resume = Path(folder) / f"{name}.paused", Path(folder) / f"{name}.resume"
    paused.write_text(str(os.getpid()), encoding="utf-8")
    deadline = time.monotonic() + float(os.environ.get(ENV_PAUSE_SECONDS, "300"))
    while not resume.exists():
        if time.monotonic() > deadline:
            paused.unlink(missing_ok=True)
            raise FaultInjected(f"fault point {name} paused longer than {ENV_PAUSE_SECONDS} without {resume}")
        time.sleep(0.05)
    resume.unlink(missing_ok=True)
    paused.unlink(missing_ok=True)


@luigi.Task.event_handler(luigi.Event.START)
def _task_started(task: luigi.Task) -> None:
    global _current_task
    _current_task = task.get_task_family()
    point("task.start", tag=_current_task)


@luigi.Task.event_handler(luigi.Event.SUCCESS)
def _task_succeeded(task: luigi.Task) -> None:
    point("task.success", tag=task.get_task_family())
