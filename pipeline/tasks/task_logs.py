"""The pipeline's own log lines in the `luigi` command's log.

Luigi's default logging (no `--logging-conf-file`, no `[core] no_configure_logging`) gives only its
`luigi-interface` logger a handler, at `[core] log_level`. The pipeline's loggers (`pipeline.*`) then had
none: their INFO lines ("landed 100000 rows ...", "Postgres is unreachable: ...", "reconciling serving
tables ...", "waited 12.0s for the pipeline lock ...") were dropped, and a task that waited said nothing
of what it waited for. Each task process (`run_audit.AttemptStarted`, the `[worker] task_process_context`)
sends them to Luigi's handler, at Luigi's level, each line with its process, local time and zone
(`pipeline.clock`) and logger:

    INFO: [pid 21601] 03:36:37 UTC pipeline.ingest.landing: landed 2000 rows of orders for 2025-12-13 from ...

Warnings and errors are shown whatever Luigi's level, as before (Python's last-resort handler printed
them). Logging configured any other way (a conf file, a root handler, a test's capture) is left as it is.
"""
from __future__ import annotations

import logging

from pipeline import clock

_LUIGI = "luigi-interface"


class _ToLuigi(logging.Handler):
    """Hands a pipeline record to the handlers of Luigi's interface logger, named and timed."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if logging.getLogger().handlers:  # configured since: the root's handlers get it by propagation
                return
            handlers = [h for h in logging.getLogger(_LUIGI).handlers if record.levelno >= h.level]
            if not handlers:  # below Luigi's level, or its handler gone: a warning still shows, as without us
                if record.levelno >= logging.lastResort.level:
                    logging.lastResort.handle(record)
                return
            said = logging.makeLogRecord(record.__dict__)
            said.msg = f"[pid {record.process}] {clock.local(record.created)} {record.name}: {record.getMessage()}"
            said.args = None
            for handler in handlers:
                handler.handle(said)
        except Exception:  # noqa: BLE001 - a bad log call must not fail the task, as with any handler
            self.handleError(record)


def follow_luigi() -> bool:
    """In a task process: the pipeline's records go to Luigi's handler at its level (warnings always), when Luigi's
    default logging is what this process has (its interface logger has a handler, the root logger none); else
    nothing changes. True: this call set it up (`stop_following` undoes it)."""
    luigi_logger, root, ours = logging.getLogger(_LUIGI), logging.getLogger(), logging.getLogger("pipeline")
    if root.handlers or not luigi_logger.handlers or any(isinstance(h, _ToLuigi) for h in ours.handlers):
        return False
    ours.addHandler(_ToLuigi())
    if ours.level == logging.NOTSET:
        ours.setLevel(min(luigi_logger.getEffectiveLevel(), logging.WARNING))
    return True


def stop_following() -> None:
    """Undo `follow_luigi`: for a task Luigi ran in its own process (no timeout, one worker), which goes on after it."""
    ours = logging.getLogger("pipeline")
    for handler in [h for h in ours.handlers if isinstance(h, _ToLuigi)]:
        ours.removeHandler(handler)
    ours.setLevel(logging.NOTSET)
