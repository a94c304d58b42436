"""A date's quarantine as the lake holds it: the rows of audit/bad_records by source and reason, the lines of
audit/rejected_lines. The one reading of them, for every part that needs them:

- the quality gate reads the reason counts of the date's sources once (`register_counts`: one column of each
  file, counted in Arrow, a relation `quarantined_reasons` of source_table, reason_code, row_count):
  sql/gate/source_loss.sql counts the second lines of an order from it (`multiple_order_lines`), and a loss
  check that warns or fails keeps the source's top reasons (`top_reasons`, "invalid_status 300 of 300") in its
  result (audit/dq_results.top_reasons) and, in words, in its message;
- the gate's catalog view reads the covering snapshots' quarantined rows (`register_rows`: source_table,
  reason_code, record_id) for the ids listed twice with different values (duplicate_id_conflict);
- when the top reason is a field the records lack and most of them have a key that is that field written otherwise
  (`Order_ID` for order_id: a renamed key), the loss check says so beside its reasons (`renamed_key`: the first
  SAMPLE records of that reason), so the sender is asked to fix it;
- the run summary shows the stored top reasons on the check's line (it never reads them back from the message);
- the daily report of a date not published counts its quarantine here (`of_date`).

Staging writes a source's bad_records partition with its reconciliation, even when it holds no row. A partition
that is not there holds nothing only when the source's audit/reconciliation of the date counts no quarantined
row (or the source was not staged that day); one that is gone while rows were quarantined, or that cannot be
read, raises `Unreadable`: the gate reports the view it feeds as an error, never as 0 second lines.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import lake
from pipeline.ingest import incoming, renamed_keys

if TYPE_CHECKING:  # the summary and the report import this module: no DuckDB for them
    import duckdb

TOP = 3  # reasons named in a message
REASONS = "top reasons: "  # how the reasons begin in a loss check's message and on its summary line
ROW_SCHEMA = pa.schema([("source_table", pa.string()), ("reason_code", pa.string()), ("record_id", pa.string())])
COUNT_SCHEMA = pa.schema([("source_table", pa.string()), ("reason_code", pa.string()), ("row_count", pa.int64())])
NO_REASON = "no reason code"
SAMPLE = 200  # quarantined records of the top reason read for a renamed key (the first ones of the file)
SCANNED = 65_536  # rows of the file looked at for them, at most: a renamed key quarantines most rows, found at once


class Unreadable(Exception):
    """A quarantine partition cannot be read, or is gone while its reconciliation counts quarantined rows."""


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


def date_files(table: str, day: dt.date) -> dict[str, str]:
    """source_table -> data file of the date's partitions of an audit table (bad_records, reconciliation,
    rejected_lines), as one listing finds them."""
    pattern = os.path.join(lake.partition_dir("audit", table, day), "source_table=*", lake.DATA_FILE)
    return {source: path for path in lake.files_matching(pattern) if (source := _key(path, "source_table"))}


def _read(path: str, columns: list[str]) -> pa.Table:
    with lake.open_input(path) as handle:
        return pq.ParquetFile(handle).read(columns=columns, use_threads=False)


def _nothing_quarantined(day: dt.date, table: str, path: str) -> None:
    """Return when the missing bad_records file `path` holds nothing: its source's reconciliation of the date counts
    no quarantined row, or there is none (the source was not staged that day); else raise Unreadable."""
    reconciliation = lake.partition_file("audit", "reconciliation", day, source_table=table)
    try:
        counted = _read(reconciliation, ["quarantined_count"])["quarantined_count"]
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError) as err:  # KeyError: a file without the column
        raise Unreadable(f"audit/bad_records of {day} for {table} is not in the lake ({path}) and its"
                         f" audit/reconciliation cannot be read ({reconciliation}): {err}") from err
    quarantined = pc.sum(counted).as_py() or 0
    if quarantined:
        raise Unreadable(f"audit/bad_records of {day} for {table} is gone ({path}), but its audit/reconciliation"
                         f" counts {quarantined:,} quarantined rows; {_restage(day, table)}")


def _restage(day: dt.date, table: str) -> str:
    source = table.removeprefix("stg_")
    which = f"--catalog {source}" if source in incoming.CATALOG_SOURCES else f"--source {source}"
    return f"stage it again: python -m pipeline restate {which} --date {day}"


def read(day: dt.date, table: str, columns: list[str]) -> pa.Table | None:
    """`columns` of a (date, staging table)'s quarantined rows; None when its partition is not there and holds
    nothing (Unreadable: gone while rows were quarantined, or not readable)."""
    path = lake.partition_file("audit", "bad_records", day, source_table=table)
    try:
        return _read(path, columns)
    except FileNotFoundError:
        _nothing_quarantined(day, table, path)
        return None
    except (OSError, ValueError, KeyError) as err:  # unreadable, a broken file: said, never a 0
        raise Unreadable(f"audit/bad_records of {day} for {table} cannot be read ({path}): {err}") from err


def ordered(counts: list[tuple[str | None, int]]) -> list[tuple[str, int]]:
    """(reason_code, rows) most rows first, then by reason (a row without one named as such)."""
    return sorted(((reason or NO_REASON, rows) for reason, rows in counts), key=lambda pair: (-pair[1], pair[0]))


def reason_counts(table: pa.Table) -> list[tuple[str, int]]:
    """(reason_code, rows) of quarantined rows with a reason_code column, most rows first."""
    counted = pc.value_counts(table["reason_code"]).to_pylist()
    return ordered([(item["values"], item["counts"]) for item in counted])


def counts(day: dt.date, tables: list[str]) -> pa.Table:
    """(source_table, reason_code, row_count) of the given staging tables' quarantined rows of a date (COUNT_SCHEMA;
    one column of each file read, once). Unreadable: a partition that is gone or cannot be read."""
    rows = [(table, reason, n) for table in tables if (found := read(day, table, ["reason_code"])) is not None
            for reason, n in reason_counts(found)]
    return pa.Table.from_pylist([dict(zip(COUNT_SCHEMA.names, row)) for row in rows], schema=COUNT_SCHEMA)


def register_counts(con: duckdb.DuckDBPyConnection, relation: str, day: dt.date, tables: list[str]) -> None:
    """Expose `counts(day, tables)` as `relation` (source_table, reason_code, row_count)."""
    con.register(relation, counts(day, tables))


def register_rows(con: duckdb.DuckDBPyConnection, relation: str, partitions: list[tuple[dt.date, str]]) -> None:
    """Expose the quarantined rows of the given (load date, staging table) partitions as `relation` (ROW_SCHEMA).
    Unreadable: a partition that is gone or cannot be read."""
    found = [table for day, source in partitions
             if (table := read(day, source, ROW_SCHEMA.names)) is not None]
    con.register(relation, pa.concat_tables([t.cast(ROW_SCHEMA) for t in found]) if found else ROW_SCHEMA.empty_table())


def top_reasons(counts: list[tuple[str, int]], received: int) -> str:
    """'invalid_status 300 of 300, missing_user_id 2 of 300 and 1 other reason': the TOP reasons, of `received`."""
    shown = ", ".join(f"{reason} {rows:,} of {received:,}" for reason, rows in counts[:TOP])
    others = len(counts) - TOP
    return shown + (f" and {others} other reason{'' if others == 1 else 's'}" if others > 0 else "")


def of_date(day: dt.date) -> Quarantine:
    """The date's quarantine from the lake (NotInLake: why it cannot say).

    Known only for a date staged in this lake: each source reconciled for the date (audit/reconciliation)
    has its bad_records partition, written with it, even when empty.
    """
    where = lake.root()
    try:
        reconciled = date_files("reconciliation", day)
        bad = date_files("bad_records", day)
        if not reconciled:
            raise NotInLake(f"the lake ({where}) has no audit/reconciliation of {day}: the date was not staged there")
        if missing := sorted(set(reconciled) - set(bad)):
            raise NotInLake(f"the lake ({where}) has no audit/bad_records of {day} for {', '.join(missing)}")
        reasons = [(source, reason, rows) for source, path in bad.items()
                   for reason, rows in reason_counts(_read(path, ["reason_code"]))]
        rejected = 0
        for path in date_files("rejected_lines", day).values():
            with lake.open_input(path) as handle:
                rejected += pq.ParquetFile(handle).metadata.num_rows
    except (OSError, ValueError, KeyError) as err:  # unreadable, a broken file: said, never a 0
        raise NotInLake(f"the lake's audit files of {day} could not be read ({where}): {err}") from err
    reasons.sort(key=lambda r: (-r[2], r[0], r[1]))
    return Quarantine(reasons, rejected, where, tuple(sorted(reconciled)))


def _sample(path: str, reason: str) -> list[dict]:
    """The first SAMPLE JSON objects among the raw records of the file's rows quarantined for `reason` (of its
    first SCANNED rows)."""
    records: list[dict] = []
    with lake.open_input(path) as handle:
        file = pq.ParquetFile(handle)
        if "raw_record" not in file.schema_arrow.names:  # a quarantine written without its records: no keys
            return records
        batches = file.iter_batches(batch_size=1024, columns=["reason_code", "raw_record"], use_threads=False)
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
    otherwise. Reads the first SAMPLE such records (two columns of the date's bad_records file): "every record" only
    when they were every row of the reason."""
    if not counts:
        return None
    reason, rows = counts[0]
    field = reason.partition("_")[2]  # missing_order_id: order_id (never a part of it: id)
    if not field:
        return None
    records = _sample(lake.partition_file("audit", "bad_records", day, source_table=source_table), reason)
    if (found := renamed_keys.renamed_in(field, records)) is None:
        return None
    key, having, _ = found
    if rows == received and having == len(records) == rows:  # every row of the reason read, and each has the key
        return f"every record lacks {field} and has {renamed_keys.named(key)}"
    return (f"the records quarantined as {reason} lack {field} and have {renamed_keys.named(key)}:"
            f" {having:,} of the first {len(records):,} read")
