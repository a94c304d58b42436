"""The lost-database guard: a publish into a serving database that holds no published date while the lake's run audit
records dates published before is refused (ServingDatabaseLost), except by `rebuild-serving` (run ids `rebuild_...`),
which republishes them all: a publish would serve that one date alone.

Such a database was lost and re-created, or replaced, or it is not the one meant: a relative `ECOMM_PG_DATA` (or an
installed wheel's `[postgres] embedded_dir`) resolves against the current folder, so a run from another folder starts
a new, empty embedded server there. `rebuild-serving` would fill that one, so the refusal names the embedded server's
data folder and where its path came from, and when this process's start initialised it, says to check that first.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import psycopg

from pipeline import config, lake, resources
from pipeline.serving import embedded, pg
from pipeline.serving.facts import PublishError
from pipeline.serving.settings import postgres as postgres_settings


class ServingDatabaseLost(PublishError):
    """The serving database holds no published date but the lake records dates published before: it was re-created
    or replaced, and publishing one date into it would serve that date alone; `rebuild-serving` republishes them all."""


REBUILD_RUNS = "rebuild_"  # rebuild-serving's run ids (pipeline.tasks.rebuild): it publishes into an empty database
_TWIN = re.compile(r"load_date=(\d{4}-\d{2}-\d{2})/run_id=([A-Za-z0-9_]+)/")


def lake_published_dates(other_than: str) -> list[dt.date]:
    """The load dates a Publish task finished (`done`) in a run other than `other_than`, by the run audit's lake twin
    (lake/audit/pipeline_runs, written after the task's commit). Lists and reads the Publish twins: call it rarely."""
    pattern = os.path.join(lake.table_dir("audit", "pipeline_runs"), "load_date=*", "run_id=*", "task_id=Publish_*",
                           lake.DATA_FILE)
    found: set[dt.date] = set()
    for path in lake.files_matching(pattern):
        named = _TWIN.search(path.replace(os.sep, "/"))
        if named is None or named.group(2) == other_than or (day := dt.date.fromisoformat(named.group(1))) in found:
            continue
        rows = lake.read_rows(path, columns=["task_family", "status"])
        if any(row["task_family"] == "Publish" and row["status"] == "done" for row in rows):
            found.add(day)
    return sorted(found)


def refuse_lost_database(conn: psycopg.Connection, day: dt.date, run_id: str) -> None:
    """ServingDatabaseLost if audit.publish_log is empty and the lake records publishes of other runs.

    Called under the global publish lock, so every earlier publish into this database is committed and seen: a
    fresh deployment's backfill publishes its first date (no earlier publish in the lake), the others find it.
    The lake is read only when publish_log is empty (a database's first publish)."""
    if run_id.startswith(REBUILD_RUNS) or conn.execute("select exists (select from audit.publish_log)").fetchone()[0]:
        return
    if not (earlier := lake_published_dates(run_id)):
        return
    lake_says = (f"the lake at {config.lake_dir()} records {len(earlier)} published date(s)"
                 f" ({earlier[0]}..{earlier[-1]})")
    rebuild = (f"run `python -m pipeline rebuild-serving` (it republishes every gated date, {day} included if its gate"
               f" passed), then rerun; nothing of {day} was published")
    folder = _embedded_folder()
    if folder and embedded.data_dir() in embedded.initialised_here:  # first: a run summary shows 300 characters
        raise ServingDatabaseLost(
            f"{folder} was initialised empty by this run (database {conn.info.dbname} holds no published date), but"
            f" {lake_says}: check ECOMM_PG_DATA and the current folder first; if the dates were served from another"
            " data folder, stop this server (`python -m pipeline.serving.pg stop`), set ECOMM_PG_DATA to that folder's"
            f" absolute path and rerun; only if this is the folder meant (the old one was lost), {rebuild}")
    where, said = f"{conn.info.dbname} on {conn.info.host}:{conn.info.port}", f" ({folder})" if folder else ""
    raise ServingDatabaseLost(f"the serving database {where} holds no published date, but {lake_says}: it was"
                              f" re-created or replaced{said}; {rebuild}")


def _embedded_folder() -> str:
    """The embedded server's data folder and where its path came from ("": the pipeline uses another Postgres)."""
    if os.environ.get(pg.ENV_DSN, "").strip() or any(os.environ.get(name) for name in pg.LIBPQ_VARS):
        return ""
    raw = os.environ.get(embedded.ENV_DATA, "").strip()
    given = f"{embedded.ENV_DATA}={raw!r}" if raw else f"[postgres] embedded_dir = {postgres_settings().embedded_dir}"
    path = Path(raw or postgres_settings().embedded_dir).expanduser()
    by_folder = not path.is_absolute() and (raw or resources.work_dir() == Path.cwd())
    against = f", relative: resolved against the current folder {Path.cwd()}" if by_folder else ""
    return f"the embedded Postgres's data folder {embedded.data_dir()} ({given}{against})"
