"""A date's quarantine as the lake holds it: rows of audit/bad_records by source and reason, lines of
audit/rejected_lines. Postgres gets them only when the date is published; before that (a date the gate
blocked, or one not published yet) the lake is where they are.

- the quality gate puts a source's top reasons into its loss check's message (`top_reasons`, "invalid_status
  300 of 300"), so an operator sees at a glance whether the export changed;
- when the top reason is a field the records lack and most of them have a key that is that field written otherwise
  (`Order_ID` for order_id: a renamed key), the message says so (`renamed_key`), so the sender is asked to fix it;
- the run summary shows them on the check's line (`reasons_in`, `renamed_in` find them in the message);
- the daily report of a date not published counts its quarantine here (`of_date`).

Cheap: one column (reason_code) of the date's bad_records partitions, and the Parquet footers of its
rejected_lines partitions.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import lake
from pipeline.ingest import renamed_keys

TOP = 3  # reasons named in a message
REASONS = "top reasons: "  # how the reasons begin in a loss check's message (`reasons_in` finds them there)
_REASONS = re.compile(re.escape(REASONS) + r"([^);]+)")
SAMPLE = 200  # quarantined records of the top reason read for a renamed key (the first ones of the file)
SCANNED = 65_536  # rows of the file looked at for them, at most: a renamed key quarantines most rows, found at once
# how `renamed_key` words a renamed key, after the reasons (`renamed_in` finds it in the message)
_RENAMED = re.compile(r"; ((?:every record lacks|the records quarantined as \S+ lack) [^;)]+)")


class NotInLake(Exception):
    """The lake cannot say what the date's quarantine is (not staged there, partitions missing or unreadable)."""


@dataclasses.dataclass(frozen=True)
class Quarantine:
    """A date's quarantined rows, (source_table, reason_code, rows) most rows first, and its rejected lines."""

    reasons: list[tuple[str, str, int]]
    rejected_lines: int
    where: str  # the lake it was read from
    sources: tuple[str, ...] = ()  # the staged tables it covers: those reconciled for the date (a partly staged
    # date's quarantine is that of the sources staged so far)


def _key(path: str, key: str) -> str | None:
    for part in path.replace("\\", "/").split("/"):
        if part.startswith(f"{key}="):
            return part.split("=", 1)[1]
    return None


def _date_files(table: str, day: dt.date) -> dict[str, str]:
    """source_table -> data file of the date's partitions of an audit table."""
    pattern = os.path.join(lake.partition_dir("audit", table, day), "source_table=*", lake.DATA_FILE)
    return {source: path for path in lake.files_matching(pattern) if (source := _key(path, "source_table"))}


def _counts(path: str) -> list[tuple[str, int]]:
    """(reason_code, rows) of one bad_records file, most rows first."""
    with lake.open_input(path) as handle:
        column = pq.ParquetFile(handle).read(columns=["reason_code"], use_threads=False)["reason_code"]
    counted = pc.value_counts(column).to_pylist()
    return sorted(((item["values"] or "no reason code", item["counts"]) for item in counted),
                  key=lambda pair: (-pair[1], pair[0]))


def reason_counts(day: dt.date, source_table: str) -> list[tuple[str, int]]:
    """(reason_code, rows) of a source's quarantined rows of the date, most rows first ([] without a partition)."""
    path = lake.partition_file("audit", "bad_records", day, source_table=source_table)
    try:
        return _counts(path)
    except FileNotFoundError:
        return []


def top_reasons(counts: list[tuple[str, int]], received: int) -> str:
    """'invalid_status 300 of 300, missing_user_id 2 of 300 and 1 other reason': the TOP reasons, of `received`."""
    shown = ", ".join(f"{reason} {rows:,} of {received:,}" for reason, rows in counts[:TOP])
    others = len(counts) - TOP
    return shown + (f" and {others} other reason{'' if others == 1 else 's'}" if others > 0 else "")


def reasons_in(message: str | None) -> str | None:
    """The reasons a loss check's message names (`top_reasons`), or None."""
    found = _REASONS.search(message or "")
    return found.group(1).strip() if found else None


def of_date(day: dt.date) -> Quarantine:
    """The date's quarantine from the lake (NotInLake: why it cannot say).

    Known only for a date staged in this lake: each source reconciled for the date (audit/reconciliation)
    has its bad_records partition, written with it, even when empty.
    """
    where = lake.root()
    try:
        reconciled = _date_files("reconciliation", day)
        bad = _date_files("bad_records", day)
        if not reconciled:
            raise NotInLake(f"the lake ({where}) has no audit/reconciliation of {day}: the date was not staged there")
        if missing := sorted(set(reconciled) - set(bad)):
            raise NotInLake(f"the lake ({where}) has no audit/bad_records of {day} for {', '.join(missing)}")
        reasons = [(source, reason, rows) for source, path in bad.items() for reason, rows in _counts(path)]
        rejected = 0
        for path in _date_files("rejected_lines", day).values():
            with lake.open_input(path) as handle:
                rejected += pq.ParquetFile(handle).metadata.num_rows
    except (OSError, ValueError) as err:  # unreadable, a broken file: said, never a 0
        raise NotInLake(f"the lake's audit files of {day} could not be read ({where}): {err}") from err
    reasons.sort(key=lambda r: (-r[2], r[0], r[1]))
    return Quarantine(reasons, rejected, where, tuple(sorted(reconciled)))


def _sample(path: str, reason: str) -> list[dict]:
    """The first SAMPLE JSON objects among the raw records of the file's rows quarantined for `reason` (of its
    first SCANNED rows)."""
    records: list[dict] = []
    with lake.open_input(path) as handle:
        batches = pq.ParquetFile(handle).iter_batches(batch_size=1024, columns=["reason_code", "raw_record"],
                                                      use_threads=False)
        for _, batch in zip(range(SCANNED // 1024), batches, strict=False):
            for text in batch.filter(pc.equal(batch.column(0), reason)).column(1).to_pylist():
                try:
                    value = json.loads(text)
                except (TypeError, ValueError):  # not a JSON record (an events row): no keys to compare
                    continue
                if isinstance(value, dict):
                    records.append(value)
                if len(records) >= SAMPLE:
                    return records
    return records


def renamed_key(day: dt.date, source_table: str, counts: list[tuple[str, int]], received: int) -> str | None:
    """'every record lacks order_id and has Order_ID' when the top reason is about a field (missing_order_id,
    invalid_status) that most of its records lack while they have a key that is the field written otherwise; None
    otherwise. Reads the first SAMPLE such records (two columns of the date's bad_records file)."""
    if not counts:
        return None
    reason, rows = counts[0]
    parts = reason.split("_")
    fields = ["_".join(parts[i:]) for i in range(1, len(parts))]  # missing_order_id: order_id, then id
    records = _sample(lake.partition_file("audit", "bad_records", day, source_table=source_table), reason)
    for field in fields:
        if (found := renamed_keys.renamed_in(field, records)) is None:
            continue
        key, having, lacking = found
        if rows == received and having == len(records):
            return f"every record lacks {field} and has {renamed_keys.named(key)}"
        return (f"the records quarantined as {reason} lack {field} and have {renamed_keys.named(key)}:"
                f" {having:,} of the first {len(records):,} read")
    return None


def renamed_in(message: str | None) -> str | None:
    """The renamed key a loss check's message names (`renamed_key`), or None."""
    found = _RENAMED.search(message or "")
    return found.group(1).strip() if found else None
