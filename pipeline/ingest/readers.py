"""Reading a source file into raw rows and rejected records, with every record accounted for.

The landing (`pipeline.ingest.landing`) finds and checks the file, then one of these writes the raw
partition and the file's audit/rejected_lines partition and returns the counts (`Landed`):

- `land_json`: orders (a JSON array or NDJSON) and catalog snapshots. Objects become raw rows, any
  other record (a number, string, null, array; an NDJSON line that is not JSON) a rejected record
  with its reason. A malformed JSON array fails the whole file (a reader cannot resync in it); an
  NDJSON file whose lines are not one JSON value each is read line by line instead;
- `land_csv`: the events file, DuckDB's reader straight to Parquet, then the line-safe path when the
  reader did not give one record per line (see `pipeline.ingest.lines`).

A daily file that is complete but holds no records (orders: the array `[]`; events: the header line
and no rows) lands a raw partition of 0 rows: a day without orders is a fact to record, and the
quality gate decides whether it is published (it blocks an empty day unless told the day was real).
A file with no content at all (0 bytes, only blank space: nothing says the export finished) or whose
every record was rejected (a damaged file) is refused, as is an empty catalog snapshot, and a line-based
file that ends mid-line: its last line has no line end and cannot be read (an export or a transfer that
stopped; with a line end, that line alone is rejected).

Error messages name the file, line numbers and byte offsets, never the file's content (the reader's
own messages quote it, so they are reduced to their kind: see `reader_detail`).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import logging
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any

import duckdb

from pipeline import lake
from pipeline.ingest import events_header, incoming
from pipeline.ingest import lines as landing_lines
from pipeline.ingest.incoming import SourceFile, SourceFileInvalid
from pipeline.ingest.lines import LineAccountingError
from pipeline.lake import disk, spill, sqlrun

logger = logging.getLogger(__name__)

EVENT_COLUMNS = ("event_id", "user_id", "product_id", "event_type", "event_ts")
# Raw and partition columns a CSV header must not overwrite: extra columns with these names (any
# name starting with "_", load_date, source_table) are kept under RENAME_PREFIX + name. Every column
# the pipeline adds beside a file's own starts with "_" (the lineage; staging's _raw_record), so that
# "_" reserves them all, those of later changes included: a file's column of the same name would be
# the one a model reads.
RESERVED_COLUMNS = ("load_date", "source_table")
RENAME_PREFIX = "csv_"
HEADER_LIMIT = 1 << 16
# DuckDB's CSV reader counts a line's end in its max_line_size: room for a record of MAX_RECORD_BYTES and CRLF, so
# that every allowed line is read on the fast path (a longer one is found by the scan first: Scan.has_line_over;
# the reader counts blank lines before a line too: sql/raw/csv_too_long.sql).
READER_LINE_BYTES = landing_lines.MAX_RECORD_BYTES + len(b"\r\n")
# DuckDB's JSON reader refuses, and fails the whole file, an object over its maximum_object_size: read with
# this (its default) first, and again with room for the whole content only when an object is over it.
JSON_OBJECT_BYTES = 1 << 24


class NotOnePerLine(Exception):
    """The reader's direct pass did not give one record per line: take the line-safe path."""


# ------------------------------------------------------------------------------- reader messages
_JSON_POSITION = re.compile(r"at byte (\d+) in (?:record/value|line) (\d+): ([A-Za-z0-9 \-]{1,80}?)\.?\s*(?:$|Try)",
                            re.MULTILINE)


def reader_detail(err: BaseException) -> str:
    """A reader's error without the file content it may quote (values, lines, first characters)."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    first = re.sub(r"\"[^\"]*\"|'[^']*'", "...", first)
    return re.sub(r"[^\w ,.:;=()/\[\]-]", "", first)[:200]


def _json_error(path: str, err: BaseException, table: str) -> str:
    text = str(err)
    if "Expected top-level JSON array" in text:
        hint = (f"; for one object per line, name the file {table}.ndjson" if table == "orders" else
                f"; a {table} snapshot file holds the array of its {table}, not an API answer such as"
                f" {{\"{table}\": [...], \"total\": ...}}: save that list, or read the API ([catalog] {table}_url)")
        return f"{path}: is not a JSON array (expected a top-level JSON array, '[' first){hint}; nothing was landed"
    match = _JSON_POSITION.search(text)
    if match:
        # DuckDB counts the record one too high and the byte from the record's start (1 = its first byte)
        element = max(int(match[2]) - 1, 1)
        empty = " (an empty element: a comma after the last one, or two commas in a row?)" \
            if match[3].startswith("input length is 0") else ""
        return (f"{path}: malformed JSON in array element {element}, at byte {match[1]} of the element: {match[3]}"
                f"{empty}; nothing was landed")
    return f"{path}: cannot be read as JSON ({reader_detail(err)}); nothing was landed"


@dataclasses.dataclass
class Landed:
    """What one landing wrote: raw rows, and how the file's records were accounted for."""

    rows: int
    source_records: int
    rejected_count: int
    blank_lines: int
    read_path: str  # direct | line-safe


def write_rejected(con: duckdb.DuckDBPyConnection, model: str, table: str, load_date: dt.date,
                   params: dict[str, Any]) -> int:
    """Write the file's audit/rejected_lines partition (possibly empty, replacing an earlier attempt's)."""
    return sqlrun.copy_to_partition(con, sqlrun.sql_text("raw", model), params,
                                    lake.partition_file("audit", "rejected_lines", load_date, source_table=table))


def _none_landed(path: str, records: int, rejected: int, what: str, cr_alone: bool = False) -> SourceFileInvalid:
    if not records:
        return SourceFileInvalid(f"{path}: {what}; nothing was landed")
    why = ("its lines end with a carriage return alone, old Mac line ends: NDJSON lines end with LF or CRLF"
           if cr_alone else "fix the file's format")
    return SourceFileInvalid(f"{path}: none of its {records} record(s) could be landed ({rejected} rejected; {why}:"
                             f" the lines are not recorded, as nothing was landed); nothing was landed")


def _refuse_cut_off(path: str, scanned: landing_lines.Scan | None, rejected: Callable[[int], bool]) -> None:
    """Refuse a file whose last line has no line end and was rejected: an export or a transfer that stopped mid-line.

    Landed, the rest of the day would be served as complete, one rejected line all the quality gate saw."""
    if scanned is None or not scanned.content_bytes or scanned.ends_with_newline or not rejected(scanned.lines):
        return
    raise SourceFileInvalid(f"{path}: its last line, {scanned.lines}, has no line end and cannot be read: the file was"
                            f" probably cut off (an export or a transfer that stopped). Ask the sender for the whole"
                            f" file; if it is whole, end its last line with a line end (that line alone is then"
                            f" rejected); nothing was landed")


def _rejected_by(con: duckdb.DuckDBPyConnection, query: str, found: landing_lines.LineSafe) -> Callable[[int], bool]:
    """Whether a line was rejected: by the landing itself (`found`), or by the reader (`query`, given $line)."""
    own = {number for number, _, _ in found.rejects}
    return lambda line: line in own or con.execute(query, {"line": line}).fetchall()[0][0] > 0


_CSV_REJECTED = "select count(*) from csv_rejects where line = $line"
_JSON_REJECTED = "select count(*) from json_records where line_number = $line and json_type is null"  # not JSON


def _empty_array(src: SourceFile) -> bool:
    """Whether a JSON file without records is a complete document, the array `[]` (not only blank space)."""
    with incoming.open_stream(src) as stream:
        for block in iter(lambda: stream.read(1 << 16), b""):
            text = block.lstrip(b" \t\r\n\xef\xbb\xbf")  # blank space and a UTF-8 byte order mark
            if text:
                return text.startswith(b"[")
    return False


def _no_records(src: SourceFile, table: str) -> SourceFileInvalid:
    """A JSON file with content but no record: only blank space, or an empty catalog snapshot."""
    if table != "orders":
        return _none_landed(src.path, 0, 0, "the file holds no records (a catalog snapshot cannot be empty)")
    return _none_landed(src.path, 0, 0, "the file holds no records, only blank space (an incomplete export?);"
                                        " a day without orders is delivered as orders.json holding the array []")


def _read_json_records(con: duckdb.DuckDBPyConnection, read: dict[str, Any],
                       scanned: landing_lines.Scan | None) -> None:
    """Fill json_records; a file with an object too large for the reader's default buffer is read again with room
    for its whole content, so that such an object is one rejected record (over MAX_RECORD_BYTES), not a failed file."""
    sql = "create temp table json_records as " + sqlrun.sql_text("raw", "json_records")
    try:
        con.execute(sql, {**read, "maximum_object_size": JSON_OBJECT_BYTES})
    except duckdb.InvalidInputException as err:
        if "maximum_object_size" not in str(err) or scanned is None or scanned.content_bytes < JSON_OBJECT_BYTES:
            raise
        con.execute(sql, {**read, "maximum_object_size": scanned.content_bytes + 1})


def land_json(table: str, model: str, src: SourceFile, load_date: dt.date, params: dict[str, Any],
              scanned: landing_lines.Scan | None, stable: Callable[[], None]) -> Landed:
    """Land a JSON source's object records as raw rows and every other record as rejected.

    Orders that are the empty array `[]` land 0 rows (a day without orders); see the module doc."""
    read = {"path": src.path, "json_format": src.format, "compression": src.compression,
            "max_record_bytes": landing_lines.MAX_RECORD_BYTES}
    found = landing_lines.LineSafe()
    read_path = "direct"
    with sqlrun.connect() as con:
        try:
            _read_json_records(con, read, scanned)
            records = con.execute("select count(*) from json_records").fetchall()[0][0]
            if src.format == "newline_delimited" and scanned is not None and records != scanned.lines:
                raise NotOnePerLine(f"{records} JSON values in {scanned.lines} lines")
        except duckdb.OutOfMemoryException:  # [duckdb] memory_limit is too small: a setting, not the file
            raise
        except (duckdb.Error, NotOnePerLine) as err:
            if (unusable := spill.failure(err)) is not None:  # DuckDB could not spill: its folder's fault, not the file's
                raise unusable from err
            if disk.no_space(err):  # DuckDB's temporary files filled their disk: not the file's fault
                raise disk.full(lake.partition_file("raw", table, load_date), err) from err
            if src.format != "newline_delimited":
                raise SourceFileInvalid(_json_error(src.path, err, table)) from None
            logger.warning("%s: not one JSON value per line (%s); reading it line by line", src.path,
                           reader_detail(err))
            lines, found = landing_lines.ndjson_lines(src)
            con.execute("drop table if exists json_records")
            con.register("ndjson_lines", lines)
            con.execute("create temp table json_records as " + sqlrun.sql_text("raw", "ndjson_records"),
                        {"max_record_bytes": landing_lines.MAX_RECORD_BYTES})
            read_path = "line-safe"
            records = found.records
        con.register("line_rejects", found.rejects_table())
        objects = con.execute("select count(*) filter (where json_type = 'OBJECT' and not is_too_large)"
                              " from json_records").fetchall()[0][0]
        rejected = records - objects
        if not records and not (table == "orders" and src.format == "array" and _empty_array(src)):
            raise _no_records(src, table)
        if records and not objects:
            cr_alone = read_path == "line-safe" and records == 1 and "\r" in (lines.column("text")[0].as_py() or "")
            raise _none_landed(src.path, records, rejected, "the file holds no records", cr_alone)

        def check(rows: int) -> None:
            stable()
            if src.format == "array" and scanned is not None and scanned.last_solid != b"]":  # DuckDB takes "[{..},"
                raise SourceFileInvalid(f"{src.path}: the JSON array is not closed (the file does not end with ']'):"
                                        f" it was probably cut off (an export or a transfer that stopped). Ask the"
                                        f" sender for the whole file; if it is whole, end the array with ']' after"
                                        f" its last element (no comma before it); nothing was landed")
            if rows != objects or rows + rejected != records:
                raise LineAccountingError(f"{src.path}: {rows} rows + {rejected} rejected != {records} records")
            if scanned is not None and read_path == "line-safe" and records + found.blank != scanned.lines:
                raise LineAccountingError(
                    f"{src.path}: {records} records + {found.blank} blank != {scanned.lines} lines")
            if read_path == "line-safe":  # read directly, every line is a whole JSON value
                _refuse_cut_off(src.path, scanned, _rejected_by(con, _JSON_REJECTED, found))

        con.execute(sqlrun.sql_text("raw", "macros"))
        rows = sqlrun.copy_to_partition(con, sqlrun.sql_text("raw", model), params,
                                        lake.partition_file("raw", table, load_date), check=check)
        written = write_rejected(con, "json_rejected", table, load_date,
                                 {"source_file": params["source_file"], "json_format": src.format,
                                  "max_record_bytes": landing_lines.MAX_RECORD_BYTES,
                                  "too_large": landing_lines.TOO_LARGE})
        if written != rejected:
            raise LineAccountingError(f"{src.path}: {written} rejected lines written, {rejected} expected")
    return Landed(rows=rows, source_records=records, rejected_count=rejected, blank_lines=found.blank,
                  read_path=read_path)


@dataclasses.dataclass(frozen=True)
class CsvHeader:
    """The events file's header: raw column names in file order, and the reserved ones renamed."""

    columns: dict[str, str]
    renamed: dict[str, str]


def csv_header(src: SourceFile) -> CsvHeader:
    with incoming.open_stream(src) as stream:
        head = stream.read(HEADER_LIMIT)
    line = head.split(b"\n", 1)[0]
    if len(line) == HEADER_LIMIT:
        raise SourceFileInvalid(f"{src.path}: line 1 (header) is longer than {HEADER_LIMIT} bytes; is this a CSV"
                                f" file? nothing was landed")
    line = line.removeprefix(b"\xef\xbb\xbf").removesuffix(b"\r")
    if not line.strip():
        raise SourceFileInvalid(f"{src.path}: the file is empty (no header line); nothing was landed")
    if b'"' not in line and b"\r" in line:  # a CR that does not end the line: old Mac line ends, or a stray CR
        ends = "ends its lines with CR alone" if line.count(b"\r") > 1 else "has a carriage return (CR) inside"
        raise SourceFileInvalid(f"{src.path}: line 1 (header) {ends}; lines must end with LF or CRLF:"
                                f" convert the file, then run again; nothing was landed")
    if not landing_lines.self_contained_csv(line):
        raise SourceFileInvalid(f"{src.path}: line 1 (header) has a quote that does not close on the line;"
                                f" nothing was landed")
    names = [name.strip().lower() for name in next(csv.reader([line.decode("utf-8", "replace")]))]
    missing = [name for name in EVENT_COLUMNS if name not in names]
    if missing:
        problem = events_header.problem(line, names, missing, EVENT_COLUMNS)
        raise SourceFileInvalid(f"{src.path}: line 1 (header) {problem}; nothing was landed")
    bad = [str(i) for i, name in enumerate(names, start=1) if not name or names.index(name) != i - 1]
    if bad:
        raise SourceFileInvalid(f"{src.path}: line 1 (header): column(s) {', '.join(bad)} have an empty name or"
                                f" repeat an earlier one; nothing was landed")
    taken, columns, renamed = set(names), {}, {}
    for name in names:
        if name.startswith("_") or name in RESERVED_COLUMNS:
            new, n = RENAME_PREFIX + name, 2
            while new in taken:
                new, n = f"{RENAME_PREFIX}{name}_{n}", n + 1
            taken.add(new)
            renamed[name] = new
            name = new
        columns[name] = "VARCHAR"
    if renamed:
        logger.warning("%s: column(s) %s use names reserved for lineage or partitions: kept in raw as %s", src.path,
                       ", ".join(renamed), ", ".join(renamed.values()))
    return CsvHeader(columns=columns, renamed=renamed)


_NO_LINE_REJECTS = landing_lines.LineSafe().rejects_table()


def _reader_rejected(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("select count(distinct line) from csv_rejects").fetchall()[0][0]


def events_direct(src: SourceFile, load_date: dt.date, params: dict[str, Any], scanned: landing_lines.Scan,
                   stable: Callable[[], None]) -> Landed:
    """The fast path: DuckDB reads the file itself; raise NotOnePerLine unless every line is one record."""
    records, blank = scanned.lines - 1, 0
    counted: dict[str, int] = {}
    if scanned.has_line_over(landing_lines.MAX_RECORD_BYTES):  # rejected, whole, by the line-safe path
        raise NotOnePerLine(f"a line over {landing_lines.MAX_RECORD_BYTES:,} bytes")

    def check(rows: int) -> None:
        nonlocal blank
        stable()  # a file still being written explains any count: refuse it first
        rejected = _reader_rejected(con)
        if con.execute(sqlrun.sql_text("raw", "csv_too_long")).fetchall()[0][0]:  # the line-safe path has room
            raise NotOnePerLine("the reader refused a line for its size, blank lines before it counted")
        if rows + rejected != records:  # blank lines (skipped by the reader), or a record over several lines
            blank = landing_lines.blank_lines(src, skip=1)
            if rows + rejected != records - blank:
                raise NotOnePerLine(f"{rows} rows + {rejected} rejected lines != {records - blank} records")
        _refuse_cut_off(src.path, scanned, _rejected_by(con, _CSV_REJECTED, landing_lines.LineSafe()))
        if not rows and records - blank:  # a header and no rows is a day without events (see the module doc)
            raise _none_landed(src.path, records - blank, rejected, "no readable event lines after the header")
        counted["rejected"] = rejected

    with sqlrun.connect() as con:
        con.register("line_rejects", _NO_LINE_REJECTS)
        try:
            rows = sqlrun.copy_to_partition(
                con, sqlrun.sql_text("raw", "events"),
                {**params, "path": src.path, "compression": src.compression, "parallel": True,
                 "max_line_size": READER_LINE_BYTES},
                lake.partition_file("raw", "events", load_date), check=check)
        except duckdb.OutOfMemoryException:  # [duckdb] memory_limit is too small: a setting, not the file
            raise
        except duckdb.Error as err:
            if (unusable := spill.failure(err)) is not None:  # DuckDB could not spill: its folder's fault, not the file's
                raise unusable from err
            raise NotOnePerLine(f"the CSV reader stopped: {reader_detail(err)}") from None
        write_rejected(con, "events_rejected", "events", load_date, {"source_file": src.path})
    return Landed(rows=rows, source_records=records - blank, rejected_count=counted["rejected"], blank_lines=blank,
                  read_path="direct")


def events_line_safe(src: SourceFile, load_date: dt.date, params: dict[str, Any], scanned: landing_lines.Scan,
                      stable: Callable[[], None]) -> Landed:
    """The line-safe path: lines whose quoting runs on are rejected here, the rest read one record per line."""
    counted: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="ecomm-events-") as tmp:
        cleaned = os.path.join(tmp, "events.csv")
        found = landing_lines.csv_line_safe(src, cleaned)
        stable()
        if found.records + found.blank != scanned.lines - 1:
            raise LineAccountingError(f"{src.path}: {found.records} records + {found.blank} blank lines"
                                      f" != {scanned.lines - 1} lines after the header")

        def check(rows: int) -> None:
            stable()
            rejected = _reader_rejected(con) + len(found.rejects)
            if rows + rejected != found.records:
                raise LineAccountingError(
                    f"{src.path}: {rows} rows + {rejected} rejected lines != {found.records} records even when read"
                    f" line by line; nothing was landed. Please report this with the file")
            _refuse_cut_off(src.path, scanned, _rejected_by(con, _CSV_REJECTED, found))
            if not rows and found.records:
                raise _none_landed(src.path, found.records, rejected, "no readable event lines after the header")
            counted["rejected"] = rejected

        with sqlrun.connect() as con:
            con.register("line_rejects", found.rejects_table())
            try:
                rows = sqlrun.copy_to_partition(
                    con, sqlrun.sql_text("raw", "events"),
                    {**params, "path": cleaned, "compression": "none", "parallel": False,
                     "max_line_size": 2 * landing_lines.MAX_RECORD_BYTES},  # longer lines are blanked: room to spare
                    lake.partition_file("raw", "events", load_date), check=check)
            except duckdb.OutOfMemoryException:  # [duckdb] memory_limit is too small: a setting, not the file
                raise
            except duckdb.Error as err:
                if (unusable := spill.failure(err)) is not None:  # DuckDB could not spill: not the file's fault
                    raise unusable from err
                raise SourceFileInvalid(f"{src.path}: cannot be read as CSV ({reader_detail(err)});"
                                        f" nothing was landed") from None
            write_rejected(con, "events_rejected", "events", load_date, {"source_file": src.path})
    return Landed(rows=rows, source_records=found.records, rejected_count=counted["rejected"],
                  blank_lines=found.blank, read_path="line-safe")
