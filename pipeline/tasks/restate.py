"""Restating a date: land a corrected or completed incoming file again, on purpose, and publish the date again.

    python -m pipeline restate --date 2025-12-15                  # every source whose file changed
    python -m pipeline restate --date 2025-12-15 --source orders  # this source, changed or not

Raw partitions are immutable, so a file that changes after its date was landed is refused
(SourceChanged), before publish and after it. Restating replaces the date on purpose:

1. the new files are checked (folder rules, ready marker) before anything is touched;
2. the restatement is recorded as pending (`lake/audit/restatements/load_date=D/restatement.json`):
   while it is pending the date does not count as published, so an interrupted restatement is
   finished by the next run of the date (`luigi ... DailyPipeline --date D`);
3. the date's derived partitions are removed: the restated sources' staging, quarantine and
   reconciliation partitions, every warehouse table and mart partition of the date, and the date's
   quality-gate results;
4. each restated source's raw partition (data and manifest) and its rejected records are moved to
   `lake/_archive/restated/load_date=D/restated_at=<UTC time>/` (kept, not lost);
5. the date's pipeline runs (Luigi, local scheduler): it lands the new files, rebuilds the date,
   runs the quality gate and publishes the date, replacing it in Postgres in one transaction (as
   with force: even a date that became empty is replaced); the publish marks the restatement done.

The exit code is the pipeline run's ([retcode] in luigi.cfg; 0 when the date is published again).
The dimensions follow: the users and products the date named before or names now are merged again
from every published date (`pipeline.serving.feeds.replay_keys`), so one only the old file named
goes from dim_user / dim_product, and first/last dates only it gave fall back to the other days'.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import sys
from typing import Any

from pipeline import cli, config, lake
from pipeline.ingest import incoming, landing
from pipeline.lake import s3
from pipeline.tasks import runbook

logger = logging.getLogger(__name__)

MARKER = lake.RESTATEMENT_FILE


class NothingToRestate(Exception):
    """No source of the date changed since it was landed, and none was named."""


class NeverLanded(Exception):
    """No daily source of the date was ever landed, and none was named: there is nothing to restate."""


def marker_path(day: dt.date) -> str:
    """The date's restatement record (pending until the date is published again)."""
    return os.path.join(lake.partition_dir("audit", "restatements", day), MARKER)


def _read(day: dt.date) -> dict[str, Any] | None:
    try:
        with lake.open_input(marker_path(day)) as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None


def pending(day: dt.date) -> bool:
    """Whether a restatement of the date waits for its publish."""
    record = _read(day)
    return record is not None and record.get("status") == "pending"


def pending_dates(days: list[dt.date]) -> set[dt.date]:
    """The dates among `days` with a pending restatement."""
    return {day for day in days if pending(day)}


def mark_published(day: dt.date) -> None:
    """Record that the date was published after its restatement (called by the Publish task)."""
    record = _read(day)
    if record is None or record.get("status") != "pending":
        return
    record.update(status="published", published_at=dt.datetime.now(dt.timezone.utc).isoformat())
    lake.write_atomic(marker_path(day), json.dumps(record, indent=2).encode())
    logger.info("restatement of %s published", day)


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


def _archive(day: dt.date, source: str, stamp: str) -> list[str]:
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


def _remove_derived(day: dt.date, sources: list[str]) -> int:
    """Remove the date's partitions built from the restated sources (they are rebuilt)."""
    from pipeline.transform import marts, warehouse

    folders = [lake.partition_dir("staging", f"stg_{s}", day) for s in sources]
    folders += [lake.partition_dir("audit", table, day, source_table=f"stg_{s}")
                for s in sources for table in ("bad_records", "reconciliation")]
    folders += [lake.partition_dir("warehouse", table, day) for table in warehouse.TABLES]
    folders += [lake.partition_dir(marts.LAYER, table, day) for table in marts.LOAD_DATE_MARTS]  # built from the facts
    folders.append(lake.partition_dir("audit", "dq_results", day))
    return sum(_remove_partition(folder) for folder in folders)


def prepare(day: dt.date, sources: list[str] | None = None) -> dict[str, Any]:
    """Steps 1-4: check the new files, record the restatement, remove what derives from the landed files, archive."""
    changed = landing.changed_sources(day)
    chosen = list(dict.fromkeys(sources or changed))
    if not chosen and all(landing.read_manifest(source, day) is None for source in incoming.DAILY_SOURCES):
        raise NeverLanded(f"{day} was never landed, so there is nothing to restate; run the date:"
                          f" `{runbook.daily_command(day)}`")
    if not chosen:
        raise NothingToRestate(f"nothing to restate for {day}: its incoming files are the ones landed"
                               f" (name a source with --source to land it again anyway)")
    for source in chosen:
        if source not in incoming.DAILY_SOURCES:
            raise ValueError(f"--source {source!r}: only {', '.join(incoming.DAILY_SOURCES)} can be restated")
        incoming.require_ready(source, day)
        incoming.find(source, day)  # the new file passes the folder rules before anything moves
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    previous = {source: landing.read_manifest(source, day) for source in chosen}
    record = {"load_date": day.isoformat(), "status": "pending", "sources": chosen, "reasons": changed,
              "requested_at": dt.datetime.now(dt.timezone.utc).isoformat(), "previous_manifests": previous,
              "archived": []}
    lake.write_atomic(marker_path(day), json.dumps(record, indent=2).encode())
    # What derives from the old files goes first: interrupted before the archiving, the date still
    # has its old raw partition (a rerun refuses it as changed, and restate starts over); after
    # it, the next run lands the new file and rebuilds everything.
    removed = _remove_derived(day, chosen)
    for source in chosen:
        record["archived"] += _archive(day, source, stamp)
    lake.write_atomic(marker_path(day), json.dumps(record, indent=2).encode())
    logger.info("restating %s (%s): %d file(s) archived, %d derived partition file(s) removed", day,
                ", ".join(chosen), len(record["archived"]), removed)
    return record


def run_date(day: dt.date) -> int:
    """Step 5: the date's pipeline through Luigi (local scheduler), with luigi.cfg's exit codes."""
    import luigi.retcodes

    try:
        luigi.retcodes.run_with_retcodes(["--module", "pipeline.tasks", "DailyPipeline", "--date", day.isoformat(),
                                          "--local-scheduler", "--no-lock"])
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline restate`."""
    parser = cli.Parser(prog="python -m pipeline restate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--date", required=True, type=cli.date_arg, help="the load date to restate, YYYY-MM-DD")
    parser.add_argument("--source", action="append", choices=incoming.DAILY_SOURCES,
                        help="a source to land again (repeatable; default: every source whose file changed)")
    args = parser.parse_args(argv)
    day = args.date
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        record = prepare(day, args.source)
    except NothingToRestate as err:
        print(err)
        return 0
    except NeverLanded as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return cli.USAGE_ERROR
    except incoming.SourceNotReady as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 20  # [retcode] missing_data, as a run of the date would exit
    except (incoming.SourceFileMissing, incoming.SourceFileInvalid) as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 30  # [retcode] task_failed
    print(f"restating {day}: {', '.join(record['sources'])}; the landed files are archived"
          f" ({len(record['archived'])} file(s) under {os.path.join(config.lake_dir(), '_archive')})")
    code = run_date(day)
    from pipeline.tasks import run_audit, summary

    # this run's outcome (the run ran in this process): not the failure that made the restatement necessary
    summary.print_summary([day], run_audit.run_id(), start_postgres=False)
    if code:
        print(f"the restatement of {day} is pending: fix what the run reports, then run the date again"
              f" ({runbook.daily_command(day)})", file=sys.stderr)
    return code
