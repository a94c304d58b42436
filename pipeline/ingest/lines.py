"""Line accounting: every physical line of a line-based source is a raw row, a rejected line or blank.

events.csv and orders.ndjson are one record per physical line by contract (a quoted CSV value
cannot span lines). A CSV reader that meets an unterminated quote reads on to the next quote, so
one bad line could swallow the rest of the file; the landing therefore never trusts the reader's
row count alone:

1. `scan` reads the file once, as the manifest's checksum needs anyway, and counts its lines
   (numpy over 1 MiB blocks: a few milliseconds per million lines);
2. the landing lets DuckDB read the file directly (the fast path) and checks that raw rows +
   rejected lines = the file's non-blank data lines. Only when that fails (or the reader gives up)
3. the line-safe path splits the file here, line by line: lines whose quoting does not close on
   the line are rejected with a reason, every other line goes to DuckDB one record per line
   (`csv_line_safe`), or for NDJSON each line is parsed on its own (`ndjson_lines`).

Blank lines (empty, or only a CR; for NDJSON only JSON whitespace) are not records: they are counted
in the manifest (`blank_lines`) and skipped. Line numbers are 1-based and count every physical line,
the CSV header included.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from pipeline.ingest.incoming import SourceFile, open_stream

BLOCK = 1 << 20
NEWLINE, CR, QUOTE = 10, 13, 34
# The largest record any source may send, in bytes as written (a CSV line or an NDJSON line without its line
# end, a JSON array element): a larger one is rejected with its size (audit/rejected_lines keeps its text
# whole) and the rest of the file lands. DuckDB's CSV reader refuses lines of about this size by default; an
# order or event is a few hundred bytes. The readers' own limits are derived from it (pipeline.ingest.readers).
MAX_RECORD_BYTES = 2_000_000
assert MAX_RECORD_BYTES >= BLOCK, "Scan.long_line measures the lines across blocks only"

# One CSV field whose quoting closes on its line: quoted ("" escapes a quote), unquoted (a quote
# only opens a quoted value at the start of a field, as DuckDB reads it), or empty.
_FIELD = rb'(?:"(?:[^"]|"")*"|[^,"\r\n][^,\r\n]*|)'
SELF_CONTAINED_CSV = re.compile(_FIELD + rb"(?:," + _FIELD + rb")*")
UNBALANCED = ("malformed quoting: a quoted value is not closed on its line, or text follows its closing quote"
              " (events are one record per line; a value cannot span lines)")
STRAY_CR = "a carriage return inside the line (line ends are LF or CRLF; events are one record per line)"


# The reason a record over MAX_RECORD_BYTES is rejected: its size, then the limit (Python's str.format and DuckDB's
# format read it alike; sql/raw/json_rejected.sql is given it).
TOO_LARGE = "a record of {:,} bytes, over the limit of {:,} bytes per record"


def too_large(size: int) -> str:
    """The reason a record of `size` bytes is rejected."""
    return TOO_LARGE.format(size, MAX_RECORD_BYTES)


REJECTS_SCHEMA = pa.schema([("line_number", pa.int64()), ("raw_text", pa.string()), ("error", pa.string())])


class LineAccountingError(Exception):
    """The landed and rejected records of a file do not add up to its records (a reader problem)."""


@dataclasses.dataclass(frozen=True)
class Scan:
    """A file as read once: its fingerprint and its physical line count (of the decompressed content)."""

    size: int
    mtime_ns: int
    sha256: str
    content_bytes: int
    newlines: int
    ends_with_newline: bool
    last_solid: bytes = b""  # the content's last byte that is not blank space (a JSON array's: "]")
    long_line: int = 0  # the longest line across a block boundary (bytes, without LF or CRLF); any other is shorter

    @property
    def lines(self) -> int:
        """Physical lines: a last line without a line end counts too."""
        return self.newlines + (1 if self.content_bytes and not self.ends_with_newline else 0)

    def has_line_over(self, limit: int) -> bool:
        """Whether a line is longer than `limit` bytes (a CR ending it not counted), for a limit of BLOCK or more."""
        assert limit >= BLOCK, "a shorter line is not measured"
        return self.long_line > limit

    def fingerprint(self) -> dict[str, object]:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "sha256": self.sha256}


def _count_newlines(block: bytes) -> int:
    return int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == NEWLINE))


def scan(src: SourceFile) -> Scan:
    """Checksum (of the bytes as stored) and line count (of the content) of a source file."""
    info = os.stat(src.path)
    digest = hashlib.sha256()
    plain = src.compression == "none"
    content = newlines = long_line = 0
    last_newline = -1  # in the content
    last = solid = b""

    def count(block: bytes) -> None:
        nonlocal content, newlines, last, solid, long_line, last_newline
        first = block.find(b"\n")  # only a line across blocks can be BLOCK long: two memchr calls a block
        if first >= 0:  # without a CR ending the line, as MAX_RECORD_BYTES counts
            ends_cr = block[first - 1] == CR if first else last == b"\r"
            long_line = max(long_line, content + first - last_newline - 1 - ends_cr)
            last_newline = content + block.rfind(b"\n")
        content += len(block)
        newlines += _count_newlines(block)
        last = block[-1:]
        solid = block.rstrip(b" \t\r\n")[-1:] or solid

    with open(src.path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
            if plain:
                count(block)
    if not plain:
        with open_stream(src) as stream:
            for block in iter(lambda: stream.read(BLOCK), b""):
                count(block)
    return Scan(size=info.st_size, mtime_ns=info.st_mtime_ns, sha256=digest.hexdigest(), content_bytes=content,
                newlines=newlines, ends_with_newline=last == b"\n", last_solid=solid,
                long_line=max(long_line, content - last_newline - 1))


def iter_lines(src: SourceFile) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, content without its \\n, whether a \\n ended it) for every physical line."""
    number = 0
    carry = b""
    with open_stream(src) as stream:
        for block in iter(lambda: stream.read(BLOCK), b""):
            parts = (carry + block).split(b"\n")
            carry = parts.pop()
            for part in parts:
                number += 1
                yield number, part, True
    if carry:
        yield number + 1, carry, False


def is_blank_json(content: bytes) -> bool:
    """An NDJSON line that is no record: only JSON whitespace (a CSV's blank line: see LineBlock.blank)."""
    return not content.strip(b" \t\r")


def blank_lines(src: SourceFile, *, skip: int = 0) -> int:
    """Blank CSV lines (empty or a lone CR) after the first `skip` lines: a second pass, only when counts disagree."""
    count = 0
    for block in line_blocks(src):
        blank = block.blank()
        if block.first <= skip:
            blank[: skip - block.first + 1] = False
        count += int(np.count_nonzero(blank))
    return count


@dataclasses.dataclass
class LineBlock:
    """Whole lines of a file: `data` holds lines `first`.. ; `ends[i]` is where line i's \\n is (or the data's end)."""

    data: bytes
    first: int
    ends: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate(([0], self.ends[:-1] + 1))

    def blank(self) -> np.ndarray:
        """Per line: empty, or a lone CR."""
        starts, array = self.starts, np.frombuffer(self.data, dtype=np.uint8)
        lengths = self.ends - starts
        lone_cr = np.zeros(len(starts), dtype=bool)
        one = np.flatnonzero(lengths == 1)
        lone_cr[one] = array[starts[one]] == CR
        return (lengths == 0) | lone_cr

    def suspects(self) -> np.ndarray:
        """Indexes of the lines holding a quote or a CR that does not end the line (all a reader can misread),
        or longer than MAX_RECORD_BYTES (with a CR ending it: its content is checked exactly)."""
        array = np.frombuffer(self.data, dtype=np.uint8)
        quotes = np.flatnonzero(array == QUOTE)
        crs = np.flatnonzero(array == CR)
        following = np.minimum(crs + 1, len(array) - 1)
        inner = crs[(crs + 1 < len(array)) & (array[following] != NEWLINE)]
        long = np.flatnonzero(self.ends - self.starts > MAX_RECORD_BYTES)
        return np.unique(np.concatenate((np.searchsorted(self.ends, np.concatenate((quotes, inner))), long)))


def line_blocks(src: SourceFile) -> Iterator[LineBlock]:
    """The file's content in blocks of whole lines (about 1 MiB each), decompressed."""
    carry = b""
    first = 1
    with open_stream(src) as stream:
        for block in iter(lambda: stream.read(BLOCK), b""):
            data = carry + block
            ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == NEWLINE)
            if not len(ends):
                carry = data
                continue
            cut = int(ends[-1]) + 1
            carry = data[cut:]
            yield LineBlock(data[:cut], first, ends)
            first += len(ends)
    if carry:  # the last line, without a line end
        yield LineBlock(carry, first, np.array([len(carry)]))


def text_of(content: bytes) -> str:
    """A line as text for audit/rejected_lines: invalid UTF-8 and NUL as U+FFFD (Postgres text cannot hold NUL)."""
    return content.decode("utf-8", "replace").replace("\x00", "\ufffd")


@dataclasses.dataclass
class LineSafe:
    """What the line-safe path found: records, blank lines and the lines it rejected itself."""

    records: int = 0
    blank: int = 0
    rejects: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)

    def rejects_table(self) -> pa.Table:
        return pa.Table.from_pylist(
            [{"line_number": n, "raw_text": t, "error": e} for n, t, e in self.rejects], schema=REJECTS_SCHEMA)


def self_contained_csv(content: bytes) -> bool:
    """Whether a CSV line's quoting closes on the line (so a reader cannot run on into the next)."""
    if b'"' not in content and b"\r" not in content:
        return True
    return SELF_CONTAINED_CSV.fullmatch(content) is not None


def csv_line_safe(src: SourceFile, dest: str) -> LineSafe:
    """Copy the CSV to `dest`, one record per line, with every line that could run on, or is over
    MAX_RECORD_BYTES, blanked.

    Line numbers are kept (a rejected line becomes an empty line, which the reader skips but counts)
    and line ends become LF, so the reader's own rejects still name physical lines. Vectorised:
    only lines holding a quote or a stray CR are looked at one by one.
    """
    found = LineSafe()
    with open(dest, "wb") as out:
        for block in line_blocks(src):
            starts, ends, data = block.starts, block.ends, block.data
            header = block.first == 1
            blank = int(np.count_nonzero(block.blank()[1 if header else 0:]))
            found.blank += blank
            found.records += len(ends) - (1 if header else 0) - blank
            parts, position = [], 0
            for i in block.suspects().tolist():
                if header and i == 0:
                    continue  # the header, checked by the landing before
                content = data[starts[i]:ends[i]]
                content = content[:-1] if content.endswith(b"\r") else content
                reason = (too_large(len(content)) if len(content) > MAX_RECORD_BYTES
                          else None if self_contained_csv(content) else UNBALANCED if b'"' in content else STRAY_CR)
                if reason:
                    found.rejects.append((block.first + i, text_of(content), reason))
                    parts.append(data[position:starts[i]])
                    position = int(ends[i])  # keep the line end: the line stays, empty
            parts.append(data[position:])
            text = b"".join(parts)
            if b"\r" in text:
                text = text.replace(b"\r\n", b"\n")
            if not text.endswith(b"\n"):  # the last line, without a line end (maybe a lone trailing CR)
                text = text.removesuffix(b"\r") + b"\n"
            out.write(text)
    return found


NDJSON_SCHEMA = pa.schema([("line_number", pa.int64()), ("text", pa.string())])


def ndjson_lines(src: SourceFile) -> tuple[pa.Table, LineSafe]:
    """Every non-blank line of an NDJSON file as text with its (physical) line number.

    A line that is not UTF-8 is rejected here; DuckDB then parses each remaining line on its own.
    """
    found = LineSafe()
    numbers: list[int] = []
    texts: list[str] = []
    for number, content, _ in iter_lines(src):
        if number == 1:
            content = content.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark is no part of the record
        if is_blank_json(content):
            found.blank += 1
            continue
        found.records += 1
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as err:
            found.rejects.append((number, text_of(content), f"invalid UTF-8 at byte {err.start + 1} of the line"))
            continue
        numbers.append(number)
        texts.append(text)
    table = pa.table({"line_number": pa.array(numbers, pa.int64()),
                      "text": pa.array(texts, pa.string())}, schema=NDJSON_SCHEMA)
    return table, found
