"""The run summary: per date, rows through the layers, quarantine, checks, publish state and time.

    python -m pipeline summary --start 2025-12-13 --stop 2025-12-20 [--run-id R]
    python -m pipeline summary --date 2025-12-15

It reads what the pipeline left behind, so it is the same after the run as during it: raw row counts
from the raw manifests, staged / quarantined / duplicate counts from audit/reconciliation, fact rows
from the warehouse partitions, check outcomes from audit/dq_results, the publish state from
Postgres `audit.publish_log`, and task outcomes and times from the run audit (`pipeline.tasks.run_audit`).

A `luigi` command-line run prints it for the dates it scheduled when it exits (`pipeline.tasks` registers
that; `[run_summary] at_exit = false` turns it off), restricted to that run's task executions: `time` is
then the sum of the run's task durations for the date, else its `runtime_seconds` (`run_audit.date_runtime`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

import luigi

from pipeline import cli, config, lake, read_once
from pipeline.ingest import incoming, landing
from pipeline.ingest.landing import SourceChanged
from pipeline.quality.results import OUTCOMES
from pipeline.tasks import (catalog_cover, central, cli_errors, command_line, held_back, lake_gaps, late_catalogs,
                            restatements, run_audit, run_audit_pg, runbook, unscheduled)
from pipeline.tasks import publish as publish_task
from pipeline.tasks import summary_checks
from pipeline.tasks import summary_inputs as inputs

logger = logging.getLogger(__name__)

# A published date whose landed file (or snapshot) changed, or whose raw partition was removed, since: Postgres
# serves it as it was, and it is not complete (nor counted as published) until restated (or the file put back).
STALE_SOURCE, LOST_RAW = "published, source CHANGED", "published, raw MISSING"
LAKE_INCOMPLETE = "published, lake INCOMPLETE"  # partitions of the published date are gone (`lake_gaps`)
BROKEN_MANIFEST = "published, raw manifest BROKEN"  # a landed partition's completion marker was changed by hand
RESTATING = "published, restatement PENDING"  # Postgres serves the version before: not complete, nor counted
UNRECONCILED = "published, NOT RECONCILED"  # its serving reconciliation failed (or never ran) after the commit
CHANGED = f"{SourceChanged.__name__}:"


class run_summary(config.NamedBadSettings, luigi.Config):  # noqa: N801 - luigi maps the class name to [run_summary]
    """[run_summary]: the summary a `luigi` command-line run prints when it exits."""

    at_exit = luigi.BoolParameter(default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING)  # --...-at-exit false


@dataclasses.dataclass
class DateSummary:
    """What one date went through (None: not known / not there)."""

    date: dt.date
    raw: dict[str, int | None]
    staged: dict[str, int | None]
    quarantined: dict[str, int | None]
    duplicates: dict[str, int | None]
    rejected: dict[str, int | None]
    facts: dict[str, int | None]
    published: dict[str, int | None] | None
    checks: dict[str, int] | None
    status: str
    seconds: float | None
    failures: list[str]
    failed_tasks: list[str] = dataclasses.field(default_factory=list)  # families whose last attempt in the run failed
    # a published date's only: its what to do, rerunning the date whose run needed its failed task (held_back)
    rerun_fix: Callable[[dt.date], str] | None = None


def _drift(day: dt.date) -> list[str]:
    """Why the date's landed files (or snapshots) are no longer as landed, a line each (a lost raw partition's: its fix)."""
    try:
        changed = [landing.changed_message(source, day, reason) if landing.LOST in reason
                   else f"incoming file changed: {source} for {day}: {reason}"
                   for source, reason in landing.changed_sources(day).items()]
        return changed + [f"incoming file changed: {line}" for line in catalog_cover.changed_catalogs(day).values()]
    except (OSError, ValueError):  # the run's own failure says what it is
        return []


def _broken_manifests(day: dt.date) -> list[str]:
    """The date's raw manifests that cannot be read (ManifestUnreadable's words), a line each: every run of the date
    stops on them while scheduling, and what they mark cannot be told from what the incoming file is now."""
    broken = []
    for source in incoming.DAILY_SOURCES:
        try:
            landing.read_manifest(source, day)
        except landing.ManifestUnreadable as err:
            broken.append(f"ManifestUnreadable: {err}")
    return broken


@read_once.scoped_over  # one look at the lake for the range: each listing once, not once a date
def summarise(days: Iterable[dt.date], run_id: str | None = None, *, start_postgres: bool = True,
              local_scheduler: bool = False, messages: bool = False) -> list[DateSummary]:
    """The summary of each date; with `run_id`, outcomes and time of that run's executions only.

    local_scheduler=True: the run used no luigid, so the commands in its "what to do" lines do not either.
    messages=True: under each check that blocked a date, its whole message (what it measured, why,
    and what to do, the threshold option included), as `python -m pipeline summary --date D` prints.
    """
    days = sorted(set(days))
    config.lake_dir()  # a lake that cannot be one (BadSetting) is said before Postgres is asked
    published, pg_runs, unknown = inputs.serving_state(days, start_postgres, run_id)
    rerun = {"local_scheduler": local_scheduler}
    # dates published (any, not only these: a run says the same), no lake folder: the wrong one is named
    lake.check_built_here(lambda: publish_task.published_anywhere() if published is not None else set())
    result, listing = [], lake_gaps.Listing(days)
    for day in days:
        twins = run_audit.executions(day, run_id)  # with a run: only its own (`_runs` keeps no other)
        runs = _runs(run_audit_pg.with_postgres(day, twins, run_id, pg_runs.get(day, [])), run_id)
        recon = {s: inputs.reconciliation(s, day) for s in ("orders", "events")}
        results = inputs.check_results(day)
        checks = None if results is None else {
            kind: sum(r["outcome"] == kind for r in results) for kind in OUTCOMES}
        pub = None if published is None else published.get(day)
        # failures still standing: the task's last attempt in the run failed, and (latest run) no later publish by
        last: dict[str, dict[str, Any]] = {}  # another run (rebuild-serving's: no run audit rows) made it history
        for row in runs:
            last[row["task_id"]] = row
        failed = [r for r in last.values() if r["status"] == "failed"
                  and (run_id is not None or not inputs.published_since(r, pub))]
        failures = [f"{r['task_family']}: {cli.shortened(r['error_message'])}" for r in failed]
        remedies = [remedy for r in failed if (remedy := runbook.remedy_for_text(r["error_message"]))]
        not_scheduled = []
        if run_id is not None and run_id == run_audit.run_id():  # this process's run: what it could not schedule
            for family, reason in unscheduled.failures(day):
                not_scheduled.append(f"{family} could not be scheduled: {cli.shortened(reason)}")
                remedies.extend(remedy for remedy in [runbook.remedy_for_text(reason)] if remedy)
        failures.extend(not_scheduled)
        blocked, drift = checks is not None and bool(checks["fail"] + checks["error"]), []
        if pub is not None and (late := late_catalogs.late_catalogs(day)):
            status = "published, catalog LATE"  # with an older catalog than the snapshot that covers it now
            failures.extend(f"what to do (late catalog snapshot): {line}" for line in late.values())
        elif pub is not None and (changed := [r["error_message"] for r in failed if cli.shortened(
                r["error_message"]).startswith(CHANGED)]):  # the date is not complete until restated
            status = LOST_RAW if all(landing.LOST in message for message in changed) else STALE_SOURCE
        elif pub is not None and (drift := _broken_manifests(day)):
            status = BROKEN_MANIFEST
            failures.extend([] if not_scheduled else drift)  # this run's: its tasks that could not be scheduled say it
            remedies.append(runbook.by_kind("broken manifest"))
        elif pub is not None and (drift := _drift(day)):  # changed since its last run, which has not seen it yet
            status = LOST_RAW if all(landing.LOST in reason for reason in drift) else STALE_SOURCE
            failures.extend(drift)
            remedies.append(runbook.by_kind("changed source file"))
        elif pub is not None and not pub["reconciled"]:
            status = UNRECONCILED  # what BI reads may not be the lake's: not complete, nor counted as published
        elif pub is not None and restatements.pending(day):
            status = RESTATING  # its run failed, e.g. the gate blocked its new files (then its checks, as below)
            if blocked:
                failures = not_scheduled + summary_checks.blocking_checks(results, messages, day, rerun)
        elif pub is not None and (gone := lake_gaps.missing(day, listing)):
            status = LAKE_INCOMPLETE  # what BI reads is no longer in the lake: a rebuild would lose it
            failures.extend(lake_gaps.describe(day, gone, local_scheduler=local_scheduler))
        elif pub is not None:
            status = "published"
        elif blocked:
            status = central.BLOCKED
            failures = not_scheduled + summary_checks.blocking_checks(results, messages, day, rerun)
        elif failures:
            status = "FAILED"
        elif not_ready := inputs.not_ready(day):
            status = f"NOT READY ({', '.join(not_ready)}: no ready marker)"
        elif published is None:
            status = f"publish state unknown ({unknown})"  # not reachable, refused the connection, or what it said
        else:
            status = "not published"
        gate_said, rerun_fix = blocked and status == RESTATING, None  # its blocking checks are listed, with what to do
        if remedies and status in ("published", STALE_SOURCE, LOST_RAW, BROKEN_MANIFEST, RESTATING, UNRECONCILED,
                                   "FAILED") and not gate_said:
            # the runbook's first kind, or the fix the error (or a changed catalog's drift) names for itself
            said = " ".join([*(r["error_message"] or "" for r in failed), *drift])
            fix = functools.partial(_what_to_do, remedies[0], said, rerun)
            if status == "published" and failed:  # only another date's run runs a task of a published date: the fix
                rerun_fix = functools.partial(fix, disabled=day)  # reruns that date (`held_back.mark`), not this one
            else:
                # luigid disabled a task that failed; one that could not be scheduled (not_scheduled) it did not
                failures.append(fix(day, failed=status == "FAILED" and bool(failed)))
        if not failures:  # a state no failure explains: what finishes it
            own_run = run_id is not None and run_id == run_audit.run_id()
            failures.extend(_next_step(day, status, bool(runs) and not own_run, rerun))
        failures.extend(run_audit_pg.twin_note(runs))  # after the status: a note, not a failure of its own
        if run_id is not None:
            done = [r["duration_seconds"] for r in runs if r["duration_seconds"] is not None]
            seconds = round(sum(done), 1) if done else None
        else:
            seconds = pub["runtime"] if pub and pub["runtime"] is not None else run_audit.date_runtime(day)
        manifests = {s: inputs.manifest(s, day) for s in ("orders", "events")}
        result.append(DateSummary(
            date=day,
            raw={s: manifests[s]["rows"] if manifests[s] else None for s in manifests},
            staged={s: recon[s].get("staged_count") for s in recon},
            quarantined={s: recon[s].get("quarantined_count") for s in recon},
            duplicates={s: recon[s].get("duplicate_count") for s in recon},
            rejected={s: manifests[s].get("rejected_count") if manifests[s] else None for s in manifests},
            facts={s: inputs.parquet_rows("warehouse", f"fact_{s}", day) for s in ("orders", "events")},
            published=pub, checks=checks, status=status, seconds=seconds, failures=failures,
            failed_tasks=[r["task_family"] for r in failed], rerun_fix=rerun_fix,
        ))
    return result


def _next_step(day: dt.date, status: str, ran: bool, rerun: dict[str, bool]) -> list[str]:
    """The "what to do" line of a date that no failure explains; `ran`: an earlier run of the date ended without
    publishing it and recorded no failure (killed, or still running), or a later one could not schedule it: a task
    whose complete() or requires() raised never runs, and the run audit records nothing of it (`unscheduled`)."""
    if status == RESTATING:  # an interrupted restatement: its command finishes it (a catalog's, its other dates too)
        again = " and ".join(f"`{c}`" for c in restatements.commands(day, restatements.read_record(day)))
        return [f"what to do (restatement pending): unless a `restate` is running, run {again}"]
    if status == UNRECONCILED:  # the commit stands; a run of the date reconciles it (its Publish is not complete)
        return [f"what to do (not reconciled): run the date, which reconciles it without republishing it:"
                f" `{runbook.daily_command(day, **rerun)}`"]
    if status.startswith("NOT READY"):  # the sender's marker is missing: nothing to fix but to wait for it
        return [_what_to_do(runbook.by_kind("not ready"), "", rerun, day)]
    if status == "not published" and ran:
        return [f"{held_back.RERUN} its last recorded run ended without publishing it and recorded no failure (killed,"
                " or still running; a run that could not schedule the date records nothing); unless it is running, run"
                f" the date, which says why if it cannot schedule it: `{runbook.daily_command(day, **rerun)}`"]
    return []


def _what_to_do(remedy: runbook.Remedy, said: str, rerun: dict[str, bool], day: dt.date, *, failed: bool = False,
                disabled: dt.date | None = None) -> str:
    """The date's "what to do" line; `disabled`: the other date whose failed task luigid disabled (re-enabled first)."""
    fix = remedy.fix_for(day, **rerun, message=said, failed=failed or disabled is not None)
    if disabled is not None:
        fix = fix.replace(f"reenable --date {day}", f"reenable --date {disabled}")
    return f"what to do ({remedy.kind}): {fix}"


def _runs(rows: list[dict[str, Any]], run_id: str | None) -> list[dict[str, Any]]:
    """The executions that speak for the date: the given run's, else those of the date's latest run.

    An earlier run's failure that a later run fixed (a restatement, a rerun after a fix) is history,
    not the date's state: it stays in the run audit, not in the summary.
    """
    if run_id is None and rows:
        run_id = max(rows, key=lambda r: (r["started_at"] or dt.datetime.min, r["run_id"]))["run_id"]
    return [r for r in rows if r["run_id"] == run_id]


def _n(value: Any) -> str:
    return "-" if value is None else str(value)


def _flow(s: DateSummary, source: str) -> str:
    pub = s.published[source] if s.published else None
    values = (s.raw[source], s.staged[source], s.facts[source], pub)
    return "-" if all(v is None for v in values) else ">".join(_n(v) for v in values)


def _dropped(s: DateSummary, source: str) -> str:
    values = (s.quarantined[source], s.duplicates[source], s.rejected[source])
    return "-" if all(v is None for v in values) else "+".join(_n(v) for v in values)


HEAD = "rows raw>staged>fact>published; dropped = quarantined+duplicates+rejected lines"


def render(summaries: Sequence[DateSummary], run_id: str | None = None) -> str:
    """The summary as a compact text table (one line per date, failures beneath).

    raw - staged is what staging dropped: quarantined rows and duplicates; rejected lines never
    became raw rows (the reader refused them). `dropped` shows the three, so no row is unaccounted.
    """
    head = f"Run summary{f' (run {run_id})' if run_id else ''}: {HEAD}"
    columns = ("date", "orders", "dropped", "events", "dropped", "checks pass/warn/fail", "time", "status")
    lines = []
    for s in summaries:
        checks = "-" if s.checks is None else f"{s.checks['pass']}/{s.checks['warn']}/{s.checks['fail'] + s.checks['error']}"
        time_text = "-" if s.seconds is None else f"{s.seconds:.1f}s"
        lines.append((s.date.isoformat(), _flow(s, "orders"), _dropped(s, "orders"), _flow(s, "events"),
                      _dropped(s, "events"), checks, time_text, s.status))
    widths = [max(len(c), *(len(line[i]) for line in lines)) if lines else len(c) for i, c in enumerate(columns)]
    out = [head, "  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    for s, line in zip(summaries, lines):
        out.append("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
        out.extend(f"    {failure}" for failure in s.failures)
    out.append(f"{sum(s.status == 'published' for s in summaries)} of {len(summaries)} date(s) published")
    return "\n".join(out)


def print_summary(days: Iterable[dt.date], run_id: str | None = None, *, start_postgres: bool = True,
                  local_scheduler: bool = True, messages: bool = False,
                  file: TextIO | None = None) -> list[DateSummary]:
    """Compute and print the summary; return it (reruns in the README's form, without luigid, unless told)."""
    summaries = summarise(days, run_id, start_postgres=start_postgres, local_scheduler=local_scheduler,
                          messages=messages)
    held_back.mark(summaries, HOLDING)
    print(render(summaries, run_id), file=file or sys.stdout, flush=True)
    return summaries


HOLDING = {"FAILED": "failed", "DISABLED in luigid (not run)": "disabled in luigid", RESTATING: "restatement pending"}


def _ignored() -> list[str]:
    """A line for each file in a catalog's incoming folder that no run reads (a snapshot under another name would
    leave the dates of its week built from the week before): said in the log only, it went unseen."""
    return [f"ignored incoming file: {path}: {why}" for kind in landing.CATALOGS if not landing.catalog_url(kind)
            for path, why in landing.ignored_catalog_files(kind).items()]


def _needed_failures(summaries: list[DateSummary], scheduled: Sequence[dt.date], local: bool) -> list[str]:
    """Failures of dates the run needed but nobody asked for, which hold the requested dates back.

    A date's models need an earlier catalog snapshot and its gate the earlier dates its volume check
    compares with (pipeline.tasks.check): when one of those fails, the requested date is only "not
    published"; the reason and what to do are the other date's, so they are shown here (a published date's
    failed task, e.g. its week's catalog snapshot fetched from the API now: with the fix rerunning the date asked).
    """
    asked = {s.date for s in summaries}
    others = [day for day in scheduled if day not in asked]
    failed = [s for s in summarise(others, run_audit.run_id(), start_postgres=False, local_scheduler=local)
              if held_back.holds(s, {"FAILED": "failed"})] if others else []
    if not failed:
        return []
    dates = ", ".join(str(s.date) for s in failed)
    held = [s.date for s in summaries if s.status == "not published"]
    for s in summaries:
        if s.status == "not published":
            s.status = f"waits for {dates} {held_back.BELOW}"
    lines = [f"Needed by the date(s) above (an earlier catalog snapshot or volume history), not asked for: {dates}"]
    for s in failed:
        fixes = [s.rerun_fix(held[0])] if s.rerun_fix and held else []
        what = "FAILED" if s.status == "FAILED" else f"published, but {held_back.holds(s, {})} in this run"
        lines.extend([f"{s.date}: {what}", *(f"    {f}" for f in [*s.failures, *fixes])])
    return lines


@command_line.settings_as_given()  # --run-summary-at-exit false, and what the summary reads, as the run had them
@read_once.scoped
def at_exit(pid: int) -> None:
    """Print the summary of this process's run (registered by pipeline.tasks for the `luigi` CLI)."""
    if os.getpid() != pid or not command_line.is_luigi_cli():
        return
    try:
        scheduled, noted = run_audit.scheduled_dates(), command_line.noted()
        if not run_summary().at_exit or cli_errors.command_rejected():
            return  # not wanted, or the command line was rejected (its one line said why): nothing ran
        if refused := command_line.lock_refusal():
            print(refused, file=sys.stdout, flush=True)  # Luigi's pid lock (exit 10): nothing ran, no table
            return
        if not scheduled and not (noted and noted[0]):
            # No task of a date was made: the command was rejected before anything was scheduled (a backfill of
            # published dates makes none either, but Luigi's scheduling noted the dates it asked for)
            return
        try:
            days, url, local = command_line.read(sys.argv[1:])
        except Exception:  # noqa: BLE001 - a command Luigi ran always parses; fall back all the same
            logger.debug("could not read the requested dates from the command line", exc_info=True)
            days, url, local = None, None, True
        summaries = summarise(scheduled if days is None else days, run_audit.run_id(), start_postgres=False,
                              local_scheduler=local)
        needed = _needed_failures(summaries, scheduled, local)
        notes = central.run_notes(summaries, scheduled, url, local) if url else []
        held_back.mark(summaries, HOLDING)
        late = late_catalogs.notes(s.date for s in summaries)  # earlier dates a snapshot this run landed came too late for
        again = held_back.backfill_again(sys.argv[1:], [s.status for s in summaries])
        print("\n".join([render(summaries, run_audit.run_id()), *needed, *notes, *late, *_ignored(), *again,
                         *command_line.left_out()]), flush=True)  # dates whose day is not over: after any rerun
    except Exception as err:  # noqa: BLE001 - never turn a finished run into a traceback
        if isinstance(err, config.BadSetting) or lake.store_refused(err):  # misconfigured, the lake's store refused:
            print(f"no run summary: {err}", file=sys.stderr, flush=True)  # the run said so already, once per task
        else:
            logger.exception("could not print the run summary")


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline summary`."""
    parser = cli.Parser(prog="python -m pipeline summary", description=__doc__.split("\n\n")[0])
    cli.add_date_options(parser, stop_help="last date, YYYY-MM-DD (exclusive, as for RangeDaily)")
    parser.add_argument("--run-id", help="only this run's task executions (outcomes and time)")
    args = parser.parse_args(argv)
    days = cli.dates(parser, args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    summaries = print_summary(days, args.run_id, messages=args.date is not None)  # one date: every check's why
    return 0 if all(s.status == "published" for s in summaries) else 1
