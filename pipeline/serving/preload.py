"""Preloads: a date's fact partition copied and indexed in Postgres while the date's quality gate runs.

A preload commits on its own: the table waits in schema `preload`, which BI cannot read, until the
date's publish moves it into warehouse in the publish transaction (or drops it): nothing a reader
sees changes here. The publish takes a preload only if it was read from the lake file's current
version (`pipeline.serving.facts.take_preload`), and otherwise copies inline.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import psycopg

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.serving import migrations, pg
from pipeline.serving.facts import PRELOAD_SCHEMA, FactSpec, PublishError, drop_preloads, preload_name, register_preload
from pipeline.serving.lake_rows import LakePartitionMissing, fact_path, fact_spec, load_fact
from pipeline.serving.publish_errors import Progress
from pipeline.serving.transaction import begin_writing, date_locked, failure

logger = logging.getLogger(__name__)


def preload(lake_table: str, load_date: dt.date | str, *, attempts: int = 3) -> dict[str, Any]:
    """Copy and index a date's fact partition in Postgres ahead of its publish; return what was loaded.

    The lake file's version is read before its rows; if the file was replaced meanwhile (a
    concurrent run of the date rebuilding it: rebuilds are atomic renames, so the new file is
    whole), the copy is rolled back and read again from the new version, up to `attempts` times.
    """
    day = lake.parse_date(load_date)
    spec = fact_spec(lake_table)
    path = fact_path(spec.lake_table, day)
    for attempt in range(1, attempts + 1):
        loaded = _preload_once(spec, day, path)
        if loaded is not None:
            return loaded
        logger.warning("%s was replaced while it was preloaded (attempt %d of %d)", path, attempt, attempts)
    raise LakePartitionMissing(f"{path} was rebuilt or removed while it was preloaded, {attempts} times; run again")


def _preload_once(spec: FactSpec, day: dt.date, path: str) -> dict[str, Any] | None:
    """One preload attempt, committed; None (and nothing kept) if the lake file changed during it."""
    version = lake.file_version(path)  # before reading: a rebuild from here on makes this copy unusable
    if version is None:
        raise LakePartitionMissing(f"warehouse/{spec.lake_table} for {day} is gone ({path}); run the pipeline for {day}")
    progress = Progress()
    with sqlrun.connect() as duck, pg.connect() as conn:
        migrations.ensure_schema(conn)
        try:
            with conn.transaction() as tx:
                begin_writing(conn)
                loaded = load_fact(conn, duck, spec, day, path, progress, schema=PRELOAD_SCHEMA,
                                   table=preload_name(spec, day, uuid.uuid4().hex[:8]))
                if lake.file_version(path) != version:
                    raise psycopg.Rollback(tx)
                register_preload(conn, spec, day, loaded, path, version)
                return loaded
        except psycopg.Error as err:
            raise PublishError(failure(f"preloading {spec.lake_table} of {day}", err, progress, duck)) from err
    return None


def is_preloaded(lake_table: str, load_date: dt.date | str, *, current: bool = True) -> bool:
    """Whether Postgres holds a preload of the fact for the date.

    current=True: only one read from the lake file's current version counts (the one a publish
    would take); current=False: any (what the Luigi task checks, see `pipeline.tasks.publish.PreloadTask`).
    """
    day = lake.parse_date(load_date)
    spec = fact_spec(lake_table)
    path = lake.partition_file("warehouse", spec.lake_table, day)
    version = lake.file_version(path) if current else None
    if current and version is None:
        return False
    with pg.connect() as conn:
        if not conn.execute("select to_regclass('preload.fact_loads') is not null").fetchone()[0]:
            return False
        return conn.execute(
            """select exists (select 1 from preload.fact_loads
                              where fact_table = %(fact)s and load_date = %(day)s
                                  and (not %(current)s or (lake_file = %(file)s and lake_version = %(version)s))
                                  and to_regclass(format('preload.%%I', stage_table)) is not null)""",
            {"fact": spec.parent, "day": day, "current": current, "file": path, "version": version},
        ).fetchone()[0]


def discard_preloads(load_date: dt.date | str) -> int:
    """Drop the date's unused preloads (e.g. after another run published it); return how many."""
    day = lake.parse_date(load_date)
    with date_locked(day) as conn:
        return len(drop_preloads(conn, day))
