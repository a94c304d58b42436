"""What an on-call reader sees first: a failed task's e-mail opens with its explanation (not Luigi's "A task failed
when running. Most likely run() raised an exception." and the task's parameters); a blocked gate's what-to-do in
the e-mail and luigid names the thresholds of the checks that failed, as the run summary does; and a backfill over
dates already published still refuses a setting it cannot use. Real SMTP (aiosmtpd), real runs."""
from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from pipeline.quality import gate
from pipeline.quality.results import CheckResult
from pipeline.tasks import runbook
from tests.support.ops import SEED_DAY, Ops
from tests.support.processes import wait_for
from tests.test_ops_notify import Inbox, _mail_config, smtp  # noqa: F401 - smtp: the fixture

VOLUME = "--checks-orders-volume-fail-low-ratio 0"


def test_a_blocked_gate_s_explanation_names_its_failing_checks_thresholds() -> None:
    """The e-mail and luigid's error (`runbook.explain`) gave the runbook's example, `--checks-lost-fail-pct 100`,
    for a date that only the volume check blocked: that option would not have unblocked it."""
    volume = CheckResult("orders volume", "source_volume", "row_count", "fail", "500",
                         f"500 orders against a median of 200000 ...; a day that really is this small: {VOLUME}")
    passed = CheckResult("orders lost", "source_loss", "user-defined", "pass", "0", "0 % thrown away")
    error = gate.QualityGateFailed(gate.GateResult(SEED_DAY, [volume, passed], dt.datetime(2025, 12, 16)))
    what = next(line for line in runbook.explain("QualityGate", SEED_DAY, error).splitlines()
                if line.startswith("What to do (gate blocked): "))
    assert f"rerun it with `{VOLUME}`" in what and "lost-fail-pct" not in what, what
    assert what.removeprefix("What to do (gate blocked): ") == runbook.gate_fix(SEED_DAY, [volume.message])


@pytest.mark.slow
def test_a_failed_task_s_e_mail_opens_with_what_failed_and_what_to_do(
        ops: Ops, smtp: tuple[Inbox, int]) -> None:  # noqa: F811
    inbox, port = smtp
    _mail_config(ops, port)
    (ops.incoming / "events" / str(SEED_DAY) / "events.csv").unlink()
    run = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert run.returncode == 30, run.stderr[-3000:]
    wait_for(lambda: inbox.messages, timeout=30, what="the failure e-mail")
    body = inbox.body(inbox.messages[0])
    first, second, third = body.splitlines()[:3]
    assert first.startswith(f"LandEvents for {SEED_DAY} failed: SourceFileMissing: "), body[:1500]
    assert second.startswith("What to do (missing file): ") and third == "Runbook: docs/operations.md#runbook", body
    assert "Most likely run() raised an exception" not in body and "Traceback" in body, body[:3000]
    assert "Parameters:" in body, "Luigi's task description stays, below"


@pytest.mark.slow
def test_a_backfill_of_published_dates_still_refuses_a_setting_it_cannot_use(ops: Ops) -> None:
    """The cron line's RangeDaily over dates already published ran no task and exited 0 with a luigi.cfg value
    every run of a date refuses (exit 35): the broken file showed only on the next night with a date to run."""
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0
    cfg = Path(ops.extra_env["LUIGI_CONFIG_PATH"])
    cfg.write_text(cfg.read_text() + "\n[checks]\nlost_fail_pct = abc\n")
    run = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY), "--stop",
                    str(SEED_DAY + dt.timedelta(days=1)), "--local-scheduler")
    assert run.returncode == 35, run.stdout[-2000:] + run.stderr[-3000:]
    assert "[checks] lost_fail_pct = 'abc' is not valid" in run.stderr, run.stderr[-3000:]


@pytest.mark.slow
def test_the_e_mail_s_command_line_shows_a_catalog_url_without_its_key(
        ops: Ops, smtp: tuple[Inbox, int]) -> None:  # noqa: F811
    """Luigi's e-mail quotes sys.argv: a catalog URL given as an option went out with its key in clear."""
    inbox, port = smtp
    _mail_config(ops, port)
    run = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler", "--catalog-attempts", "1",
                    "--catalog-retries", "0", "--catalog-products-url=http://127.0.0.1:9/products?pwd=SEKRET1")
    assert run.returncode == 30 and "SEKRET1" not in run.stdout + run.stderr, run.stdout[-3000:]
    wait_for(lambda: inbox.messages, timeout=30, what="the failure e-mail")
    body = inbox.body(inbox.messages[0])
    assert "Command line:" in body and "products?pwd=***" in body and "SEKRET1" not in body, body[-3000:]


def test_the_e_mail_s_command_line_masks_each_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    """Luigi quotes an argument with a space: a pattern over the joined line stopped at the space or the quote."""
    from pipeline.tasks import scheduler_mail

    argv = ["luigi", "--module", "pipeline.tasks", "DailyPipeline", "--catalog-users-url",
            "http://h/u?q=a b&token=S2", "--catalog-products-url=http://h/p?token='S3'"]
    monkeypatch.setattr("sys.argv", argv)
    shown = scheduler_mail._shown(subprocess.list2cmdline(argv))
    assert "S2" not in shown and "S3" not in shown and "token=***" in shown and "DailyPipeline" in shown, shown
