"""The lost-database guard: a publish into a serving database that holds no published date while the lake's run audit
records dates published before is refused (ServingDatabaseLost), except by `rebuild-serving` (run ids `rebuild_...`),
which republishes them all: a publish would serve that one date alone.

Such a database was lost and re-created, or replaced, or it is not the one meant: a relative `ECOMM_PG_DATA` (or an
installed wheel's `[postgres] embedded_dir`) resolves against the current folder, so a run from another folder starts
a new, empty embedded server there. `rebuild-serving` would fill that one, so the refusal names the embedded server's
data folder and where its path came from, and when that path depends on the current folder (as it does in every run
from there, not only the one that made the folder), it says first to check it, and how to stop that server.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shlex
from pathlib import Path

import psycopg

from pipeline import config, lake, resources
from pipeline.serving import embedded, pg
from pipeline.serving.facts import PublishError


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
    if earlier := lake_published_dates(run_id):
        raise ServingDatabaseLost(refusal(conn.info.dbname, conn.info.host, conn.info.port, earlier, day))


def refusal(database: str, host: str, port: int, earlier: list[dt.date], day: dt.date) -> str:
    """The refusal's line. When the embedded data folder's path depends on the current folder, what to check comes
    first and the path once after it: a run summary shows a message's first 300 characters, whatever the paths."""
    lake_says = (f"the lake at {config.lake_dir()} records {len(earlier)} published date(s)"
                 f" ({earlier[0]}..{earlier[-1]})")
    rebuild = (f"run `python -m pipeline rebuild-serving` (it republishes every gated date, {day} included if its gate"
               f" passed), then rerun; nothing of {day} was published")
    lost = f"the serving database {database} on {host}:{port} holds no published date, but {lake_says}"
    if not pg.uses_embedded():
        return f"{lost}: it was re-created or replaced; {rebuild}"
    path, given, base = embedded.data_origin()
    if not by_current_folder(base):
        return f"{lost}: it was re-created or replaced (the embedded Postgres's data folder {path}, {given}); {rebuild}"
    stop = f"{embedded.ENV_DATA}={shlex.quote(str(path))} python -m pipeline.serving.pg stop"
    return (f"the embedded Postgres's data folder is relative to the current folder: check {embedded.ENV_DATA} and the"
            f" current folder first; database {database} in {path} ({given}) holds no published date, but"
            f" {lake_says}; if the dates were served from another data folder, stop this server (`{stop}`; until then"
            f" BI tools on port {port} reach this empty one), set {embedded.ENV_DATA} to that folder's absolute path"
            f" and rerun; only if this is the folder meant (the old one was lost), {rebuild}")


def by_current_folder(base: Path | None) -> bool:
    """Whether a data folder path resolved against `base` (embedded.data_origin's) depends on the folder a run starts
    in: a relative ECOMM_PG_DATA run from another folder than the checkout, or an installed wheel's relative path
    (both resolved against the current folder). A checkout's relative embedded_dir resolves against the checkout."""
    return base is not None and (resources.INSTALLED or base != resources.REPO_ROOT)
