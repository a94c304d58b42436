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

Luigi's e-mail for a task it could not schedule (its complete() or requires() raised, or luigid did not
answer) is the traceback alone, its error's line last or cut off; it gets the run's own first lines
(`scheduling_head`): what could not be scheduled and why, what to do, the runbook.

A failed task's e-mail opened with Luigi's "A task failed when running. Most likely run() raised an
exception.", its parameters and command line, and only then the task's own explanation (what failed,
what to do, the runbook: `PipelineTask.on_failure`); that explanation is now its first lines
(`_explanation_first`).

An e-mail the SMTP server did not take (down, a timeout, a refused recipient or login) is one
ERROR line in the middle of Luigi's log, and the run exits as it would have: the alert is lost
without a word where an operator looks. At the run's end, after its summary (what cron's `tail`
shows), one line per e-mail not sent says so (`unsent_notice`).
"""
from __future__ import annotations

import atexit
import functools
import logging
import re
import subprocess
import sys
import warnings
from typing import Any

import luigi.notifications

from pipeline.tasks import cli_errors, command_line, runbook, unscheduled

logger = logging.getLogger(__name__)

# The subject Luigi's scheduler gives the e-mail (luigi/scheduler.py, SimpleTaskState.set_status).
DISABLED_SUBJECT = "Luigi Scheduler: DISABLED "
# What luigi.notifications.send_email_smtp logs for an e-mail the server did not take (it raises nothing).
NOT_SENT = "Not able to connect to smtp server: %s"

# Luigi's subjects for a task it could not schedule (luigi/worker.py: _email_complete_error, _email_dependency_error,
# _email_unexpected_error), after the [email] prefix
SCHEDULING_SUBJECT = re.compile(r"Luigi: (?:Framework error while scheduling )?(?P<family>\w+)\((?P<params>[^)]*)\)"
                                r"(?: failed scheduling)?\. Host: ")

_unsent: list[tuple[str, str]] = []  # (subject, the server's error) of each e-mail this process could not send
_sending: list[str] = []  # the subject of the e-mail being sent
_unreadable: list[tuple[str, str]] = []  # (subject, the setting that stopped it) of each e-mail not even tried


class _UnsentMail(logging.Filter):
    """Notes each e-mail the SMTP server did not take (`NOT_SENT`), for `unsent_notice`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == NOT_SENT and _sending:
            _unsent.append((_sending[-1], str(record.args[0] if isinstance(record.args, tuple) else record.args)))
        return True


def unsent_notice() -> str:
    """One line per e-mail not sent, '' when every one went out (or none was due)."""
    refused = "".join(f"the failure e-mail {subject!r} was NOT sent: the SMTP server said {error}; nobody was"
                      " alerted: check [smtp] and [email] (docs/operations.md#failure-e-mails)\n"
                      for subject, error in _unsent)
    return refused + "".join(f"the failure e-mail {subject!r} was NOT sent: {reason}; nobody was alerted\n"
                             for subject, reason in _unreadable)


def _unreadable_reason(error: ValueError) -> str:
    """The one line naming the [email] / [smtp] value behind `error` (the error itself if none is named)."""
    from pipeline import config  # noqa: PLC0415

    found = config.bad_setting(luigi.notifications.email) or config.bad_setting(luigi.notifications.smtp)
    return str(found or error)


def scheduling_head(subject: str, error: BaseException | None) -> str | None:
    """The first lines of Luigi's e-mail for a task it could not schedule, as the run's log says it (None: not such
    an e-mail). `error`: the one Luigi is handling, if any (luigid not answering); a complete() that raised is
    checked in a thread and known by its traceback's line, which `unscheduled` noted as Luigi logged it."""
    found = SCHEDULING_SUBJECT.search(subject)
    if found is None:
        return None
    if said := cli_errors.luigid_down(error):
        return said
    day = unscheduled.task_date(found["params"])  # None: a task without a date (RangeDaily, the cron command)
    noted = unscheduled.noted(found["family"], day)
    if noted is None and error is None:
        return None
    return runbook.explain(found["family"], day, noted or error,  # type: ignore[arg-type]
                           local_scheduler=command_line.uses_local_scheduler(), scheduled=False)


#: how a task's explanation (`runbook.explain`, put before the traceback by `PipelineTask.on_failure`) starts
_EXPLAINED = re.compile(r"\w+(?: for \d{4}-\d{2}-\d{2})? failed: [^\n]*\n(?:What to do [^\n]*\n)?Runbook: [^\n]*\n\n")


def _explanation_first(format_task_error: Any) -> Any:
    """luigi.notifications.format_task_error, with the task's explanation as the headline when it has one, and the
    command line's URLs without their secrets (`command_line.shown`: a catalog URL given as an option)."""

    @functools.wraps(format_task_error)
    def formatted(headline: str, task: Any, command: str, formatted_exception: str | None = None) -> Any:
        if formatted_exception and (explained := _EXPLAINED.match(formatted_exception)):
            headline, formatted_exception = explained.group(0).rstrip("\n"), formatted_exception[explained.end():]
        return format_task_error(headline, task, _shown(command), formatted_exception)

    formatted.explanation_first = True  # type: ignore[attr-defined]
    return formatted


def _shown(command: str) -> str:
    """Luigi's command line (`subprocess.list2cmdline(sys.argv)`), each argument as `command_line.shown` prints it:
    a catalog URL's secrets masked, also in `--option=URL` and in an argument quoted for its spaces."""
    if command != subprocess.list2cmdline(sys.argv):
        return command  # not this process's command line: nothing known to mask
    return subprocess.list2cmdline([_shown_argument(argument) for argument in sys.argv])


def _shown_argument(argument: str) -> str:
    name, equals, value = argument.partition("=")
    if equals and name.startswith("--"):
        return f"{name}={command_line.shown(value)}"
    return command_line.shown(argument)


def _print_unsent() -> None:
    if notice := unsent_notice():
        sys.stderr.write(notice)


def install() -> None:
    """Wrap Luigi's send_error_email (once) so a local scheduler's "DISABLED" e-mail is not sent; quiet [smtp]'s;
    say at the end which e-mails the SMTP server did not take."""
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
        try:
            head = scheduling_head(subject, sys.exc_info()[1])
        except Exception:  # noqa: BLE001 - the explanation must never stop the e-mail
            logger.debug("could not explain %r", subject, exc_info=True)
            head = None
        if head:
            message = f"{head}\n\n{message}"
        _sending.append(subject)
        try:
            send(subject, message, *args, **kwargs)
        except ValueError as err:  # an [email] / [smtp] value Luigi cannot read: refused before a run, but this
            _unreadable.append((subject, _unreadable_reason(err)))  # e-mail may be the refusal's own
        finally:
            _sending.pop()

    send_error_email.drops_local_disabled = True  # type: ignore[attr-defined]
    luigi.notifications.send_error_email = send_error_email
    luigi.notifications.format_task_error = _explanation_first(luigi.notifications.format_task_error)
    logging.getLogger("luigi-interface").addFilter(_UnsentMail())
    atexit.register(_print_unsent)  # before the run summary's registration: printed after it
