"""Telling people: failure e-mails through a real SMTP server, luigid's Prometheus metrics, and what a run
says when luigid refuses a date's tasks after a failure (issue 17, point 3 and "Production operations")."""
from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from pipeline.tasks import central
from tests.support.luigid import Luigid
from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO
from tests.support.processes import free_port, wait_for

DATE = ["--date", str(SEED_DAY)]


class Inbox:
    """aiosmtpd's handler: every message the server accepts, parsed."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def body(self, message: email.message.EmailMessage) -> str:
        return message.get_body(("plain",)).get_content()


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _mail_config(ops: Ops, port: int) -> None:
    """An operator's own configuration file beside luigi.cfg (LUIGI_CONFIG_PATH), as docs/operations.md says."""
    cfg = Path(ops.extra_env["LUIGI_CONFIG_PATH"])
    cfg.write_text(cfg.read_text() + f"[email]\nreceiver = ops@example.com\n\n[smtp]\nhost = 127.0.0.1\nport = {port}\n")


@pytest.mark.slow
def test_a_failed_task_mails_the_task_the_reason_and_what_to_do(ops: Ops, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    _mail_config(ops, port)
    (ops.incoming / "events" / str(SEED_DAY) / "events.csv").unlink()
    result = ops.luigi("DailyPipeline", *DATE, "--local-scheduler")
    assert result.returncode == 30, result.stderr[-3000:]
    wait_for(lambda: inbox.messages, timeout=30, what="the failure e-mail")
    # one e-mail: the local scheduler's "DISABLED ... for 3600 seconds" would be false (it ends with the run)
    assert len(inbox.messages) == 1, [m["Subject"] for m in inbox.messages]
    message = inbox.messages[0]
    assert message["Subject"].startswith("[ecomm-warehouse] Luigi: LandEvents(date=2025-12-15) FAILED")
    assert message["To"] == "ops@example.com"
    body = inbox.body(message)
    assert "LandEvents for 2025-12-15 failed: SourceFileMissing: events for 2025-12-15: expected" in body
    # the run had no luigid: the rerun it suggests has none either (the task process knows how it was run)
    assert ("What to do (missing file): put the file where the message says, then"
            " `luigi --module pipeline.tasks DailyPipeline --date 2025-12-15 --local-scheduler`") in body
    assert "Runbook: docs/operations.md#runbook" in body and "Traceback" in body
    # Luigi's [smtp] defaults of None (no login, the host's own name) warn at each e-mail; the run's log stays one line
    assert "is not of type string" not in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
def test_luigid_refusals_are_explained_reenabled_and_cleared_by_a_publish(ops: Ops, luigid: Luigid) -> None:
    events = ops.incoming / "events" / str(SEED_DAY) / "events.csv"
    kept = ops.lake.parent / "events.csv"
    shutil.move(events, kept)
    failed = ops.luigi("DailyPipeline", *DATE, *luigid.scheduler_args())
    assert failed.returncode == 30, failed.stderr[-3000:]
    ((task_id, task),) = luigid.tasks("DISABLED").items()
    assert task["name"] == "LandEvents"
    assert task["status_message"].startswith("LandEvents for 2025-12-15 failed: SourceFileMissing: "), task
    # luigid is not luigi.cfg's: each command the run prints names it, so that it works as printed
    url = f"http://127.0.0.1:{luigid.port}"
    reenable = f"python -m pipeline reenable --date 2025-12-15 --scheduler-url {url}"
    assert f"luigid disabled the failed task: first `{reenable}`" in luigid.get("/api/fetch_error",
                                                                               {"task_id": task_id})["error"]
    # a run through luigid: the rerun it suggests goes through that luigid too, once the task is re-enabled
    assert ("what to do (missing file): put the file where the message says, then"
            f" `luigi --module pipeline.tasks DailyPipeline --date 2025-12-15 --scheduler-url {url}`;"
            f" luigid disabled the failed task: first `{reenable}` (or run the date with --local-scheduler)\n"
            ) in failed.stdout

    shutil.move(kept, events)  # the fix; luigid still refuses the task
    refused = ops.luigi("DailyPipeline", *DATE, *luigid.scheduler_args())
    assert refused.returncode == 25, refused.stderr[-3000:]
    assert "DISABLED in luigid (not run)" in refused.stdout, refused.stdout
    assert re.search(r"LandEvents\(date=2025-12-15\) is DISABLED since (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d \S+,"
                     r" until about (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d \S+ \(", refused.stdout), refused.stdout
    assert f"`{reenable}`" in refused.stdout, refused.stdout

    reenabled = ops.pipeline(*reenable.split()[3:])
    assert reenabled.returncode == 0 and "re-enabled in luigid" in reenabled.stdout, reenabled.stderr
    assert luigid.tasks("DISABLED") == {}
    again = ops.luigi("DailyPipeline", *DATE, *luigid.scheduler_args())
    assert again.returncode == 0 and "1 of 1 date(s) published" in again.stdout, again.stderr[-3000:]
    assert luigid.tasks("FAILED") == {} and luigid.tasks("DISABLED") == {}


@pytest.mark.slow
def test_a_date_the_gate_blocked_through_luigid_says_to_reenable_first_and_publishes_as_told(
        ops: Ops, luigid: Luigid, smtp: tuple[Inbox, int]) -> None:
    """luigid disables the failed gate: every what-to-do of the blocked date (the run's summary, luigid's error
    text, the failure e-mail) re-enables it first; a rerun that does not is refused, and its summary says so."""
    inbox, port = smtp
    _mail_config(ops, port)
    path = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    orders = json.loads(path.read_text())
    for number, record in enumerate(orders):  # three orders in four quarantined: over [checks] lost_fail_pct (50)
        record["quantity"] = record["quantity"] if number in (0, 1, 6, 10, 14) else 0  # 6, 10, 14: known products
    path.write_text(json.dumps(orders))
    blocked = ops.luigi("DailyPipeline", *DATE, *luigid.scheduler_args())
    assert blocked.returncode == 30 and "BLOCKED by the quality gate" in blocked.stdout, blocked.stdout
    url = f"http://127.0.0.1:{luigid.port}"
    reenable = f"python -m pipeline reenable --date {SEED_DAY} --scheduler-url {url}"
    first = f"luigid disabled the failed task: first `{reenable}` (or run the date with --local-scheduler)"
    what = next(line.strip() for line in blocked.stdout.splitlines() if "what to do (gate blocked)" in line)
    assert what.endswith(f"a day that really is unusual: rerun it with `--checks-lost-fail-pct 100`; {first}"), what
    ((task_id, task),) = luigid.tasks("DISABLED").items()
    assert task["name"] == "QualityGate", task
    assert first in luigid.get("/api/fetch_error", {"task_id": task_id})["error"]
    wait_for(lambda: [m for m in inbox.messages if "QualityGate" in m["Subject"]], timeout=30, what="the e-mail")
    mail = next(m for m in inbox.messages if "QualityGate" in m["Subject"])
    assert "What to do (gate blocked): " in inbox.body(mail) and first in inbox.body(mail), inbox.body(mail)

    # the tester's rerun, the task not re-enabled: luigid refuses it, and the summary says so (not the old checks)
    threshold = re.search(r"rerun it with `(--checks-[a-z-]+ \d+)`", what).group(1).split()
    refused = ops.luigi("DailyPipeline", *DATE, *luigid.scheduler_args(), *threshold)
    assert refused.returncode == 25, refused.stdout + refused.stderr[-3000:]
    (row,) = [line for line in refused.stdout.splitlines() if line.startswith(str(SEED_DAY))]
    assert row.endswith("DISABLED in luigid (not run)"), refused.stdout
    assert "BLOCKED" not in refused.stdout and "FAIL source_loss" not in refused.stdout, refused.stdout
    assert f"`{reenable}`" in refused.stdout, refused.stdout

    # the what-to-do as printed: re-enable first, then the day accepted as it is
    printed = re.search(r"first `(python -m pipeline reenable [^`]+)`", what).group(1)
    assert ops.pipeline(*printed.split()[3:]).returncode == 0
    # at once: luigid still counts the blocked run's preloads done, and they are
    accepted = ops.luigi("DailyPipeline", *DATE, *luigid.scheduler_args(), *threshold)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr[-3000:]
    assert "1 of 1 date(s) published" in accepted.stdout and "reenable" not in accepted.stdout
    assert ops.query("select fact_orders_rows from audit.publish_log") == [(5,)]
    assert luigid.tasks("DISABLED") == {} and luigid.tasks("FAILED") == {}


@pytest.mark.slow
def test_a_local_publish_leaves_no_task_of_the_date_disabled_in_luigid(ops: Ops, luigid: Luigid) -> None:
    orders = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    kept = ops.lake.parent / "orders.json"
    shutil.move(orders, kept)
    assert ops.luigi("DailyPipeline", *DATE, *luigid.scheduler_args()).returncode == 30
    assert {t["name"] for t in luigid.tasks("DISABLED").values()} == {"LandOrders"}
    # what docs/operations.md says to alert on: a failure is counted as disabled, not as failed
    metrics = luigid.get("/metrics")
    assert 'luigi_task_disabled_total{family="LandOrders"} 1.0' in metrics.splitlines(), metrics
    assert not [line for line in metrics.splitlines() if line.startswith('luigi_task_failed_total{family="LandOrders"}')
                and not line.endswith(" 0.0")]

    shutil.move(kept, orders)
    # another run, going on, plans to run one of the date's tasks: that one is left to it
    url = f"http://127.0.0.1:{luigid.port}"
    (planned, task), *_ = [(i, t) for i, t in luigid.tasks("PENDING").items() if t["name"] == "StageOrders"]
    central.call(url, "add_worker", worker="other-run", info={"host": socket.gethostname(), "pid": os.getpid()})
    central.call(url, "add_task", task_id=planned, status="PENDING", worker="other-run", family=task["name"],
                 params=task["params"])
    # the user's fix, published with the local scheduler; luigi.cfg's luigid is this one
    cfg = Path(ops.extra_env["LUIGI_CONFIG_PATH"])
    cfg.write_text(f"[core]\nscheduler_port = {luigid.port}\n")
    local = ops.luigi("DailyPipeline", *DATE, "--local-scheduler")
    assert local.returncode == 0, local.stderr[-3000:]
    assert luigid.tasks("DISABLED") == {} and luigid.tasks("FAILED") == {}
    # the failed run's waiting tasks (DailyPipeline ...) are done too; its worker process is gone
    assert list(luigid.tasks("PENDING")) == [planned], luigid.tasks("PENDING")
    settled = {t["name"]: t["status_message"] for t in luigid.tasks("DONE").values()}
    assert settled["LandOrders"] == f"complete: found done by a later run of {SEED_DAY}", settled


def _luigi_cfg_names(ops: Ops, luigid: Luigid) -> None:
    """luigi.cfg's luigid is this one: a command given no scheduler option (restate) finds it there."""
    Path(ops.extra_env["LUIGI_CONFIG_PATH"]).write_text(f"[core]\nscheduler_port = {luigid.port}\n")


@pytest.mark.slow
def test_a_restatement_of_a_gate_blocked_date_leaves_no_task_of_it_disabled_in_luigid(
        ops: Ops, luigid: Luigid) -> None:
    path = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    good = path.read_text()
    orders = json.loads(good)
    for number, record in enumerate(orders):  # three orders in four quarantined: over [checks] lost_fail_pct (50)
        record["quantity"] = record["quantity"] if number in (0, 1, 6, 10, 14) else 0
    path.write_text(json.dumps(orders))
    _luigi_cfg_names(ops, luigid)
    blocked = ops.luigi("DailyPipeline", *DATE)
    assert blocked.returncode == 30 and "BLOCKED by the quality gate" in blocked.stdout, blocked.stdout
    assert {t["name"] for t in luigid.tasks("DISABLED").values()} == {"QualityGate"}

    path.write_text(good)  # the sender's corrected file: the runbook's fix is a restatement
    restated = ops.pipeline("restate", *DATE)
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert "1 of 1 date(s) published" in restated.stdout, restated.stdout[-2000:]
    assert luigid.tasks("DISABLED") == {} and luigid.tasks("FAILED") == {}
    settled = {t["name"]: t["status_message"] for t in luigid.tasks("DONE").values()}
    assert settled["QualityGate"] == f"complete: found done by a later run of {SEED_DAY}", settled


@pytest.mark.slow
def test_a_restated_catalog_snapshot_leaves_no_task_of_its_dates_disabled_in_luigid(
        ops: Ops, luigid: Luigid) -> None:
    assert ops.luigi("DailyPipeline", *DATE, "--local-scheduler").returncode == 0
    snapshot = ops.incoming / "products" / f"products_{SEED_DAY}.json"
    products = json.loads(snapshot.read_text())
    products[0]["current_price"] = 1.23
    snapshot.write_text(json.dumps(products, indent=2))  # corrected after the date was published
    _luigi_cfg_names(ops, luigid)
    refused = ops.luigi("DailyPipeline", *DATE)
    assert refused.returncode == 30 and f"restate --catalog products --date {SEED_DAY}" in refused.stderr, \
        refused.stderr[-3000:]
    assert luigid.tasks("DISABLED"), "the refused task is disabled"

    restated = ops.pipeline("restate", "--catalog", "products", *DATE)
    assert restated.returncode == 0, restated.stderr[-3000:] + restated.stdout[-2000:]
    assert luigid.tasks("DISABLED") == {} and luigid.tasks("FAILED") == {}


@pytest.mark.slow
def test_luigid_serves_prometheus_metrics_after_a_run(ops: Ops, luigid: Luigid) -> None:
    result = ops.luigi("DailyPipeline", *DATE, *luigid.scheduler_args())
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = luigid.get("/metrics")
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
               if line and not line.startswith("#")}
    assert samples['luigi_task_done_total{family="Publish"}'] == 1
    # the seed's two days: 2025-12-14 is landed too, as the volume history the gate of 2025-12-15 compares with
    assert samples['luigi_task_done_total{family="LandOrders"}'] == 2
    assert samples['luigi_task_started_total{family="QualityGate"}'] == 1
    assert 'luigi_task_execution_time_seconds{family="Publish"}' in samples
    assert "luigi_task_failed_total" in metrics and "date=" not in metrics, "labelled by family only"


def _killed_after_it_finished(luigid: Luigid, task_id: str) -> None:
    """What luigid holds of a task whose worker was killed after the task finished: it ran, then failed (disabled)."""
    for status in ("RUNNING", "FAILED"):
        luigid.get("/api/add_task", {"task_id": task_id, "status": status, "worker": "killed-worker", "family": "Publish",
                                     "params": {"date": str(SEED_DAY)}, "retry_policy_dict": {"retry_count": 1}})


@pytest.mark.slow
def test_a_task_luigid_holds_disabled_that_had_finished_is_shown_done_not_failed(ops: Ops, luigid: Luigid) -> None:
    import luigi.task

    assert ops.luigi("DailyPipeline", *DATE, "--local-scheduler").returncode == 0
    # what luigid holds after a worker was killed just after its Publish committed: the task failed, disabled
    publish = luigi.task.task_id_str("Publish", {"date": str(SEED_DAY)})
    _killed_after_it_finished(luigid, publish)
    assert list(luigid.tasks("DISABLED")) == [publish]
    url = f"http://127.0.0.1:{luigid.port}"

    # a run that needed the date (an earlier date of a backfill) lists no finished task as one to re-enable
    noted = subprocess.run([sys.executable, "-c", "import datetime as dt; from pipeline.tasks import central;"
                            f" print(central.run_notes([], [dt.date({SEED_DAY.year}, {SEED_DAY.month}, {SEED_DAY.day})],"
                            f" {url!r}, False))"], cwd=REPO, env=ops.env, capture_output=True, text=True, timeout=120)
    assert noted.stdout.strip() == "[]", noted.stderr[-3000:]
    assert luigid.tasks("DISABLED") == {} and luigid.tasks("FAILED") == {}
    assert luigid.tasks("DONE")[publish]["status_message"] == f"complete: found done by a later run of {SEED_DAY}"

    # re-enabling it: shown done, not set back to FAILED
    _killed_after_it_finished(luigid, publish)
    assert list(luigid.tasks("DISABLED")) == [publish]
    reenabled = ops.pipeline("reenable", *DATE, "--scheduler-url", url)
    assert reenabled.returncode == 0, reenabled.stderr
    assert luigid.tasks("DISABLED") == {} and luigid.tasks("FAILED") == {}
    assert publish in luigid.tasks("DONE")
