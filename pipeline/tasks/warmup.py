"""soda-core's ~0.7 s of imports, done by Luigi's worker process while its first task runs.

Luigi runs each task in a process forked from the worker process, so whatever the worker has
imported, every task inherits. The gate and the publish need soda-core; importing it while Luigi
schedules (as `QualityGate.complete()` used to) delays every date's first task by ~0.7 s, and
importing it in each gate process costs every date those seconds on its critical path.

`install()` registers fork hooks: after the worker process has forked its second task process, a
thread imports `pipeline.quality.soda` (soda-core and the modules its scans load lazily), parses the
SodaCL files (`soda_setup.parse_ahead`) while the tasks run, and checks [model] business_timezone
once (every staging, model and gate task would otherwise open a DuckDB database for it); before any
later fork the thread is joined, so no process is ever forked mid-import (a child would inherit
import locks held by a thread it does not have). A process that never forks never starts the
thread; a failed import is logged and left to the gate, which imports it again. pandas is imported
by nothing the pipeline runs (`pyarrow_without_pandas()`, and `pipeline.quality.soda` for
soda-core's metric values).
Measured on a 100K orders / 1M events day: docs/performance.md, "The daily command as cron runs it".

The same hooks keep Python's cyclic garbage collector off what the process imported. A full
collection walks every object the process holds: ~150,000 after the imports, ~0.1 s of CPU each
time. The imports themselves would trigger two or three such collections (`pause_collector()`
holds it off until `install()`), and every task process that allocates enough to trigger one (the
gate, the publish, the preloads) would walk, and copy on write, the whole inherited heap. So the
imported objects are moved to the collector's permanent generation (`gc.freeze()`, what Python's
documentation recommends before a fork without exec) at the end of the imports and again once the
warm-up has imported soda-core; the task processes inherit that, and their collections walk only
what they allocate themselves.
"""
from __future__ import annotations

import concurrent.futures.thread  # noqa: F401 - see _import: it registers fork hooks, so not in the warm-up thread
import gc
import importlib
import importlib.abc
import logging
import os
import sys
import threading

logger = logging.getLogger(__name__)

MODULE = "pipeline.quality.soda"
# With `--workers 2` the first two forks are the date's two landing tasks (events, orders: see
# `PipelineTask.priority`): starting after the first would hold the orders back behind the import,
# and land them while the events are being staged (two large DuckDB working sets at once).
START_AFTER_FORKS = 2
_forks = 0
_thread: threading.Thread | None = None
_installed = False
_frozen_after_warm_up = False
_paused = False


def _import() -> None:
    try:
        importlib.import_module(MODULE)
        # The checks files parsed once here for every date's gate (pipeline/quality/soda_setup.py)
        from pipeline.quality import gate, soda_setup
        soda_setup.parse_ahead(sorted(gate.checks_dir().rglob("*.yml")))
    except Exception:  # noqa: BLE001 - the gate imports it again and reports the real error
        logger.debug("warm-up import of %s failed; the quality gate will import it", MODULE, exc_info=True)
    # What this thread imports must not register fork hooks (a hook registered while the main thread
    # waits in _before_fork runs its after-fork half without its before half): concurrent.futures.thread,
    # which the gate's scans use and which does, is imported at the top of this module.
    try:
        # Every staging, model and gate task validates [model] business_timezone against DuckDB's zone
        # list (a new DuckDB database, ~25 ms each, a dozen tasks a date): checked here once, the later
        # task processes inherit the answer.
        from pipeline.transform import staging

        staging.business_timezone()
    except Exception:  # noqa: BLE001 - a wrong setting is reported by the tasks themselves
        logger.debug("warm-up check of [model] business_timezone failed; the tasks will check it", exc_info=True)


def _after_fork_in_parent() -> None:
    global _thread, _forks
    _forks += 1
    if _forks >= START_AFTER_FORKS and _thread is None and MODULE not in sys.modules:
        # not a daemon: a run that forks nothing after it (two tasks to run) would exit while the thread is inside
        # DuckDB's or soda-core's native code, and Python ending a daemon thread there aborts the process (exit 134)
        _thread = threading.Thread(target=_import, name="soda-warm-up", daemon=False)
        _thread.start()


def _before_fork() -> None:
    global _frozen_after_warm_up
    if _thread is not None:
        _thread.join()
        if not _frozen_after_warm_up:  # once: soda-core's modules join the imports in the permanent generation
            gc.freeze()
            _frozen_after_warm_up = True


def wait() -> None:
    """Block until a started warm-up has finished (a no-op otherwise)."""
    _before_fork()


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "pandas":
            raise ImportError("pyarrow's pandas integration is not used by the pipeline")


def pyarrow_without_pandas() -> None:
    """Turn off pyarrow's pandas integration in this process (and the task processes it forks).

    pyarrow imports pandas the first time it checks whether a value is a DataFrame (`pa.table(...)`,
    `Table.from_pylist`, ...: ~0.4 s of CPU before a date's first task could start). Its check is
    made here once while pandas cannot be imported, and is remembered; an explicit conversion
    (`to_pandas()`, a DataFrame passed to `pa.table`) still imports and uses pandas, and so does
    inferring the type of Python values (the pipeline's Arrow tables are built with their schema or
    typed arrays). No task imports it: a process that did paid ~0.2 s of CPU for nothing.
    """
    import pyarrow as pa

    if "pandas" in sys.modules:
        return
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.lib._pandas_api.have_pandas  # noqa: B018 - the shim's one import attempt, answered "no"
    finally:
        sys.meta_path.remove(blocker)


def pause_collector() -> None:
    """Hold off the cyclic garbage collector while the task modules are imported (`install` resumes it)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def install() -> None:
    """Freeze what is imported so far (resuming a paused collector); register the fork hooks, once per process."""
    global _installed, _paused
    gc.freeze()
    if _paused:
        gc.enable()
        _paused = False
    if not _installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent)
        _installed = True
