"""The lake's tables, each with its oldest and newest partition file, found without listing every partition.

Creating a view, DuckDB reads the footer of every file the view names, and again for each view built on it: a view
over `**/data.parquet` made opening the lake read every partition's footer, ten times for warehouse/fact_orders.
`pipeline.lake.views.open_lake` creates its views over these two files instead, through a macro per view
(`<schema>.<view>__files()`), then points the macros at the glob (where DuckDB rebinds a view to the files it reads
when queried: `views.binds_edges`). A local lake costs a few folder listings per table whatever the number of load
dates; an object-store lake has no folders: one listing per layer.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

from pipeline import lake
from pipeline.lake import s3


def pattern(root: str, layer: str, table: str, name: str = lake.DATA_FILE) -> str:
    """The glob of a table's files called `name`: `data.parquet`, its partitions (never a writer's temporary file),
    or `_manifest.json`, a raw table's landed ones; audit/restatements: its JSON records, one per restated date."""
    if (layer, table) == ("audit", "restatements"):
        return os.path.join(root, layer, table, "*", lake.RESTATEMENT_FILE)
    return os.path.join(root, layer, table, "**", name)


def _edge(folder: str, name: str, last: bool) -> str | None:
    """The first (last) file called `name` under `folder` in path order, as `**/<name>` would list it: the file of
    the oldest (newest) partition. Hidden folders are skipped, as the glob does; a folder that vanishes or cannot be
    listed is passed over, as the glob does."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted((entry for entry in listing if not entry.name.startswith(".")),
                             key=lambda entry: entry.name, reverse=last)
    except OSError:
        return None
    if any(entry.name == name and entry.is_file() for entry in entries):
        return os.path.join(folder, name)
    for entry in entries:
        if entry.is_dir() and (found := _edge(entry.path, name, last)) is not None:
            return found
    return None


def _local_edges(folder: str) -> list[str]:
    first = _edge(folder, lake.DATA_FILE, last=False)
    if first is None:
        return []
    newest = _edge(folder, lake.DATA_FILE, last=True)
    return [first] if newest in (None, first) else [first, newest]


def tables(root: str, layer: str, known: Iterable[str]) -> dict[str, list[str]]:
    """table -> its oldest and newest partition file ([] while it has none), for the known tables and every folder
    (object: every table a file names). A raw table counts only once a partition is landed (its `_manifest.json`
    written, last); audit/restatements, kept as JSON records, maps to its records."""
    layer_dir = os.path.join(root, layer)
    names = list(known)
    if s3.is_remote(root):
        files: dict[str, list[str]] = {}
        landed = set()
        for path in lake.files_matching(os.path.join(layer_dir, "**", "*")):  # the layer's one listing
            table, _, rest = path[len(layer_dir):].lstrip("/").partition("/")
            name = rest.rsplit("/", 1)[-1]
            if name == lake.DATA_FILE:
                files.setdefault(table, []).append(path)
            elif name == lake.MANIFEST_FILE:
                landed.add(table)
        names += sorted(name for name in files if name not in names and lake._NAME.match(name))
        found = {name: sorted({files[name][0], files[name][-1]}) if name in files else [] for name in names}
    else:
        if os.path.isdir(layer_dir):
            names += [entry for entry in sorted(os.listdir(layer_dir)) if entry not in names
                      and lake._NAME.match(entry) and os.path.isdir(os.path.join(layer_dir, entry))]
        found = {name: _local_edges(os.path.join(layer_dir, name)) for name in names}
        landed = {name for name in names
                  if layer == "raw" and _edge(os.path.join(layer_dir, name), lake.MANIFEST_FILE, last=False)}
    if layer == "raw":  # data without a manifest is not landed yet: a table with no landed partition has none
        found = {name: files if name in landed else [] for name, files in found.items()}
    if layer == "audit":
        found["restatements"] = lake.files_matching(pattern(root, layer, "restatements"))
    return found
