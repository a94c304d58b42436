"""One kind of failure of the runbook (`Remedy`) and the commands its fixes name (the table: `remedies`).

`Remedy.fix_for` words a kind's fix for one date (the daily command as it was run, the `restate` command a
pending restatement of the date needs, the luigid a run was given).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re

from pipeline.tasks.command_line import given_settings  # the settings' options a rerun keeps, as the run was
from pipeline.tasks.lost_tasks import TIMEOUT_OPTION, TIMEOUT_SETTING, timeout_setting

RUNBOOK = "docs/operations.md#runbook"
DAILY = "luigi --module pipeline.tasks DailyPipeline --date {date}"
LOCAL_SCHEDULER = " --local-scheduler"  # how a run without luigid (the README's daily command) gives it
RESTATE = "`python -m pipeline restate --date {date}`"  # a fix's restatement of the date (see Remedy.restates)
TERMINATE = "`select pg_terminate_backend(N)`"  # a fix's end of the sessions a message names (see Remedy.names_pids)
_PID = re.compile(r"\bpid (\d+)\b")  # how a lock message names a session (pipeline.serving.locks)


def daily_command(day: dt.date | str, *, local_scheduler: bool = True) -> str:
    """The daily command of a date; by default in the README's form, which works whether or not luigid runs."""
    return DAILY.format(date=day) + (LOCAL_SCHEDULER if local_scheduler else "") + given_settings()


@dataclasses.dataclass(frozen=True)
class Remedy:
    """One kind of failure: how it shows, why, and the command(s) that fix it ({date} = the load date)."""

    kind: str
    exit_code: str
    symptom: str
    cause: str
    fix: str
    errors: tuple[str, ...] = ()  # exception class names (of the error or what it was raised from)
    own_fix: str = ""  # a regex: the command an error's message gives for itself (its group that matched) is the fix
    reruns: bool = False  # its fix reruns the date in words, not by the daily command (the gate's "rerun it with")
    restates: bool = False  # its fix's RESTATE is the date's pending catalog restatement's command when there is one
    names_timeout: bool = False  # its fix's TIMEOUT_SETTING / TIMEOUT_OPTION: those of the task a message names
    names_pids: bool = False  # its fix's TERMINATE: ends the sessions a message names by pid (`pid 23185`)
    table_note: str = ""  # said after its fix in the runbook's table only (a date's fix says the case that applies)

    def fix_for(self, day: dt.date | str | None, *, local_scheduler: bool = False, message: str = "",
                failed: bool = False) -> str:
        """The fix for a date; local_scheduler=True: its daily command for a run without luigid, as it was run.

        `message`: the error's; when it names its own command (`own_fix`), that command is the fix.
        `failed`: a task of the date failed through luigid, which disabled it (every task has
        retry_count = 1): a fix that reruns the date (its daily command, or `reruns`) re-enables it first.
        """
        if own := self.named_by(message):
            return own
        fix = self.fix.replace(RESTATE, pending_restate(day)) if self.restates else self.fix
        if self.names_timeout and (setting := timeout_setting(message)):
            fix = fix.replace(TIMEOUT_SETTING, f"`{setting[0]}`").replace(TIMEOUT_OPTION, setting[1])
        if self.names_pids and (pids := list(dict.fromkeys(_PID.findall(message)))):
            fix = fix.replace(TERMINATE, f"`select pg_terminate_backend({pids[0]})`" if len(pids) == 1 else
                              f"`select pg_terminate_backend(pid) from unnest(array[{', '.join(pids)}]) as pid`")
        fix = fix.replace(DAILY, DAILY + (LOCAL_SCHEDULER if local_scheduler else _luigid_option())
                          + given_settings(f"{message} {fix}"))  # not those it names: the fix sets them
        fix = fix.replace("{date}", str(day) if day else "<date>")
        if failed and not local_scheduler and (self.reruns or DAILY.format(date=day) in fix) and "reenable" not in fix:
            fix += (f"; luigid disabled the failed task: first `python -m pipeline reenable --date {day}"
                    f"{_luigid_option()}` (or run the date with --local-scheduler)")
        return fix

    def named_by(self, message: str) -> str | None:
        """The fix when the error's message names its own command (`own_fix`): that command; else None."""
        if self.own_fix and (found := re.search(self.own_fix, message)):
            said = found.group(found.lastindex)
            return f"`{said}`, as the error says" if said.startswith(("python ", "luigi ")) else f"{said}, as the error says"
        return None

    def fix_rerunning(self, command: str, day: str = "<date>") -> str:
        """The fix for a command other than the daily run that met this failure: it reruns that command."""
        return self.fix.replace(DAILY, command).replace("{date}", day)


def pending_restate(day: dt.date | str | None) -> str:
    """RESTATE, or the `restate --catalog KIND --date S` command(s) when the date's pending restatement restates a
    catalog snapshot: a daily `restate --date D` finds nothing to do for one (the snapshot's file is what changed)."""
    from pipeline.tasks import restatements

    try:
        date = dt.date.fromisoformat(str(day))
    except ValueError:  # no date: the docs' table ("D") or an unknown one
        return RESTATE
    record = restatements.read_record(date)
    if not (restatements.is_pending(record) and record.get("snapshots")):
        return RESTATE
    commands = " and ".join(f"`{command}`" for command in restatements.commands(date, record))
    return f"{commands} (what the pending restatement of {date} restates; a daily file fixed instead: {RESTATE})"


def _luigid_option() -> str:
    """` --scheduler-url URL` when this process's run was given another luigid than luigi.cfg's (else "")."""
    from pipeline.tasks import central

    return central.luigid_option(central.configured_url())
