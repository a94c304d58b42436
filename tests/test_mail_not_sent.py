"""A failure e-mail the SMTP server does not take: Luigi logs one ERROR line mid-log and the run exits as it would
have, so nobody learns the alert was lost. The run now says so at its end, after the summary (what cron's tail shows).
Real SMTP servers on 127.0.0.1: none listening, and aiosmtpd refusing the recipient."""
from __future__ import annotations

from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.support.ops import SEED_DAY, Ops
from tests.support.processes import free_port

SUBJECT = f"'Luigi: LandEvents(date={SEED_DAY}) FAILED. Host: "


class RefusingInbox:
    """aiosmtpd's handler: refuses every recipient, as a server does for an unknown mailbox."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: N802 - aiosmtpd's
        return "550 5.1.1 mailbox unavailable"


def _run_failing_with_mail_to(ops: Ops, port: int) -> tuple[int, str, str]:
    cfg = Path(ops.extra_env["LUIGI_CONFIG_PATH"])
    cfg.write_text(cfg.read_text() + f"[email]\nreceiver = ops@example.com\n\n[smtp]\nhost = 127.0.0.1\nport = {port}\n"
                   "timeout = 5\n")
    (ops.incoming / "events" / str(SEED_DAY) / "events.csv").unlink()
    run = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    return run.returncode, run.stdout, run.stderr


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_failure_e_mail_no_server_took_is_named_after_the_run_summary(ops: Ops) -> None:
    code, stdout, stderr = _run_failing_with_mail_to(ops, free_port())  # nothing listens there
    assert code == 30, stderr[-3000:]
    assert "LandEvents: SourceFileMissing" in stdout, stdout  # the summary, as before
    line = _last_line(stderr)
    assert line.startswith(f"the failure e-mail {SUBJECT}") and "was NOT sent: the SMTP server said" in line, line
    assert "Connection refused" in line and "nobody was alerted: check [smtp] and [email]" in line, line
    assert stderr.count("was NOT sent") == 1, stderr[-3000:]


@pytest.mark.slow
def test_a_failure_e_mail_whose_recipient_the_server_refused_is_named(ops: Ops) -> None:
    port = free_port()
    controller = Controller(RefusingInbox(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        code, _, stderr = _run_failing_with_mail_to(ops, port)
    finally:
        controller.stop()
    assert code == 30, stderr[-3000:]
    line = _last_line(stderr)
    assert line.startswith(f"the failure e-mail {SUBJECT}") and "550" in line and "mailbox unavailable" in line, line
