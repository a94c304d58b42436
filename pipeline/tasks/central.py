"""The central scheduler (luigid) as the pipeline sees it: which of a date's tasks it refuses, and re-enabling them.

luigid disables a task that failed its last attempt for `[scheduler] disable_persist` seconds (so
a long backfill does not rerun bad data every few minutes). A later run of the date through luigid
then runs nothing for it and exits 25; Luigi only says the task was "not granted run permission".
This module lets the run say what happened and what to do, and cleans up after a fix:

- `disabled(url, dates)`: the date's tasks luigid holds DISABLED (the run summary prints them);
- `python -m pipeline reenable --date D` (`main`): re-enables them through luigid's own API
  (`re_enable_task`, the UI's button), so the next run of the date runs them;
- `settle(url, dates)`: after a date is published (e.g. with `--local-scheduler`, or by
  `python -m pipeline restate`: `settle_published`), its tasks that luigid still shows DISABLED or
  FAILED, or PENDING with no worker left to run them, and that are complete now are reported DONE, so
  luigid's UI does not show a published date as broken.

Everything here is best effort with short timeouts: luigid not running is the normal case of a
`--local-scheduler` run and costs one refused connection on loopback.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

import luigi
import luigi.configuration
import luigi.interface

from pipeline import cli, clock, setting_source
from pipeline.lake import pids

logger = logging.getLogger(__name__)

TIMEOUT = 3.0  # seconds per request: luigid answers from memory
WORKER = f"ecomm-settle@{socket.gethostname()}"  # the worker id luigid records for settled tasks


class SchedulerUnreachable(Exception):
    """luigid does not answer at the configured address."""


def configured_url() -> str:
    """luigid's URL from luigi.cfg [core] (scheduler_url, else scheduler_host and scheduler_port)."""
    core = luigi.interface.core()
    if core.scheduler_url:
        return core.scheduler_url.rstrip("/")
    return f"http://{core.scheduler_host}:{core.scheduler_port}"


def luigid_option(url: str) -> str:
    """` --scheduler-url URL` for a command that must reach the luigid at `url`; "" when luigi.cfg names it.

    The project's commands read luigid's address from luigi.cfg: a run given another one
    (`--scheduler-port 8090`) prints its follow-up commands with this option, or they would ask
    luigi.cfg's luigid (and, re-enabling, change nothing where the run's tasks are).
    """
    with setting_source.luigi_parser(None):  # luigi.cfg alone, as a new command reads it
        configured = configured_url()
    url = url.rstrip("/")
    return "" if url == configured else f" --scheduler-url {url}"


def reenable_command(which: str, url: str) -> str:
    """`python -m pipeline reenable <which>` for the luigid at `url`."""
    return f"python -m pipeline reenable {which}{luigid_option(url)}"


def scheduler_url_arg(text: str) -> str:
    """argparse type of --scheduler-url: an http(s) URL (`127.0.0.1:8082` alone is a usage error, not "luigid is down")."""
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise argparse.ArgumentTypeError(f"{text!r} is not luigid's URL: give it as http://HOST:PORT")
    return text.rstrip("/")


def call(url: str, method: str, **data: Any) -> Any:
    """One call of luigid's JSON API (`/api/<method>?data=...`); SchedulerUnreachable if it does not answer."""
    query = urllib.parse.urlencode({"data": json.dumps(data)})
    try:
        with urllib.request.urlopen(f"{url}/api/{method}?{query}", timeout=TIMEOUT) as response:
            return json.loads(response.read())["response"]
    except (OSError, ValueError, KeyError) as err:
        raise SchedulerUnreachable(f"the central scheduler at {url} does not answer ({err})") from None


def date_of(task: dict[str, Any]) -> dt.date | None:
    try:
        return dt.date.fromisoformat(task.get("params", {}).get("date", ""))
    except (TypeError, ValueError):
        return None


def tasks_of(url: str, status: str, dates: Iterable[dt.date]) -> dict[str, dict[str, Any]]:
    """luigid's tasks in `status` whose `date` parameter is one of `dates` (task id -> luigid's record)."""
    wanted = set(dates)
    listed = call(url, "task_list", status=status, upstream_status="", search="") or {}
    if "num_tasks" in listed:  # more than luigid's [scheduler] max_shown_tasks: it lists none
        logger.warning("luigid holds %s %s tasks, more than it lists ([scheduler] max_shown_tasks): those of %s"
                       " are not looked at", listed["num_tasks"], status, ", ".join(map(str, sorted(wanted))))
        return {}
    return {task_id: task for task_id, task in listed.items() if isinstance(task, dict) and date_of(task) in wanted}


def disabled(url: str, dates: Iterable[dt.date]) -> dict[str, dict[str, Any]]:
    """The dates' tasks luigid refuses to run (DISABLED after a finally failed attempt)."""
    return tasks_of(url, "DISABLED", dates)


def describe(url: str, tasks: dict[str, dict[str, Any]], dates: Iterable[dt.date]) -> list[str]:
    """What the run summary says about disabled tasks: what luigid does, until when, what to do."""
    if not tasks:
        return []
    persist = luigi.configuration.get_config().getint("scheduler", "disable_persist", 86400)
    lines = [f"luigid ({url}) disabled {len(tasks)} task(s) whose last attempt failed; it does not run them again"
             " until they are re-enabled:"]
    for task in sorted(tasks.values(), key=lambda t: (t["display_name"])):
        since = task.get("last_updated") or 0  # seconds: a day later is 86400 s later, across a DST change too
        lines.append(f"    {task['display_name']} is DISABLED since {clock.local(since)},"
                     f" until about {clock.local(since + persist)}"
                     f" ([scheduler] disable_persist = {persist} s)")
    days = sorted({day for task in tasks.values() if (day := date_of(task))} | set(dates))
    which = f"--date {days[0]}" if len(days) == 1 else f"--start {days[0]} --stop {days[-1] + dt.timedelta(days=1)}"
    lines.append(f"    once the cause is fixed: `{reenable_command(which, url)}`, then run the date(s) again"
                 " (or run them with --local-scheduler)")
    return lines


def reenable(url: str, dates: Iterable[dt.date]) -> list[str]:
    """Re-enable the dates' DISABLED tasks in luigid (as the UI's button does); return their names.

    A task that is complete (its worker was killed after it finished, or a later run published the
    date) is reported DONE instead: re-enabled, luigid would show it FAILED.
    """
    done = []
    for task_id, task in disabled(url, dates).items():
        if _complete(task):
            _report_done(url, task_id, task)
            done.append(task["display_name"])
        elif call(url, "re_enable_task", task_id=task_id):
            done.append(task["display_name"])
    return sorted(done)


def _complete(task: dict[str, Any]) -> bool:
    try:
        cls = luigi.task_register.Register.get_task_cls(task["name"])
        return bool(cls.from_str_params(task.get("params") or {}).complete())
    except Exception:  # noqa: BLE001 - a task this process cannot rebuild or check stays as it is
        logger.debug("could not check %s", task.get("display_name"), exc_info=True)
        return False


def _live_workers(url: str) -> set[str]:
    """The workers luigid lists that still run: on this host, by their pid; elsewhere, by a ping (every second
    while a run goes on) in the last 30 s. luigid drops an ended run's worker only a minute after its last one."""
    live, now, here = set(), time.time(), socket.gethostname()
    for worker in call(url, "worker_list", include_running=False) or []:
        pid = worker.get("pid")
        if worker.get("host") == here and isinstance(pid, int):
            alive = pids.process_alive(pid)
        else:
            alive = now - float(worker.get("last_active") or 0) < 30
        if alive:
            live.add(worker.get("name"))
    return live


def _report_done(url: str, task_id: str, task: dict[str, Any]) -> None:
    call(url, "add_task", task_id=task_id, status="DONE", worker=WORKER, runnable=False,
         family=task["name"], params=task.get("params") or {})
    call(url, "set_task_status_message", task_id=task_id,
         status_message=f"complete: found done by a later run of {date_of(task)}")


def settle(url: str, dates: Iterable[dt.date]) -> list[str]:
    """Report DONE to luigid for the dates' DISABLED/FAILED/PENDING tasks that are complete now; return their names.

    luigid lets a DONE report override its disabling (as when a worker finds the task complete). A PENDING one
    is a task a failed luigid run left waiting: a run with --local-scheduler (or `restate`) that completed it
    tells luigid nothing, and a backfill's RangeDaily skips a published date. One a live worker still plans to
    run (another run's, going on) is left to it: luigid would never give it that task again.
    """
    dates = list(dates)
    settled = []
    for status in ("DISABLED", "FAILED", "PENDING"):
        tasks = tasks_of(url, status, dates)
        live = _live_workers(url) if status == "PENDING" and tasks else set()
        for task_id, task in tasks.items():
            if not (status == "PENDING" and live & set(task.get("workers") or [])) and _complete(task):
                _report_done(url, task_id, task)
                settled.append(task["display_name"])
    if settled:
        logger.info("luigid: %d task(s) of published dates shown as done again: %s", len(settled), ", ".join(settled))
    return sorted(settled)


def settle_published(summaries: list[Any], url: str | None = None) -> list[str]:
    """`settle` the dates a run in this process published (its summary's rows), in luigi.cfg's luigid by default.

    For a run that is not the `luigi` command line (`python -m pipeline restate` runs its dates with
    `--local-scheduler`); no luigid answering is the normal case and stays silent.
    """
    dates = [s.date for s in summaries if s.status == "published"]
    if not dates:
        return []
    try:
        return settle(url or configured_url(), dates)
    except SchedulerUnreachable as err:
        logger.debug("%s: nothing to settle", err)
        return []


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline reenable`: let luigid run a date's disabled tasks again."""
    parser = cli.Parser(prog="python -m pipeline reenable", description=__doc__.split("\n\n")[0])
    cli.add_date_options(parser)
    parser.add_argument("--scheduler-url", type=scheduler_url_arg,
                        help="luigid's URL (default: luigi.cfg [core], http://127.0.0.1:8082)")
    args = parser.parse_args(argv)
    days = cli.dates(parser, args)
    url = (args.scheduler_url or configured_url()).rstrip("/")
    try:
        names = reenable(url, days)
    except SchedulerUnreachable as err:
        print(f"{err}: is it running (`make luigid` in a checkout, `luigid` where the package is installed)? With"
              " --local-scheduler nothing is disabled.", file=sys.stderr)
        return 3
    if not names:
        print(f"luigid ({url}) holds no disabled task of {', '.join(map(str, days))}: nothing to re-enable")
        return 0
    print(f"re-enabled in luigid ({url}): {', '.join(names)}")
    first = f"--date {days[0]}" if len(days) == 1 else f"--start {days[0]} --stop {days[-1] + dt.timedelta(days=1)}"
    command = ("DailyPipeline " + first) if len(days) == 1 else ("RangeDaily --of DailyPipeline " + first)
    print(f"now run the date(s) again: luigi --module pipeline.tasks {command}{luigid_option(url)}")
    return 0


BLOCKED = "BLOCKED by the quality gate"  # a date's summary status (pipeline.tasks.summary)


def _gate_ran(day: dt.date) -> bool:
    """Whether this process's run executed the date's quality gate (else its results are an earlier run's)."""
    from pipeline.tasks import run_audit

    return any(r["task_family"] == "QualityGate" and r["run_id"] == run_audit.run_id()
               for r in run_audit.executions(day))


def run_notes(summaries: list[Any], scheduled: list[dt.date], url: str, local: bool) -> list[str]:
    """luigid's side of a run's summary (`pipeline.tasks.summary`: its DateSummary rows, marked in place): tasks it
    refused (a luigid run), and published dates shown broken there (any run)."""
    notes: list[str] = []
    try:  # complete tasks settled first (of the published dates, and of earlier dates the run needed, a task of
        # which a killed worker had finished): luigid showing them disabled is not a reason to re-enable
        settle(url, {*scheduled, *(s.date for s in summaries if s.status == "published")})
        if not local:
            refused = disabled(url, scheduled)
            own = {date_of(task) for task in refused.values()}  # a date held back by another's: mark_held_back
            gates = {date_of(task) for task in refused.values() if task.get("name") == "QualityGate"}
            for s in summaries:
                if s.date in gates and s.status == BLOCKED and not _gate_ran(s.date):
                    # an earlier run's blocked gate, refused now: its old checks are not this run's outcome
                    s.status = "not published"
                    s.failures = [line for line in s.failures if " could not be scheduled: " in line]
                if s.date in own and s.status == "not published":
                    s.status = "DISABLED in luigid (not run)"
            notes = describe(url, refused, [s.date for s in summaries if s.status != "published"])
    except SchedulerUnreachable as err:
        if not local:
            notes.append(f"({err})")
    return notes
