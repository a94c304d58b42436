"""What is wrong with an events file's header line that lacks required columns (`problem`), in words that do not
quote the line (it may be data): a header written with another delimiter than the comma reads as fewer columns,
one of them holding several names; a file without a header has an event on line 1."""
from __future__ import annotations

import csv
import re

from pipeline.ingest import renamed_keys

__all__ = ["problem"]

# What tells a first line of data from a header: a value no column name looks like, a timestamp (an ISO date, epoch
# seconds or milliseconds), which every event has.
_TIMESTAMP_VALUE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ].*)?|[0-9]{9,10}|[0-9]{13}")
# Delimiters a CSV export may use instead of the comma: (its name, how the message names it between names).
_OTHER_DELIMITERS = {";": ("semicolon", "';'"), "\t": ("tab", "tabs"), "|": ("vertical-bar", "'|'")}


def problem(line: bytes, names: list[str], missing: list[str], columns: tuple[str, ...]) -> str:
    """Why the header `line` (read with commas as `names`) lacks the required `missing` of `columns`."""
    required = ",".join(columns)
    for delimiter, (name, between) in _OTHER_DELIMITERS.items():
        split = [part.strip().strip('"').lower() for part in line.decode("utf-8", "replace").split(delimiter)]
        if not any(column in split and column not in names for column in columns):
            continue  # no name held a required one beside others: not this delimiter
        lacking = [column for column in columns if column not in split]
        looks = (f"looks {name}-delimited (its {len(split)} names are separated by {between}, so it reads as"
                 f" {len(names)} column(s))")
        if lacking:
            return (f"{looks} and lacks required column(s) {', '.join(lacking)} even so: the events file must be"
                    f" comma-delimited and name {', '.join(columns)}; export it so (header {required}), then run"
                    f" again")
        return (f"{looks}: the events file must be comma-delimited; export it with commas (header {required}),"
                " then run again")
    if len(missing) == len(columns) and any(_TIMESTAMP_VALUE.fullmatch(name) for name in names):
        return (f"looks like an event, not a header (it holds a timestamp and none of the column names): the file has"
                f" no header line; add the line {required} at its top, then run again")
    written = [name.strip() for name in next(csv.reader([line.decode("utf-8", "replace")]))]  # as the sender wrote
    renamed = [f"{renamed_keys.named(key)} for {column}" for column in missing
               if (key := renamed_keys.look_alike(column, written)) is not None]
    return (f"lacks required column(s) {', '.join(missing)} ({len(names)} column(s) found"
            + (f", among them {', '.join(renamed)}: a renamed column" if renamed else "")
            + f"; the header must name {', '.join(columns)}, in any order, separated by commas)")
