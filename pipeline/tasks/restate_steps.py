"""The lake steps a restatement takes, for a date (`pipeline.tasks.restate`) and a catalog snapshot
(`pipeline.tasks.restate_catalog`): its record, removing what derives from the landed files, archiving them, and
running the date again. See `pipeline.tasks.restate` for the steps in order."""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from pipeline import config, lake
from pipeline.ingest import incoming
from pipeline.lake import pids, s3, spill
from pipeline.tasks.restatements import is_pending, read_record


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


SCRATCH = "ecomm-restate-"  # + the pid of the restate that lands there


def _clean_dead_scratch(folder: str) -> None:
    """Remove the scratch lakes of restates that no longer run (killed mid-trial: no cleanup ran)."""
    for name in os.listdir(folder):
        pid = re.match(rf"{SCRATCH}(\d+)-", name)
        if pid and not pids.process_alive(int(pid[1])):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def trial_land(day: dt.date, sources: list[str], untouched: str) -> None:
    """Land the new files (a catalog's snapshot of `day`: from its file, or fetched) into a scratch lake that is then
    removed: a file the landing refuses (cut off, unreadable) or an API that fails raises here, before the landed
    partitions are archived, so the date keeps what it was built from and published (`untouched` says what stays,
    after "nothing was restated: "). The run lands them again, and says what the landing found; the scratch lake
    is in the spill folder ([duckdb] temp_directory): on disk, where /tmp may be memory."""
    from pipeline.ingest import catalog_api, landing

    land = {"orders": landing.land_orders, "events": landing.land_events}
    before, said_by = os.environ.get("ECOMM_LAKE_DIR"), [logging.getLogger(f"pipeline.ingest.{name}")
                                                         for name in ("landing", "readers")]  # not the API's retries
    levels, spills = [logger.level for logger in said_by], spill.ready_folder()
    _clean_dead_scratch(spills)
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH}{os.getpid()}-", dir=spills) as scratch:
        os.environ["ECOMM_LAKE_DIR"] = scratch
        for logger in said_by:
            logger.setLevel(logging.ERROR)
        try:
            for source in sources:
                if source in land:
                    land[source](day)
                else:
                    landing.land_catalog(source, day)
        except (incoming.SourceFileInvalid, catalog_api.CatalogApiError) as err:
            said = re.sub(r"[;.]? nothing was landed\.?$", "", str(err))
            raise type(err)(f"{said}; nothing was restated: {untouched}") from None
        except Exception as err:
            err.add_note(f"nothing was restated: {untouched}")
            raise
        finally:
            for logger, level in zip(said_by, levels, strict=True):
                logger.setLevel(level)
            if before is None:
                del os.environ["ECOMM_LAKE_DIR"]
            else:
                os.environ["ECOMM_LAKE_DIR"] = before


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


def pending_record(day: dt.date, now: dt.datetime) -> dict[str, Any]:
    """The date's restatement record to extend: a pending one (a restatement its publish has not finished: what it
    restates, e.g. a catalog snapshot's audit rows, is published with this one), else a new one; requested now."""
    earlier = read_record(day)
    record = earlier if is_pending(earlier) else {
        "load_date": day.isoformat(), "status": "pending", "sources": [], "reasons": {}, "previous_manifests": {},
        "archived": []}
    record["requested_at"] = now.isoformat()
    return record


def run_date(day: dt.date, task: str = "DailyPipeline") -> int:
    """Step 5: the date's pipeline (or `task` of it) through Luigi (local scheduler), with luigi.cfg's exit codes."""
    import luigi.retcodes

    try:
        luigi.retcodes.run_with_retcodes(["--module", "pipeline.tasks", task, "--date", day.isoformat(),
                                          "--local-scheduler", "--no-lock"])
    except SystemExit as done:
        return int(done.code or 0)
    return 0
