"""A run that cannot schedule a date's tasks (a setting it cannot read, Postgres refusing the database, luigid not
answering): Luigi's e-mail was its traceback alone (cut off when long), without the reason's line, what to do or the
runbook that a failed task's e-mail has; and through luigid the run's summary told the operator to re-enable a task
that luigid never disabled. A real SMTP server (aiosmtpd) and a real luigid on 127.0.0.1."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.support.luigid import Luigid
from tests.support.ops import SEED_DAY, Ops
from tests.support.processes import free_port, wait_for
from tests.test_ops_notify import Inbox, _mail_config, smtp  # noqa: F401 - smtp: the fixture

DATE = ["--date", str(SEED_DAY)]


def _add_config(ops: Ops, text: str) -> None:
    cfg = Path(ops.extra_env["LUIGI_CONFIG_PATH"])
    cfg.write_text(cfg.read_text() + text)


def _only_mail(inbox: Inbox) -> tuple[str, str]:
    wait_for(lambda: inbox.messages, timeout=30, what="the e-mail")
    assert len(inbox.messages) == 1, [m["Subject"] for m in inbox.messages]
    return inbox.messages[0]["Subject"], inbox.body(inbox.messages[0])


@pytest.mark.slow
def test_a_setting_that_cannot_be_read_mails_its_line_first(ops: Ops, smtp: tuple[Inbox, int]) -> None:  # noqa: F811
    inbox, port = smtp
    _mail_config(ops, port)
    _add_config(ops, "\n[checks]\nlost_fail_pct = abc\n")
    run = ops.luigi("DailyPipeline", *DATE, "--local-scheduler")
    assert run.returncode == 35, run.stderr[-3000:]
    subject, body = _only_mail(inbox)
    assert "failed scheduling" in subject, subject
    first, *_ = body.splitlines()
    assert first.startswith(f"DailyPipeline for {SEED_DAY} could not be scheduled: [checks] lost_fail_pct = 'abc' is"
                            " not valid (expected a number): fix it in luigi.cfg"), body[:2000]
    assert "\nRunbook: docs/operations.md#runbook\n" in body and "Traceback" in body, body[:2000]


@pytest.mark.slow
def test_luigid_not_answering_mails_what_to_do_not_four_tracebacks(ops: Ops, smtp: tuple[Inbox, int]) -> None:  # noqa: F811
    inbox, port = smtp
    _mail_config(ops, port)
    cfg = Path(ops.extra_env["LUIGI_CONFIG_PATH"])  # its [core] names a port for luigid: no retries of it here
    cfg.write_text(cfg.read_text().replace("[core]\n", "[core]\nrpc-retry-attempts = 1\nrpc-retry-wait = 1\n"))
    nobody = free_port()
    run = ops.luigi("DailyPipeline", *DATE, "--scheduler-host", "127.0.0.1", "--scheduler-port", str(nobody))
    assert run.returncode == 40, run.stderr[-3000:]
    subject, body = _only_mail(inbox)
    assert "Framework error while scheduling" in subject, subject
    assert body.startswith(f"the central scheduler at http://127.0.0.1:{nobody} does not answer: start it"), body[:2000]
    assert "add --local-scheduler to the command" in body.splitlines()[0], body[:2000]


@pytest.mark.slow
def test_a_date_luigid_never_ran_is_not_said_to_be_disabled(
        ops: Ops, luigid: Luigid, smtp: tuple[Inbox, int]) -> None:  # noqa: F811
    """Postgres refuses the configured database while scheduling: luigid disables nothing, so neither the summary
    nor the e-mail says to re-enable a task first (`reenable` would answer "nothing to re-enable")."""
    inbox, port = smtp
    _mail_config(ops, port)
    refusing = Ops(incoming=ops.incoming, lake=ops.lake, server=ops.server, database=ops.database,
                   extra_env={**ops.extra_env, "ECOMM_PG_DSN": ops.server.dsn("no_such_database")})
    run = refusing.luigi("DailyPipeline", *DATE, *luigid.scheduler_args())
    assert run.returncode == 35, run.stderr[-3000:]
    assert luigid.tasks("DISABLED") == {}
    what = next(line.strip() for line in run.stdout.splitlines() if line.strip().startswith("what to do ("))
    assert what.startswith("what to do (Postgres refuses): ") and "reenable" not in what, run.stdout
    _, body = _only_mail(inbox)
    assert " could not be scheduled: OperationalError: " in body.splitlines()[0], body[:2000]
    assert "What to do (Postgres refuses): " in body and "reenable" not in body, body[:3000]


@pytest.mark.slow
def test_the_cron_backfill_that_cannot_be_scheduled_mails_its_reason_first(
        ops: Ops, smtp: tuple[Inbox, int]) -> None:  # noqa: F811
    """RangeDaily, the documented cron command, has no `date` parameter: its e-mail gets the reason too."""
    inbox, port = smtp
    _mail_config(ops, port)
    refusing = Ops(incoming=ops.incoming, lake=ops.lake, server=ops.server, database=ops.database,
                   extra_env={**ops.extra_env, "ECOMM_PG_DSN": ops.server.dsn("no_such_database")})
    run = refusing.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY), "--stop",
                         str(SEED_DAY + dt.timedelta(days=1)), "--local-scheduler")
    assert run.returncode == 35, run.stderr[-3000:]
    subject, body = _only_mail(inbox)
    assert "RangeDaily" in subject and "failed scheduling" in subject, subject
    assert body.startswith("RangeDaily could not be scheduled: OperationalError: "), body[:2000]
    assert "\nWhat to do (Postgres refuses): " in body, body[:3000]
