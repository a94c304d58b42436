"""A task Luigi lost, which raised nothing: over its timeout and terminated, or its process killed from outside
(the OOM killer, `kill -9`). Its run summary row, `python -m pipeline summary` and the failure e-mail carry the
runbook's what-to-do line as every other failure does ("task timed out", "task killed"). Real `luigi` runs, a real
timeout and a real SIGKILL of the task's process (held by the fault engine's `pause` until then)."""
from __future__ import annotations

import email
import email.policy
import json
import datetime as dt
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from pipeline.tasks import runbook
from tests.support.luigid import Luigid
from tests.support.ops import SEED_DAY, Ops
from tests.support.processes import free_port, wait_for

DAILY = f"luigi --module pipeline.tasks DailyPipeline --date {SEED_DAY} --local-scheduler"
FIRST_DAY = SEED_DAY - dt.timedelta(days=1)  # the seed's first day: its run needs no other date's tasks


class Inbox:
    """aiosmtpd's handler: the plain-text body of every message the server accepts."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.bodies.append(message.get_body(("plain",)).get_content())
        return "250 OK"


@pytest.fixture
def inbox(ops: Ops, tmp_path: Path) -> Iterator[Inbox]:
    """Failure e-mails to a real SMTP server, and the fault engine's folder (ECOMM_FAULT_DIR) for the test's run."""
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    cfg = Path(ops.extra_env["LUIGI_CONFIG_PATH"])
    mail = f"[email]\nreceiver = ops@example.com\n\n[smtp]\nhost = 127.0.0.1\nport = {port}\n"
    cfg.write_text(cfg.read_text() + mail)
    ops.extra_env["ECOMM_FAULT_DIR"] = str(tmp_path / "faults")
    (tmp_path / "faults").mkdir()
    try:
        yield handler
    finally:
        controller.stop()


def _summary_lines(text: str, family: str) -> tuple[str, str]:
    """The date's failure line of `family` and the what-to-do line beneath the date's failures ("": none)."""
    lines = [line.strip() for line in text.splitlines()]
    failed = next((line for line in lines if line.startswith(f"{family}: Task {family}_")), "")
    what = next((line for line in lines if line.startswith("what to do (")), "")
    return failed, what


def test_luigis_lines_for_a_lost_task_are_runbook_kinds() -> None:
    timed_out = f"Task StageOrders_{SEED_DAY:%Y_%m_%d}_0123456789 timed out after 900 seconds and was terminated."
    killed = f"Task StageEvents_{SEED_DAY:%Y_%m_%d}_0123456789 died unexpectedly with exit code -9"
    assert runbook.remedy_for_text(timed_out).kind == "task timed out"
    assert runbook.remedy_for_text(killed).kind == "task killed"
    assert runbook.remedy_for_text(killed.replace("-9", "1")) is None  # it exited by itself: not a kill
    # SIGTERM (a service or container stopped), SIGSEGV (a crash): not the out-of-memory killer's advice
    assert {runbook.remedy_for_text(killed.replace("-9", code)).kind for code in ("-15", "-11", "-6")} == {"task died"}
    fix = runbook.remedy_for_text(timed_out).fix_for(SEED_DAY, local_scheduler=True, message=timed_out)
    assert "raise `[task_timeouts] stage`" in fix and f"`{DAILY} --task-timeouts-stage <seconds>`" in fix
    assert int(runbook.by_kind("task killed").exit_code) == int(runbook.by_kind("missing file").exit_code) == 30


@pytest.mark.slow
def test_a_timed_out_task_is_told_to_raise_its_kinds_limit(ops: Ops, inbox: Inbox) -> None:
    """StageOrders is held past `--task-timeouts-stage 1`: Luigi terminates it (exit 30); the fix names the stage
    kind's setting and option, in the run's summary and in the failure e-mail."""
    ops.extra_env["ECOMM_FAULT"] = "task.start:StageOrders:pause"
    result = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler", "--task-timeouts-stage", "1")
    assert result.returncode == 30, result.stderr[-3000:]
    failed, what = _summary_lines(result.stdout, "StageOrders")
    assert failed.endswith("timed out after 1 seconds and was terminated."), result.stdout
    assert what.startswith("what to do (task timed out): find why it was slow"), result.stdout
    assert "raise `[task_timeouts] stage`" in what and f"`{DAILY} --task-timeouts-stage <seconds>`" in what, what

    wait_for(lambda: any("StageOrders for 2025-12-15 failed: Task" in b for b in inbox.bodies), 30, "the e-mail")
    body = next(b for b in inbox.bodies if "StageOrders for 2025-12-15 failed: Task" in b)
    assert re.search(r"StageOrders for 2025-12-15 failed: Task StageOrders_\S+ timed out after 1 seconds", body), body
    assert "What to do (task timed out): " in body and "`[task_timeouts] stage`" in body, body
    assert "Runbook: docs/operations.md#runbook" in body, body


@pytest.mark.slow
def test_a_task_killed_from_outside_is_told_what_killed_it(ops: Ops, inbox: Inbox) -> None:
    """StageEvents' process is SIGKILLed while it runs (as the OOM killer does): exit 30; the summary of the run and
    `python -m pipeline summary` say what to do (task killed), and so does the failure e-mail."""
    ops.extra_env["ECOMM_FAULT"] = "task.start:StageEvents:pause@1"
    faults = Path(ops.extra_env["ECOMM_FAULT_DIR"])
    paused = faults / "task.start.paused"
    run = ops.popen("DailyPipeline", "--date", str(FIRST_DAY), "--local-scheduler")
    try:
        wait_for(lambda: paused.exists() and paused.read_text() or run.poll() is not None, 180, "StageEvents to start")
        assert run.poll() is None, run.communicate()[1][-3000:]
        os.kill(int(paused.read_text()), signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=300)
    finally:
        (faults / "task.start.resume").touch()  # a pause the test did not expect goes on
        if run.poll() is None:
            run.kill()
    assert run.returncode == 30, stderr[-3000:]
    failed, what = _summary_lines(stdout, "StageEvents")
    assert failed.endswith("died unexpectedly with exit code -9"), stdout
    daily = DAILY.replace(str(SEED_DAY), str(FIRST_DAY))
    assert what == ("what to do (task killed): lower the run's memory (`[duckdb] memory_limit`, `[duckdb] threads`,"
                    f" `[core] workers`; docs/performance.md#bigger-days), then `{daily}`"), stdout

    later = ops.pipeline("summary", "--date", str(FIRST_DAY))
    assert later.returncode == 1 and _summary_lines(later.stdout, "StageEvents") == (failed, what), later.stdout

    wait_for(lambda: any(f"StageEvents for {FIRST_DAY} failed: Task" in b for b in inbox.bodies), 30, "the e-mail")
    body = next(b for b in inbox.bodies if f"StageEvents for {FIRST_DAY} failed: Task" in b)
    assert "died unexpectedly with exit code -9\nWhat to do (task killed): lower the run's memory" in body, body
    assert "Runbook: docs/operations.md#runbook" in body, body


@pytest.mark.slow
def test_luigid_shows_what_to_do_for_a_timed_out_task(ops: Ops, luigid: Luigid) -> None:
    """Through luigid: the error it keeps for the timed-out task explains it as a failed task's (its fix re-enables
    the task luigid disabled first), then Luigi's line."""
    ops.extra_env.update(ECOMM_FAULT="task.start:StageOrders:pause", ECOMM_FAULT_DIR=str(ops.lake.parent / "faults"))
    (ops.lake.parent / "faults").mkdir(exist_ok=True)
    result = ops.luigi("StageOrders", "--date", str(SEED_DAY), *luigid.scheduler_args(), "--task-timeouts-stage", "1")
    assert result.returncode == 30, result.stderr[-3000:]
    ((task_id, task),) = luigid.tasks("DISABLED").items()
    assert task["name"] == "StageOrders"
    error = json.loads(luigid.get("/api/fetch_error", {"task_id": task_id})["error"])  # the worker's `expl`, as JSON
    assert error.startswith(f"StageOrders for {SEED_DAY} failed: Task {task_id} timed out after 1 seconds"), error
    assert "\nWhat to do (task timed out): " in error and "`[task_timeouts] stage`" in error, error
    assert f"first `python -m pipeline reenable --date {SEED_DAY} --scheduler-url " in error, error
    assert error.endswith(f"\n\nTask {task_id} timed out after 1 seconds and was terminated."), error
