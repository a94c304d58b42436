"""Restating a date: land a corrected or completed incoming file again, on purpose, and publish the date again.

    python -m pipeline restate --date 2025-12-15                  # every source whose file changed
    python -m pipeline restate --date 2025-12-15 --source orders  # this source, changed or not

Raw partitions are immutable, so a file that changes after its date was landed is refused
(SourceChanged), before publish and after it. Restating replaces the date on purpose:

1. the new files are checked (folder rules, ready marker) before anything is touched;
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
The dimensions follow: the users, products and days the date named before or names now are merged
again from every published date (`pipeline.serving.feeds.replay_keys`), so one only the old file
named goes from dim_user / dim_product / dim_date, and first/last dates only it gave fall back to
the other days'.

    python -m pipeline restate --catalog products --date 2025-12-15   # the snapshot of that date

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
exit code is the first failed date's.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from typing import Any

from pipeline import cli, config, lake
from pipeline.ingest import incoming, landing
from pipeline.ingest.catalog_http import redact_url
from pipeline.lake import s3
from pipeline.tasks import restatements, runbook
from pipeline.tasks.restatements import is_pending, read_record, write_record

logger = logging.getLogger(__name__)

class NothingToRestate(Exception):
    """No source of the date changed since it was landed, and none was named."""


class CatalogNotDaily(Exception):
    """No daily source of the date changed, but a catalog snapshot covering it did: `--catalog` restates that."""


class NeverLanded(Exception):
    """No daily source of the date was ever landed, and none was named: there is nothing to restate."""


def _move(source: str, target: str) -> None:
    if s3.is_remote(source):
        s3.move(source, target)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(source, target)


def _partition_files(folder: str) -> list[str]:
    return lake.files_matching(os.path.join(folder, "*"))


def _remove_partition(folder: str) -> int:
    files = _partition_files(folder)
    for path in files:
        lake.remove(path)
    if not s3.is_remote(folder):
        shutil.rmtree(folder, ignore_errors=True)
    return len(files)


def archive(day: dt.date, source: str, stamp: str) -> list[str]:
    """Move a source's raw partition and rejected records of the date under lake/_archive; return the targets."""
    root = os.path.join(config.lake_dir(), "_archive", "restated", f"load_date={day}", f"restated_at={stamp}")
    moved = []
    folders = {("raw", source): lake.partition_dir("raw", source, day),
               ("audit", "rejected_lines", f"source_table={source}"):
                   lake.partition_dir("audit", "rejected_lines", day, source_table=source)}
    for parts, folder in folders.items():
        for path in _partition_files(folder):
            target = os.path.join(root, *parts, os.path.basename(path))
            _move(path, target)
            moved.append(target)
        if not s3.is_remote(folder):
            shutil.rmtree(folder, ignore_errors=True)
    return moved


def remove_derived(day: dt.date, sources: list[str]) -> int:
    """Remove the date's partitions built from the restated sources (they are rebuilt), under the date's publish lock
    (`_publishes_waited`): a publish of the date reading them ends first, and one after it finds its build gone.
    The quality gate's results go first: a run's Publish that finds them gone, or older than the restatement,
    publishes nothing (`restatements.superseded`)."""
    from pipeline.transform import marts, warehouse

    folders = [lake.partition_dir("audit", "dq_results", day)]
    folders += [lake.partition_dir("staging", f"stg_{s}", day) for s in sources]
    folders += [lake.partition_dir("audit", table, day, source_table=f"stg_{s}")
                for s in sources for table in ("bad_records", "reconciliation")]
    folders += [lake.partition_dir("warehouse", table, day) for table in warehouse.TABLES]
    folders += [lake.partition_dir(marts.LAYER, table, day) for table in marts.LOAD_DATE_MARTS]  # built from the facts
    with _publishes_waited(day):
        return sum(_remove_partition(folder) for folder in folders)


@contextlib.contextmanager
def _publishes_waited(day: dt.date) -> Iterator[None]:
    """The date's publish lock held (a publish of the date in flight ends first), or nothing when no Postgres answers
    (no publish runs then either)."""
    from pipeline.serving import retry as pg_retry
    from pipeline.serving import transaction

    with contextlib.ExitStack() as held:
        pg_retry.unless_unreachable(lambda: held.enter_context(transaction.date_locked(day)), None,
                                    f"the restatement of {day} waits for no publish")
        yield


def prepare(day: dt.date, sources: list[str] | None = None) -> dict[str, Any]:
    """Steps 1-4: check the new files, record the restatement, remove what derives from the landed files, archive."""
    changed = landing.changed_sources(day)
    chosen = list(dict.fromkeys(sources or changed))
    if not chosen and all(landing.read_manifest(source, day) is None for source in incoming.DAILY_SOURCES):
        raise NeverLanded(f"{day} was never landed, so there is nothing to restate; run the date:"
                          f" `{runbook.daily_command(day)}`")
    if not chosen and (catalogs := landing.changed_catalogs(day)):
        raise CatalogNotDaily(f"the daily files of {day} are the ones landed; what changed is a catalog snapshot"
                              f" covering it, {' '.join(catalogs.values())}")
    if not chosen:
        raise NothingToRestate(f"nothing to restate for {day}: its incoming files are the ones landed"
                               f" (name a source with --source to land it again anyway)")
    for source in chosen:
        if source not in incoming.DAILY_SOURCES:
            raise ValueError(f"--source {source!r}: only {', '.join(incoming.DAILY_SOURCES)} can be restated")
        incoming.require_ready(source, day)
        incoming.find(source, day)  # the new file passes the folder rules before anything moves
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    record = _pending_record(day, now)
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


def _pending_record(day: dt.date, now: dt.datetime) -> dict[str, Any]:
    """The date's restatement record to extend: a pending one (a restatement its publish has not finished: what it
    restates, e.g. a catalog snapshot's audit rows, is published with this one), else a new one; requested now."""
    earlier = read_record(day)
    record = earlier if is_pending(earlier) else {
        "load_date": day.isoformat(), "status": "pending", "sources": [], "reasons": {}, "previous_manifests": {},
        "archived": []}
    record["requested_at"] = now.isoformat()
    return record


def catalog_fed_dates(kind: str, snapshot: dt.date) -> list[dt.date]:
    """The built load dates (any warehouse partition) that the snapshot feeds, oldest first."""
    from pipeline.transform import warehouse

    built = sorted({day for table in warehouse.TABLES for day in warehouse.partition_dates("warehouse", table)
                    if day >= snapshot})
    if kind == "products":  # dim_product_history: every later date's partition holds the snapshot's versions
        return built
    return [day for day in built if landing.covering_snapshot(kind, day) == snapshot]


def _catalog_reason(kind: str, snapshot: dt.date, manifest: dict[str, Any] | None) -> str:
    """Why the snapshot is landed again: named, it is restated changed or not (as `--source` is).

    Unchanged, it still rebuilds the dates it feeds: e.g. dates built before the snapshot's file
    arrived, which kept the catalog of the snapshot before it. Such a file may not be landed yet (no
    run of a date it covers has come since): then it is landed here for the first time.
    """
    url = landing.catalog_url(kind)
    if url:
        return f"the {kind} snapshot of {snapshot} is fetched again from {redact_url(url)}"
    found = landing.catalog_file(kind, snapshot)
    if found is None or found[1] != snapshot:
        raise incoming.SourceFileMissing(
            f"no {kind}_{snapshot}.json (or .json.gz, .json.zst) under {config.data_dir()}/{kind}: a catalog is"
            f" restated by the date in its snapshot file's name, and that file must be there")
    if manifest is None:
        return f"{found[0]} arrived after dates it covers were built; landed for the first time"
    return landing.file_drift(manifest, found[0]) or f"named on the command line ({found[0]} is the file landed)"


def prepare_catalog(kind: str, snapshot: dt.date) -> dict[str, Any]:
    """A catalog snapshot's steps 1-4 (module doc); returns {"dates": the dates to run, "archived": the files archived}."""
    from pipeline.transform import warehouse

    manifest = landing.read_manifest(kind, snapshot)
    found = None if landing.catalog_url(kind) else landing.catalog_file(kind, snapshot)
    late_file = found is not None and found[1] == snapshot  # a file no run has landed yet: it lands here
    # an interrupted restatement of it (the snapshot archived, the dates' builds removed): finished here
    pending = restatements.pending_for_snapshot(kind, snapshot)
    if manifest is None and not pending and not (late_file and catalog_fed_dates(kind, snapshot)):
        landed = sorted(warehouse.partition_dates("raw", kind))
        raise NeverLanded(
            f"no {kind} snapshot of {snapshot} was landed, so there is nothing to restate"
            f" (landed {kind} snapshots: {', '.join(map(str, landed)) or 'none'})")
    reason = _catalog_reason(kind, snapshot, manifest)
    dates = sorted({*catalog_fed_dates(kind, snapshot), *pending})
    now = dt.datetime.now(dt.timezone.utc)
    records = {}
    for day in dates:
        record = _pending_record(day, now)
        record["sources"] = list(dict.fromkeys([*record["sources"], kind]))
        record.setdefault("snapshots", {})[kind] = snapshot.isoformat()  # its audit rows are published again
        if manifest is not None or day not in pending:  # else: the interrupted one's why and manifest stay
            record["reasons"][kind] = reason
            record["previous_manifests"][kind] = manifest
        records[day] = record
        write_record(day, record)
    # what derives from the old snapshot goes first (see restate.prepare), then the snapshot itself
    removed = remove_derived(snapshot, [kind])
    removed += sum(remove_derived(day, []) for day in dates)
    archived = archive(snapshot, kind, now.strftime("%Y%m%dT%H%M%S%fZ"))
    for day, record in records.items():
        record["archived"] = list(dict.fromkeys([*record["archived"], *archived]))
        write_record(day, record)
    logger.info("restating the %s snapshot of %s for %d date(s): %d file(s) archived, %d derived partition"
                " file(s) removed", kind, snapshot, len(dates), len(archived), removed)
    return {"dates": dates, "archived": archived}


def run_catalog_dates(kind: str, snapshot: dt.date, dates: list[dt.date]) -> int:
    """A catalog's step 5: every date's warehouse partitions, then each date's pipeline, oldest first; the first
    failed run's exit code (0: all published).

    The warehouse first: a date's publish merges the dimension rows its earlier version gave again from every
    published date's partition, and leaves them as merged while one of those is missing (here, a later date's, until
    its own run). Rows only an earlier date's withdrawn snapshot gave (a user it dropped, a city it blanked) then
    stayed in Postgres, while the lake and `rebuild-serving` no longer had them.
    """
    failed = 0
    for day in dates:
        code = run_date(day, "BuildWarehouse")
        logger.info("%s (restating the %s snapshot of %s): warehouse built, exit %d", day, kind, snapshot, code)
        failed = failed or code
    for day in dates:
        code = run_date(day)
        logger.info("%s (restating the %s snapshot of %s): exit %d", day, kind, snapshot, code)
        failed = failed or code
    return failed


def run_date(day: dt.date, task: str = "DailyPipeline") -> int:
    """Step 5: the date's pipeline (or `task` of it) through Luigi (local scheduler), with luigi.cfg's exit codes."""
    import luigi.retcodes

    try:
        luigi.retcodes.run_with_retcodes(["--module", "pipeline.tasks", task, "--date", day.isoformat(),
                                          "--local-scheduler", "--no-lock"])
    except SystemExit as done:
        return int(done.code or 0)
    return 0


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
    which.add_argument("--catalog", choices=incoming.CATALOG_SOURCES,
                       help="land this catalog's snapshot of --date again, and the dates it feeds")
    args = parser.parse_args(argv)
    day = args.date
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_left_to_luigi)
    try:
        if args.catalog:
            return _restate_catalog(args.catalog, day)
        left = unfinished(day, args.source)  # an interrupted restatement of the date: its run finishes it
        record = left or prepare(day, args.source)
    except NothingToRestate as err:
        print(err)
        return 0
    except (NeverLanded, CatalogNotDaily) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return cli.USAGE_ERROR
    except incoming.SourceNotReady as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 20  # [retcode] missing_data, as a run of the date would exit
    except (incoming.SourceFileMissing, incoming.SourceFileInvalid) as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 30  # [retcode] task_failed
    if left is not None:
        print(f"finishing the pending restatement of {day} (requested at {left.get('requested_at')}:"
              f" {', '.join(left.get('sources', []))})", flush=True)
    else:
        print(f"restating {day}: {', '.join(record['sources'])}; the landed files are archived"
              f" ({len(record['archived'])} file(s) under {os.path.join(config.lake_dir(), '_archive')})", flush=True)
    return _run(day)


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


def _restate_catalog(kind: str, snapshot: dt.date) -> int:
    """`restate --catalog KIND --date S`; its errors are main's."""
    from pipeline.tasks import central, run_audit, summary

    prepared = prepare_catalog(kind, snapshot)
    dates = prepared["dates"]
    print(f"restating the {kind} snapshot of {snapshot}: {len(prepared['archived'])} landed file(s) archived"
          f" under {os.path.join(config.lake_dir(), '_archive')}; the dates it feeds:"
          f" {', '.join(map(str, dates)) or 'none built yet (the next run of a date lands the new snapshot)'}")
    code = run_catalog_dates(kind, snapshot, dates)
    summaries = summary.print_summary(dates, run_audit.run_id(), start_postgres=False) if dates else []
    if summaries:  # luigid (when luigi.cfg's answers) shows the dates published here done, as after a `luigi` run
        central.settle_published(summaries)
    if code:
        pending = [s.date for s in summaries if s.status != "published"] or dates
        print(f"the restatement of the {kind} snapshot of {snapshot} is pending for {', '.join(map(str, pending))}:"
              f" do what each row above says, then run it again ({runbook.daily_command(pending[0])}; a date"
              " published with a threshold option, e.g. --checks-orders-volume-fail-low-ratio 0, needs it again)",
              file=sys.stderr)
    return code
