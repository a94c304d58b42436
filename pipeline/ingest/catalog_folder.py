"""A catalog's incoming folder: its snapshot files by date (`<data_dir>/<kind>/<kind>_YYYY-MM-DD.json`, optionally
.gz or .zst), and the files there that are not read as snapshots. `pipeline.ingest.landing` lands them."""
from __future__ import annotations

import datetime as dt
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
    suffixes = "|".join(re.escape(suffix) for suffix in incoming.COMPRESSED_SUFFIXES)
    found: dict[dt.date, list[str]] = {}
    ignored: dict[str, str] = {}
    for name in names:
        path = os.path.join(folder, name)
        match = re.fullmatch(rf"{kind}_(\d{{4}}-\d{{2}}-\d{{2}})\.json(?:{suffixes})?", name)
        try:
            day = dt.date.fromisoformat(match.group(1)) if match else None
        except ValueError:
            day, why = None, f"{match.group(1)} is not a calendar date"
        else:
            why = f"not a {kind} snapshot name ({kind}_YYYY-MM-DD.json, optionally ending in .gz or .zst)"
        if day is None:
            ignored[path] = why
        else:
            found.setdefault(day, []).append(path)
    return found, ignored


def catalog_file(kind: str, load_date: dt.date) -> tuple[str, dt.date] | None:
    """The latest `<kind>/<kind>_YYYY-MM-DD.json` (or .json.gz, .json.zst) on or before the date, with its date.

    Two files of that date (`products_D.json` beside `products_D.json.gz`) are refused, as two files
    in a daily folder are: which one is the snapshot is not for the pipeline to guess.
    """
    files = catalog_files(kind)
    days = [day for day in files if day <= load_date]
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
