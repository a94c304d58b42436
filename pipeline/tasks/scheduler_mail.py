"""No "DISABLED for 3600 seconds" e-mail from a `--local-scheduler` run: nothing stays disabled after it.

Every pipeline task has `retry_count = 1`, so a failed task is disabled at once by whichever
scheduler runs it, and Luigi's scheduler then mails "Luigi Scheduler: DISABLED <task> due to
excessive failures ... being disabled for 3600 seconds". From luigid that is true and useful (it
refuses the task until it is re-enabled: docs/operations.md). From the scheduler a `--local-scheduler`
run holds in its own process, it is false: that scheduler ends with the process, and the rerun the
failure e-mail asks for runs the task at once. A cron run would mail every failure twice, the
second contradicting the first. `install()` drops that one e-mail in a local-scheduler process;
every other e-mail (the failure e-mail, luigid's) goes out as before.

It also silences the warnings Luigi's own `[smtp]` defaults raise at every e-mail (`local_hostname`,
`username` and `password` default to None: "Parameter ... is not of type string"), six lines in a
failed run's log that the docs promise is one line.
"""
from __future__ import annotations

import functools
import logging
import warnings
from typing import Any

import luigi.notifications

from pipeline.tasks import command_line

logger = logging.getLogger(__name__)

# The subject Luigi's scheduler gives the e-mail (luigi/scheduler.py, SimpleTaskState.set_status).
DISABLED_SUBJECT = "Luigi Scheduler: DISABLED "


def install() -> None:
    """Wrap Luigi's send_error_email (once) so a local scheduler's "DISABLED" e-mail is not sent; quiet [smtp]'s."""
    warnings.filterwarnings("ignore", r'Parameter "(local_hostname|username|password)" with value "None" is not of'
                            r" type string\.", UserWarning, r"luigi\.parameter")
    send = luigi.notifications.send_error_email
    if getattr(send, "drops_local_disabled", False):
        return

    @functools.wraps(send)
    def send_error_email(subject: str, message: str, *args: Any, **kwargs: Any) -> None:
        if subject.startswith(DISABLED_SUBJECT) and command_line.uses_local_scheduler():
            logger.debug("not mailing %r: a --local-scheduler run disables nothing beyond itself", subject)
            return
        send(subject, message, *args, **kwargs)

    send_error_email.drops_local_disabled = True  # type: ignore[attr-defined]
    luigi.notifications.send_error_email = send_error_email
