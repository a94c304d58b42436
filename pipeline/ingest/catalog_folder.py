"""A catalog's incoming folder: its snapshot files by date (`<data_dir>/<kind>/<kind>_YYYY-MM-DD.json`, optionally
.gz or .zst), and the files there that are not read as snapshots. `pipeline.ingest.landing` lands them.

A file evidently meant as a snapshot but misnamed (`users_2025-12-15.JSON`, `users_2025-12-15 (1).json`: `meant_as`)
is not read either, and refuses the dates it would cover (`catalog_file`), naming the name to give it, as a misnamed
daily file refuses its date (`pipeline.ingest.incoming.find`): ignored, it left them built without that catalog."""
from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import re

from pipeline import config, read_once
from pipeline.ingest import incoming

logger = logging.getLogger(__name__)

_warned_names: set[str] = set()


def catalog_files(kind: str) -> dict[dt.date, list[str]]:
    """The incoming snapshot files of a catalog by their date: `<kind>/<kind>_YYYY-MM-DD.json`, optionally .gz or .zst.

    Only files directly in `<data_dir>/<kind>/` with such a name are ever read. Anything else there (a
    `.bak`, another name, an impossible date, a sub-folder) is logged as ignored, once per process, and
    named under the run summary (`ignored_catalog_files`), never passed over in silence: a snapshot
    delivered under a name nobody reads would leave every date it covers built from the week before.
    """
    found, ignored = _catalog_folder(kind)
    for path, why in ignored.items():
        if path not in _warned_names:
            _warned_names.add(path)
            logger.warning("ignoring %s: %s", path, why)
    return found


def ignored_catalog_files(kind: str) -> dict[str, str]:
    """The files in `<data_dir>/<kind>/` that are not read as its snapshots: path -> why."""
    return _catalog_folder(kind)[1]


def _catalog_folder(kind: str) -> tuple[dict[dt.date, list[str]], dict[str, str]]:
    """The folder's snapshot files by date, and the files ignored; listed once in a `read_once.scope`."""
    found, ignored = read_once.once(("catalog folder", kind), lambda: _list_catalog_folder(kind))
    return {day: list(paths) for day, paths in found.items()}, dict(ignored)


def _list_catalog_folder(kind: str) -> tuple[dict[dt.date, list[str]], dict[str, str]]:
    folder = os.path.join(config.data_dir(), kind)
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return {}, {}
    found: dict[dt.date, list[str]] = {}
    ignored: dict[str, str] = {}
    for name in names:
        path = os.path.join(folder, name)
        match = _snapshot_name(kind).fullmatch(name)
        try:
            day = dt.date.fromisoformat(match.group(1)) if match else None
        except ValueError:
            day, why = None, f"{match.group(1)} is not a calendar date"
        else:
            why = f"not a {kind} snapshot name ({kind}_YYYY-MM-DD.json, optionally ending in .gz or .zst)"
            if (meant := meant_as(kind, name)) and meant[1] in names:  # renamed, it would overwrite the snapshot
                why += f": a second copy of {meant[1]}"
            elif meant:
                why += f": rename it to {meant[1]} to have it read"
        if day is None:
            ignored[path] = why
        else:
            found.setdefault(day, []).append(path)
    return found, ignored


# what a download or a file manager adds to a copy's name: spaces only (a newline or a tab in a name is no copy's)
_COPY = r"[ ]*(?:-[ ]*)?(?:copy\b[ ]*)?(?:\(\d+\))?"


@functools.cache
def _snapshot_name(kind: str, misnamed: bool = False) -> re.Pattern[str]:
    """A snapshot's file name (`<kind>_YYYY-MM-DD.json`, optionally .gz or .zst: group 1 the date); `misnamed`: also
    in other letter cases and with a copy's suffix (group 2 the suffix, group 3 the compression's)."""
    suffixes = "|".join(re.escape(suffix) for suffix in incoming.COMPRESSED_SUFFIXES)
    if misnamed:
        return re.compile(rf"{kind}_(\d{{4}}-\d{{2}}-\d{{2}})({_COPY})?\.json((?:{suffixes})?)", re.IGNORECASE)
    return re.compile(rf"{kind}_(\d{{4}}-\d{{2}}-\d{{2}})\.json(?:{suffixes})?")


def meant_as(kind: str, name: str) -> tuple[dt.date, str] | None:
    """(its date, the name it would be read under) of a file evidently meant as a snapshot but misnamed: the
    snapshot's name in other letter cases (`users_2025-12-15.JSON`), or with a copy's suffix (`users_2025-12-15
    (1).json`, `... - Copy.json`); None: not one (or not a calendar date)."""
    match = _snapshot_name(kind, misnamed=True).fullmatch(name)
    try:
        day = dt.date.fromisoformat(match.group(1)) if match else None
    except ValueError:
        return None
    accepted = f"{kind}_{match.group(1)}.json{match.group(3).lower()}" if match else ""
    return (day, accepted) if day is not None and accepted != name else None


def catalog_file(kind: str, load_date: dt.date) -> tuple[str, dt.date] | None:
    """The latest `<kind>/<kind>_YYYY-MM-DD.json` (or .json.gz, .json.zst) on or before the date, with its date.

    Two files of that date (`products_D.json` beside `products_D.json.gz`) are refused, as two files
    in a daily folder are: which one is the snapshot is not for the pipeline to guess. So is a misnamed
    snapshot (`meant_as`) that would be the date's, the latest on or before it: not passed over for the one
    before it, as a misnamed daily file is not.
    """
    files = catalog_files(kind)
    days = [day for day in files if day <= load_date]
    _refuse_misnamed(kind, load_date, max(days) if days else None)
    if not days:
        return None
    day = max(days)
    paths = files[day]
    if len(paths) > 1:
        raise incoming.UnexpectedSourceFiles(
            f"{kind} snapshot {day}: {len(paths)} files ({', '.join(os.path.basename(p) for p in paths)}) in"
            f" {os.path.dirname(paths[0])}; a snapshot is one file: move the others out of the folder, then run"
            f" again; nothing was landed")
    return paths[0], day


def covering_file_date(kind: str, load_date: dt.date) -> dt.date | None:
    """The date of the latest snapshot file on or before the date, a misnamed one's (`meant_as`) included: the date's
    snapshot, which its land task lands (`catalog_file`, which refuses two files or a misnamed one, saying what to do).
    Refuses nothing itself: asked while scheduling and by the summary, which would fail with no task to name."""
    misnamed = (meant[0] for path in ignored_catalog_files(kind) if (meant := meant_as(kind, os.path.basename(path))))
    return max((day for day in [*catalog_files(kind), *misnamed] if day <= load_date), default=None)


def misnamed_refusal(kind: str, snapshot: dt.date) -> str | None:
    """What `catalog_file(kind, snapshot)` refuses of the misnamed files of the snapshot's own date, up to ", then run
    again" (None: none): a date that a misnamed snapshot covers is to be renamed before a restatement can read it."""
    days = [day for day in catalog_files(kind) if day <= snapshot]
    return _misnamed(kind, snapshot, max(days, default=None), only=snapshot)


def _refuse_misnamed(kind: str, load_date: dt.date, latest: dt.date | None) -> None:
    """UnexpectedSourceFiles for the misnamed snapshots that would cover the date: on or before it, and not before
    the latest one read (`latest`)."""
    if refusal := _misnamed(kind, load_date, latest):
        raise incoming.UnexpectedSourceFiles(f"{refusal}, then run again; nothing was landed")


def _misnamed(kind: str, load_date: dt.date, latest: dt.date | None, only: dt.date | None = None) -> str | None:
    misnamed: dict[dt.date, list[tuple[str, str]]] = {}
    for path in ignored_catalog_files(kind):
        meant = meant_as(kind, os.path.basename(path))
        if meant and meant[0] <= load_date and (latest is None or meant[0] >= latest) and only in (None, meant[0]):
            misnamed.setdefault(meant[0], []).append((os.path.basename(path), meant[1]))
    if not misnamed:
        return None
    day = max(misnamed)
    found, accepted = [name for name, _ in misnamed[day]], misnamed[day][0][1]
    names = ", ".join(map(repr, found))
    folder = os.path.join(config.data_dir(), kind)
    if day == latest:  # users_D (1).json beside users_D.json: a second copy; renamed, it would overwrite the other
        return (f"{kind} snapshot {day}: {folder} holds {names} beside {accepted}, a second copy of it; a snapshot"
                f" is one file: move {names} out of the folder, or replace {accepted} with it and restate"
                f" (`python -m pipeline restate --catalog {kind} --date {day}`)")
    cased = " (names are case-sensitive)" if any(name.lower() == accepted.lower() for name in found) else ""
    return (f"{kind} snapshot {day}: no file named {accepted}{cased}; {folder} holds {names}: rename"
            f" {'it' if len(found) == 1 else 'one'} to {accepted}")
