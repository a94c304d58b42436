"""Restating a date: land a corrected or completed incoming file again, on purpose, and publish the date again.

    python -m pipeline restate --date 2025-12-15                  # every source whose file changed
    python -m pipeline restate --date 2025-12-15 --source orders  # this source, changed or not

Raw partitions are immutable, so a file that changes after its date was landed is refused
(SourceChanged), before publish and after it. Restating replaces the date on purpose:

1. the new files are checked (folder rules, ready marker) and landed into a scratch lake before anything is
   touched: a file the landing refuses (cut off, unreadable) leaves the date as it was built and published;
2. the restatement is recorded as pending (`lake/audit/restatements/load_date=D/restatement.json`):
   while it is pending the date does not count as published, so an interrupted restatement is
   finished by `restate --date D` again (`unfinished`) or the next run of the date;
3. the date's derived partitions are removed: the restated sources' staging, quarantine and
   reconciliation partitions, every warehouse table and mart partition of the date, and the date's
   quality-gate results;
4. each restated source's raw partition (data and manifest) and its rejected records are moved to
   `lake/_archive/restated/load_date=D/restated_at=<UTC time>/` (kept, not lost);
5. the date's pipeline runs (Luigi, local scheduler): it lands the new files, rebuilds the date,
   runs the quality gate and publishes the date, replacing it in Postgres in one transaction (as
   with force: even a date that became empty is replaced); the publish marks the restatement done.

The exit code is the pipeline run's ([retcode] in luigi.cfg; 0 when the date is published again).
While a catalog snapshot covering the date changed too, the date's run would refuse it: `restate --date D` (with
`--source` or not) then refuses before step 1, exit 2 (`CatalogChangedToo`), naming `restate --catalog`, which
restates the changed daily files of the dates it feeds with the snapshot.
The dimensions follow: the users, products and days the date named before or names now are merged
again from every published date (`pipeline.serving.feeds.replay_keys`), so one only the old file
named goes from dim_user / dim_product / dim_date, and first/last dates only it gave fall back to
the other days'.

    python -m pipeline restate --catalog products --date 2025-12-15   # the snapshot of that date
    python -m pipeline restate --catalog users --catalog products --date 2025-12-15   # both of that date

restates a catalog snapshot, which is landed once under its own date and feeds later load dates:
a products snapshot gives every date from its own on its place in dim_product_history (each
date's partition holds the whole history), and the dates it covers (until the next snapshot)
their catalog (dim_product, the facts' is_known_product, the marts' categories); a users snapshot
gives the dates it covers their users' city and country. The same steps, for the snapshot and the
built dates it feeds: the snapshot file must be there, changed or not (from the API it is fetched
again; a file that arrived after the dates it covers were built and that no run has landed yet is
landed for the first time); each fed date gets a pending record; their warehouse, mart and gate
partitions and the snapshot's staging go; the snapshot's raw partition is archived under its own
date; every fed date's warehouse is built, then the dates run oldest first (each date's gate compares it
with the dates before it; see `run_catalog_dates`). The
exit code is the first failed date's. The other catalog's snapshot of the same date, when its file changed too
(or an interrupted restatement of both left it pending), is restated with the named one
(`restate_catalog.also_changed`); so are the daily files of the dates it feeds that changed since they were landed
(`restate_catalog.daily_changed`: checked and landed into the scratch lake with the snapshot, archived under their
own date).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from typing import Any

from pipeline import cli, config
from pipeline.ingest import catalog_api, incoming, landing
from pipeline.tasks import catalog_cover, gate_remedy, restate_catalog, restatements, runbook
from pipeline.tasks.restate_steps import NeverLanded, archive, pending_record, remove_derived, run_date, trial_land
from pipeline.tasks.restatements import is_pending, read_record, write_record

logger = logging.getLogger(__name__)


class NothingToRestate(Exception):
    """No source of the date changed since it was landed, and none was named."""


class CatalogNotDaily(Exception):
    """No daily source of the date changed, but a catalog snapshot covering it did: `--catalog` restates that."""


class CatalogChangedToo(CatalogNotDaily):
    """A catalog snapshot covering the date changed too: its restatement (`--catalog`) restates the date's files."""


def catalog_first(day: dt.date, kinds: list[str], chosen: list[str], changed: dict[str, str]) -> str:
    """CatalogChangedToo's message: what changed, and the commands that restate it all, the catalogs' first (each
    restates the changed daily files of the dates it feeds: `restate_catalog.daily_changed`)."""
    snapshots: dict[dt.date, list[str]] = {}
    for kind in kinds:
        snapshots.setdefault(catalog_cover.covering_snapshot(kind, day), []).append(kind)
    what = ", ".join(f"the {kind} snapshot of {snapshot} ({landing.catalog_file_change(kind, snapshot)})"
                     for snapshot, named in snapshots.items() for kind in named)
    again = [f"python -m pipeline restate {' '.join(f'--catalog {kind}' for kind in named)} --date {snapshot}"
             for snapshot, named in sorted(snapshots.items())]
    fed = any(day in restate_catalog.catalog_fed_dates(kind, snapshot) for snapshot, named in snapshots.items()
              for kind in named)  # built: else the date's own restatement lands its files, after the catalog's
    files = " and ".join(source for source in chosen if source in changed) if fed else ""
    left = [source for source in chosen if not (fed and source in changed)]  # named, unchanged: landed again anyway
    if left:
        again.append(f"python -m pipeline restate --date {day}" + "".join(f" --source {s}" for s in left))
    return (f"nothing was restated: a catalog snapshot covering {day} changed too, {what}, and the date's run would"
            f" refuse it; run {', then '.join(f'`{command}`' for command in again)}"
            + (f" (the catalog's restatement restates the dates it feeds, and {day}'s changed {files}"
               f" file{'s' if ' and ' in files else ''} with them)" if files else ""))


def prepare(day: dt.date, sources: list[str] | None = None) -> dict[str, Any]:
    """Steps 1-4: check the new files, record the restatement, remove what derives from the landed files, archive."""
    changed = landing.changed_sources(day)
    chosen = list(dict.fromkeys(sources or changed))
    if not chosen and all(landing.read_manifest(source, day) is None for source in incoming.DAILY_SOURCES):
        raise NeverLanded(f"{day} was never landed, so there is nothing to restate; run the date:"
                          f" `{runbook.daily_command(day)}`")
    if not chosen and (catalogs := catalog_cover.changed_catalogs(day)):
        raise CatalogNotDaily(f"the daily files of {day} are the ones landed; what changed is a catalog snapshot"
                              f" covering it, {' '.join(catalogs.values())}")
    if not chosen and (blocked := gate_remedy.blocked_by(day)):  # by its catalog: the snapshot is what to restate
        again = gate_remedy.restate_text(day, blocked)
        which = " and ".join(blocked) + (" catalogs, whose snapshots feed" if len(blocked) > 1
                                         else " catalog, whose snapshot feeds")
        raise CatalogNotDaily(f"nothing to restate for {day}: its incoming files are the ones landed, and its quality"
                              f" gate blocked it on the {which} it: once the catalog is fixed (the API's answer or"
                              f" the snapshot file), run {again}")
    if not chosen:
        raise NothingToRestate(f"nothing to restate for {day}: its incoming files are the ones landed"
                               f" (name a source with --source to land it again anyway)")
    if catalogs := catalog_cover.changed_catalogs(day):  # the date's run would refuse it: its restatement does both
        raise CatalogChangedToo(catalog_first(day, list(catalogs), chosen, changed))
    for source in chosen:
        if source not in incoming.DAILY_SOURCES:
            raise ValueError(f"--source {source!r}: only {', '.join(incoming.DAILY_SOURCES)} can be restated")
        incoming.require_ready(source, day)
        incoming.find(source, day)  # the new file passes the folder rules before anything moves
    # and the landing's: a file it refuses leaves the date as it is
    trial_land(day, chosen, f"the pending restatement of {day} stays pending" if is_pending(read_record(day))
               else f"{day} stays as it was landed")
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    record = pending_record(day, now)
    for source in chosen:
        record["sources"] = list(dict.fromkeys([*record["sources"], source]))
        if source in changed:
            record["reasons"][source] = changed[source]
        record["previous_manifests"].setdefault(source, landing.read_manifest(source, day))  # the one published
    write_record(day, record)
    # What derives from the old files goes first: interrupted before the archiving, the date still
    # has its old raw partition (a rerun refuses it as changed, and restate starts over); after
    # it, the next run lands the new file and rebuilds everything.
    removed = remove_derived(day, chosen)
    for source in chosen:
        record["archived"] += archive(day, source, stamp)
    write_record(day, record)
    logger.info("restating %s (%s): %d file(s) archived, %d derived partition file(s) removed", day,
                ", ".join(chosen), len(record["archived"]), removed)
    return record


def unfinished(day: dt.date, sources: list[str] | None) -> dict[str, Any] | None:
    """The date's pending restatement, when no source is named and no daily file changed since it was landed: one
    interrupted after it archived the date's files (or during its run), which step 5 finishes; None: none."""
    record = read_record(day)
    if sources or not is_pending(record) or landing.changed_sources(day):
        return None
    if not restatements.daily_sources(record):  # a catalog's: its other dates are run by its own command
        again = " and ".join(f"`{command}`" for command in restatements.commands(day, record))
        raise CatalogNotDaily(f"the pending restatement of {day} (requested at {record.get('requested_at')}) restates"
                              f" a catalog snapshot; run {again}")
    return record


def _left_to_luigi(record: logging.LogRecord) -> bool:
    """Root's handler leaves Luigi's lines to the handler Luigi gives its logger (each line printed once)."""
    return not (record.name == "luigi-interface" and logging.getLogger("luigi-interface").handlers)


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline restate`."""
    parser = cli.Parser(prog="python -m pipeline restate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--date", required=True, type=cli.load_date_arg,
                        help="the load date to restate, YYYY-MM-DD (with --catalog: the snapshot's date)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--source", action="append", choices=incoming.DAILY_SOURCES,
                       help="a source to land again (repeatable; default: every source whose file changed)")
    which.add_argument("--catalog", action="append", choices=incoming.CATALOG_SOURCES,
                       help="land this catalog's snapshot of --date again, and the dates it feeds (repeatable; the"
                            " other catalog's snapshot of that date is restated with it when its file changed too)")
    args = parser.parse_args(argv)
    day = args.date
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_left_to_luigi)
    if refused := _refused_setting():
        print(refused, file=sys.stderr)
        return 35  # [retcode] scheduling_error, as a run of the date would exit
    try:
        if args.catalog:
            return restate_catalog.restate_catalog(args.catalog, day)
        left = unfinished(day, args.source)  # an interrupted restatement of the date: its run finishes it
        record = left or prepare(day, args.source)
    except NothingToRestate as err:
        print(err)
        return 0
    except (NeverLanded, CatalogNotDaily) as err:  # CatalogChangedToo is one
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return cli.USAGE_ERROR
    except incoming.SourceNotReady as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 20  # [retcode] missing_data, as a run of the date would exit
    except (incoming.SourceFileMissing, incoming.SourceFileInvalid, catalog_api.CatalogApiError) as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 30  # [retcode] task_failed
    if left is not None:
        print(f"finishing the pending restatement of {day} (requested at {left.get('requested_at')}:"
              f" {', '.join(left.get('sources', []))})", flush=True)
    else:
        print(f"restating {day}: {', '.join(record['sources'])}; the landed files are archived"
              f" ({len(record['archived'])} file(s) under {os.path.join(config.lake_dir(), '_archive')})", flush=True)
    return _run(day)


def _refused_setting() -> str | None:
    """The one line for a setting the date's run would refuse (None: none), asked before any file is archived: the
    run found it after the archiving, and left the date pending."""
    from pipeline.tasks import publish  # noqa: PLC0415 - the tasks' own check, stated once

    try:
        publish.check_settings()
    except config.BadSetting as err:
        return str(err)
    return None


def _run(day: dt.date) -> int:
    """Step 5 and the run's summary; the run's exit code."""
    code = run_date(day)
    from pipeline.tasks import central, run_audit, summary

    # this run's outcome (the run ran in this process): not the failure that made the restatement necessary
    central.settle_published(summary.print_summary([day], run_audit.run_id(), start_postgres=False))
    if code:
        # a corrected file must be landed by a restatement (the failed run may have landed the one before):
        # restating again does both, and a run of the date finishes one whose fix is not a file
        print(f"the restatement of {day} is pending: fix what the run reports, then `python -m pipeline restate"
              f" --date {day}` again (or, when the fix is no new file, {runbook.daily_command(day)})", file=sys.stderr)
    return code
