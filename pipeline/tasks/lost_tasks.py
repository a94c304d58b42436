"""Luigi's words for a task its worker lost, which raised nothing (timed out, killed), as its log and the run audit
keep them, and the timeout setting that bounded such a task: what the runbook (`pipeline.tasks.remedies`) reads."""
from __future__ import annotations

import re

# Luigi's words for a task its worker lost (luigi/worker.py, Worker._purge_children), as the run audit keeps them
TIMED_OUT = re.compile(r"\bTask (\S+) timed out after (\d+) seconds and was terminated")
KILLED = re.compile(r"\bTask (\S+) died unexpectedly with exit code -9\b")  # SIGKILL: most often the OOM killer
SIGNALLED = re.compile(r"\bTask (\S+) died unexpectedly with exit code -(\d+)")  # negative: ended by that signal
TIMEOUT_SETTING, TIMEOUT_OPTION = "`[task_timeouts] <kind>`", "--task-timeouts-<kind>"


def timeout_setting(message: str) -> tuple[str, str] | None:
    """The setting and option bounding the task a timeout message (TIMED_OUT) names: `("[task_timeouts] stage",
    "--task-timeouts-stage")`, or `[worker] timeout`'s for a task of no kind; None: no timeout, or no such task."""
    from luigi.task_register import Register, TaskClassException

    if not (found := TIMED_OUT.search(message or "")):
        return None
    parts = found.group(1).split("_")  # `<family>_<parameters>_<hash>`
    for end in range(len(parts) - 1, 0, -1):
        try:
            kind = getattr(Register.get_task_cls("_".join(parts[:end])), "timeout_kind", None)
        except TaskClassException:
            continue
        if not kind:  # no kind of its own: the [worker] timeout bounds it
            return "[worker] timeout", "--worker-timeout"
        return f"[task_timeouts] {kind}", f"--task-timeouts-{kind}"
    return None
