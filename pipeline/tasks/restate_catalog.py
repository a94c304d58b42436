"""Restating a catalog snapshot: `python -m pipeline restate --catalog KIND --date S` (see `pipeline.tasks.restate`
for what it does and in which order)."""
from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from typing import Any

from pipeline import config
from pipeline.ingest import incoming, landing
from pipeline.ingest.catalog_http import redact_url
from pipeline.tasks import restatements, runbook
from pipeline.tasks.catalog_cover import covering_snapshot
from pipeline.tasks.restate_steps import NeverLanded, archive, pending_record, remove_derived, run_date, trial_land
from pipeline.tasks.restatements import write_record

logger = logging.getLogger(__name__)


class LandedFromFile(NeverLanded):
    """A snapshot landed from a file, named while its catalog comes from the API: it is restated from its file."""


def catalog_fed_dates(kind: str, snapshot: dt.date) -> list[dt.date]:
    """The built load dates (any warehouse partition) that the snapshot feeds, oldest first."""
    from pipeline.transform import warehouse

    built = sorted({day for table in warehouse.TABLES for day in warehouse.partition_dates("warehouse", table)
                    if day >= snapshot})
    if kind == "products":  # dim_product_history: every later date's partition holds the snapshot's versions
        return built
    return [day for day in built if covering_snapshot(kind, day) == snapshot]


def _catalog_reason(kind: str, snapshot: dt.date, manifest: dict[str, Any] | None) -> str:
    """Why the snapshot is landed again: named, it is restated changed or not (as `--source` is).

    Unchanged, it still rebuilds the dates it feeds: e.g. dates built before the snapshot's file
    arrived, which kept the catalog of the snapshot before it. Such a file may not be landed yet (no
    run of a date it covers has come since): then it is landed here for the first time.
    """
    url = landing.catalog_url(kind)
    if url and manifest is not None and not landing.from_api(manifest):
        raise LandedFromFile(
            f"the {kind} snapshot of {snapshot} was landed from {manifest['source_file']}, before {kind} came from"
            f" the API: fetched again, today's catalog would replace that week's. To land its file again, run this"
            f" command with ECOMM_{kind.upper()}_URL unset and [catalog] {kind}_url empty (e.g. in a file named by"
            f" LUIGI_CONFIG_PATH for that command only)")
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


def snapshots_named(kinds: list[str]) -> str:
    """"the users snapshot", "the users and products snapshots": what a restatement of `kinds` restates."""
    return f"the {' and '.join(kinds)} snapshot" + ("s" if len(kinds) > 1 else "")


def also_changed(kinds: list[str], snapshot: dt.date) -> dict[str, str]:
    """The other catalogs whose snapshot of the same date is to be restated too: kind -> why. Its landed file changed
    since (the runs of the dates it feeds would refuse the change, SourceChanged, and leave the restatement pending,
    as `restate --date D` restates every daily source whose file changed), or an interrupted restatement of both
    snapshots left it pending (its landed snapshot archived already)."""
    found = {}
    for kind in incoming.CATALOG_SOURCES:
        if kind in kinds:
            continue
        how = landing.catalog_file_change(kind, snapshot)
        if how is not None:
            found[kind] = f"changed too ({how})"
        elif pending := restatements.pending_for_snapshot(kind, snapshot):
            found[kind] = f"is pending too (an interrupted restatement, for {', '.join(map(str, pending))})"
    return found


def _checked(kind: str, snapshot: dt.date) -> tuple[dict[str, Any] | None, list[dt.date], str]:
    """Step 1's checks of a catalog's snapshot: (its manifest, its pending restatement's dates, why it is restated)."""
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
    return manifest, pending, _catalog_reason(kind, snapshot, manifest)


def daily_changed(dates: list[dt.date]) -> dict[dt.date, dict[str, str]]:
    """The fed dates' daily sources whose files changed since they were landed: date -> {source: why}. They are
    restated with the snapshot, as the other catalog's changed snapshot is (`also_changed`): the dates' runs would
    refuse them (SourceChanged), and `restate --date D` refuses while the snapshot covering D changed."""
    return {day: changed for day in dates if (changed := landing.changed_sources(day))}


def prepare_catalog(kinds: list[str], snapshot: dt.date) -> dict[str, Any]:
    """The catalogs' snapshots' steps 1-4 (module doc), every snapshot's and changed daily file's checks and trial
    landing before anything moves; returns {"dates": the dates to run, "archived": the files archived, "daily":
    `daily_changed` of the dates}."""
    checked = {kind: _checked(kind, snapshot) for kind in kinds}
    fed = {kind: {*catalog_fed_dates(kind, snapshot), *pending} for kind, (_, pending, _) in checked.items()}
    dates = sorted(set().union(*fed.values()))
    daily = daily_changed(dates)
    # a snapshot (or a daily file) the landing refuses leaves the dates they feed as they are
    untouched = (f"the pending restatement of {snapshots_named(kinds)} of {snapshot} stays pending"
                 if any(pending for _, pending, _ in checked.values())
                 else f"{snapshots_named(kinds)} of {snapshot} "
                 + ("stay as they were landed" if len(kinds) > 1 else "stays as it was landed"))
    trial_land(snapshot, kinds, untouched)
    for day, changed in daily.items():
        trial_land(day, list(changed), untouched)
    now = dt.datetime.now(dt.timezone.utc)
    records = {}
    for day in dates:
        record = pending_record(day, now)
        for kind, (manifest, pending, reason) in checked.items():
            if day not in fed[kind]:
                continue
            record["sources"] = list(dict.fromkeys([*record["sources"], kind]))
            record.setdefault("snapshots", {})[kind] = snapshot.isoformat()  # its audit rows are published again
            if manifest is not None or day not in pending:  # else: the interrupted one's why and manifest stay
                record["reasons"][kind] = reason
                record["previous_manifests"][kind] = manifest
        for source, reason in daily.get(day, {}).items():  # as restate.prepare records a daily source
            record["sources"] = list(dict.fromkeys([*record["sources"], source]))
            record["reasons"][source] = reason
            record["previous_manifests"].setdefault(source, landing.read_manifest(source, day))
        records[day] = record
        write_record(day, record)
    # what derives from the old snapshot (and the changed daily files) goes first (see restate.prepare), then they
    removed = remove_derived(snapshot, kinds)
    removed += sum(remove_derived(day, list(daily.get(day, {}))) for day in dates)
    stamp, archived_daily = now.strftime("%Y%m%dT%H%M%S%fZ"), []
    archived = [path for kind in kinds for path in archive(snapshot, kind, stamp)]
    for day, record in records.items():
        own = [path for source in daily.get(day, {}) for path in archive(day, source, stamp)]
        record["archived"] = list(dict.fromkeys([*record["archived"], *archived, *own]))
        archived_daily += own
        write_record(day, record)
    logger.info("restating %s of %s for %d date(s): %d file(s) archived, %d derived partition file(s) removed",
                snapshots_named(kinds), snapshot, len(dates), len(archived) + len(archived_daily), removed)
    return {"dates": dates, "archived": archived + archived_daily, "daily": daily}


def run_catalog_dates(restated: str, dates: list[dt.date]) -> int:
    """A catalog's step 5: every date's warehouse partitions, then each date's pipeline, oldest first; the first
    failed run's exit code (0: all published). `restated`: what is restated, for the log ("the users snapshot of S").

    The warehouse first: a date's publish merges the dimension rows its earlier version gave again from every
    published date's partition, and leaves them as merged while one of those is missing (here, a later date's, until
    its own run). Rows only an earlier date's withdrawn snapshot gave (a user it dropped, a city it blanked) then
    stayed in Postgres, while the lake and `rebuild-serving` no longer had them.
    """
    failed = 0
    for day in dates:
        code = run_date(day, "BuildWarehouse")
        logger.info("%s (restating %s): warehouse built, exit %d", day, restated, code)
        failed = failed or code
    for day in dates:
        code = run_date(day)
        logger.info("%s (restating %s): exit %d", day, restated, code)
        failed = failed or code
    return failed


def restate_catalog(named: list[str], snapshot: dt.date) -> int:
    """`restate --catalog KIND [--catalog KIND] --date S`; its errors are `restate.main`'s."""
    from pipeline.tasks import central, run_audit, summary

    kinds = list(dict.fromkeys(named))
    for kind, how in also_changed(kinds, snapshot).items():
        print(f"the {kind} snapshot of {snapshot} {how}: restated with it", flush=True)
        kinds.append(kind)
    prepared = prepare_catalog(kinds, snapshot)
    for day, changed in prepared["daily"].items():
        for source, why in changed.items():
            print(f"{source} of {day}, a date {'they' if len(kinds) > 1 else 'it'} feed{'' if len(kinds) > 1 else 's'},"
                  f" changed too ({why}): restated with it", flush=True)
    dates, restated = prepared["dates"], f"{snapshots_named(kinds)} of {snapshot}"
    print(f"restating {restated}: {len(prepared['archived'])} landed file(s) archived under"
          f" {os.path.join(config.lake_dir(), '_archive')}; the dates {'they' if len(kinds) > 1 else 'it'} feed"
          f"{'' if len(kinds) > 1 else 's'}:"
          f" {', '.join(map(str, dates)) or 'none built yet: the next run of a date it covers lands the new snapshot'}"
          + ("" if dates else f" (`{runbook.daily_command(snapshot)}`)"), flush=True)
    code = run_catalog_dates(restated, dates)
    summaries = summary.print_summary(dates, run_audit.run_id(), start_postgres=False) if dates else []
    if summaries:  # luigid (when luigi.cfg's answers) shows the dates published here done, as after a `luigi` run
        central.settle_published(summaries)
    if code:
        pending = [s.date for s in summaries if s.status != "published"] or dates
        print(f"the restatement of {restated} is pending for {', '.join(map(str, pending))}:"
              f" do what each row above says, then run it again ({runbook.daily_command(pending[0])}; a date"
              " published with a threshold option, e.g. --checks-orders-volume-fail-low-ratio 0, needs it again)",
              file=sys.stderr)
    return code
