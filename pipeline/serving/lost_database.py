"""The lost-database guard: a publish into a serving database that holds no published date while the lake's run audit
records dates published before is refused (ServingDatabaseLost), except by `rebuild-serving` (run ids `rebuild_...`),
which republishes them all: a publish would serve that one date alone.

Such a database was lost and re-created, or replaced, or it is not the one meant: a relative `ECOMM_PG_DATA` (or an
installed wheel's `[postgres] embedded_dir`) resolves against the current folder, so a run from another folder starts
a new, empty embedded server there. `rebuild-serving` would fill that one, so the refusal names the embedded server's
data folder and where its path came from, and when that path depends on the current folder (as it does in every run
from there, not only the one that made the folder), it says first to check it, and how to stop that server. The run
audit keeps the target each publish went to (pipeline.serving.serving_target): when the lake's latest publish went to
another one, the refusal names it and the settings that reach it, and the rebuild it offers takes --into-new-target.
"""
from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path

import psycopg

from pipeline import config, resources
from pipeline.serving import embedded, pg, serving_target
from pipeline.serving.facts import PublishError


class ServingDatabaseLost(PublishError):
    """The serving database holds no published date but the lake records dates published before: it was re-created
    or replaced, and publishing one date into it would serve that date alone; `rebuild-serving` republishes them all."""


REBUILD_RUNS = "rebuild_"  # rebuild-serving's run ids (pipeline.tasks.rebuild): it publishes into an empty database
INTO_NEW_TARGET = "--into-new-target"  # rebuild-serving's flag to fill another target than the lake's dates went to


def refuse_lost_database(conn: psycopg.Connection, day: dt.date, run_id: str) -> None:
    """ServingDatabaseLost if audit.publish_log is empty and the lake records publishes of other runs.

    Called under the global publish lock, so every earlier publish into this database is committed and seen: a
    fresh deployment's backfill publishes its first date (no earlier publish in the lake), the others find it.
    The lake is read only when publish_log is empty (a database's first publish)."""
    if run_id.startswith(REBUILD_RUNS) or conn.execute("select exists (select from audit.publish_log)").fetchone()[0]:
        return
    earlier = serving_target.lake_published(run_id)
    if earlier.dates:
        raise ServingDatabaseLost(refusal(conn.info.dbname, conn.info.host, conn.info.port, earlier.dates, day,
                                          earlier.target, serving_target.of_connection(conn)))


def refusal(database: str, host: str, port: int, earlier: list[dt.date], day: dt.date,
            published_to: serving_target.Target | None = None, here: serving_target.Target | None = None) -> str:
    """The refusal's line. When the embedded data folder's path depends on the current folder, what to check comes
    first and the path once after it: a run summary shows a message's first 300 characters, whatever the paths.
    `published_to`: the target the lake's latest publish went to (the run audit's), named with its settings when it
    is not this one (`here`, else the one of `database`, `host`, `port`); a rebuild into this one then takes
    --into-new-target."""
    here = here or serving_target.current(database, host, port)
    moved = published_to is not None and not serving_target.same(published_to, here)
    lake_says = (f"the lake at {config.lake_dir()} records {len(earlier)} published date(s)"
                 f" ({earlier[0]}..{earlier[-1]})")
    flag = f" {INTO_NEW_TARGET}" if moved else ""
    rebuild = (f"run `python -m pipeline rebuild-serving{flag}` (it republishes every gated date, {day} included if"
               f" its gate passed), then rerun; nothing of {day} was published")
    if moved:
        lake_says += f", last published to {serving_target.describe(published_to)}, not to this one"
        go_back = f"check that one with `{serving_target.reach(published_to)}`, then rerun with those settings"
    lost = f"the serving database {database} on {host}:{port} holds no published date, but {lake_says}"
    if not pg.uses_embedded():
        if moved:
            return f"{lost}: if that one is meant, {go_back}; only if it was lost, {rebuild}"
        return f"{lost}: it was re-created or replaced; {rebuild}"
    path, given, base = embedded.data_origin()
    stop_this = f"stop this server (`{stop_command(path)}`; until then BI tools on port {port} reach this empty one)"
    if moved and published_to.get("server") == "embedded" and published_to.get("data_folder") == str(
            Path(path).resolve()):
        stop_this = ""  # that database is on this same server: stopping it would cut BI off that one too
    then = f"{stop_this} and " if stop_this else ""
    if not by_current_folder(base):
        if moved:
            return (f"{lost} (the embedded Postgres's data folder {path}, {given}): if that one is meant, {then}"
                    f"{go_back}; only if it was lost, {rebuild}")
        return f"{lost}: it was re-created or replaced (the embedded Postgres's data folder {path}, {given}); {rebuild}"
    served = (f"the dates were served from that one, {then}{go_back}" if moved else
              f"the dates were served from another data folder, {stop_this}, set {embedded.ENV_DATA} to that folder's"
              " absolute path and rerun")
    return (f"the embedded Postgres's data folder is relative to the current folder: check {embedded.ENV_DATA} and the"
            f" current folder first; database {database} in {path} ({given}) holds no published date, but"
            f" {lake_says}; if {served}; only if this is the folder meant (the old one was lost), {rebuild}")


def stop_command(path: Path) -> str:
    """The command that stops the embedded server of data folder `path`, whatever the shell's own settings name."""
    return f"{embedded.ENV_DATA}={shlex.quote(str(path))} python -m pipeline.serving.pg stop"


def by_current_folder(base: Path | None) -> bool:
    """Whether a data folder path resolved against `base` (embedded.data_origin's) depends on the folder a run starts
    in: a relative ECOMM_PG_DATA run from another folder than the checkout, or an installed wheel's relative path
    (both resolved against the current folder). A checkout's relative embedded_dir resolves against the checkout."""
    return base is not None and (resources.INSTALLED or base != resources.REPO_ROOT)
