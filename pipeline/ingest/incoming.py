"""The incoming-files contract: which file of a date's folder is a source, and what makes it acceptable.

Under the data folder (ECOMM_DATA_DIR, else [paths] data_dir) each daily source has one folder per
load date holding exactly one file:

    orders/<YYYY-MM-DD>/orders.json     a JSON array of order objects
    orders/<YYYY-MM-DD>/orders.ndjson   or one JSON object per line
    events/<YYYY-MM-DD>/events.csv      a header line, then one event per line

Each name may end in `.gz` or `.zst`. Besides that file the folder may hold only the ready marker
([landing] ready_marker, when set). Anything else (a second part, both orders.json and
orders.ndjson, a leftover `.tmp`) fails the date naming the files: multi-part delivery is not
supported, and a file nobody reads must not be ignored silently.

Inputs are regular files under the data folder: a symbolic link, a path that resolves outside the
data folder, or anything that is not a regular file (a FIFO, a device, a folder) is refused.
Compression is recognised by the file's first bytes, not its name: gzip and zstd are read, other
compressed formats (zip, bzip2, xz, 7z, lz4) are refused naming the format, and UTF-16 text is
refused (files are UTF-8).

Messages name paths, sizes and positions, never file contents: they reach audit.pipeline_runs.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import logging
import os
import stat
import zlib
from typing import BinaryIO

from pipeline import config, read_once

logger = logging.getLogger(__name__)

# The sources, stated here once: daily files (one per load date) and weekly catalog snapshots.
DAILY_SOURCES = ("orders", "events")
CATALOG_SOURCES = ("products", "users")
SOURCES = DAILY_SOURCES + CATALOG_SOURCES
# base file name -> format, per daily source (the first name is the one a missing file is reported as)
NAMES: dict[str, dict[str, str]] = {
    "orders": {"orders.json": "array", "orders.ndjson": "newline_delimited"},
    "events": {"events.csv": "csv"},
}
COMPRESSED_SUFFIXES = {".gz": "gzip", ".zst": "zstd"}
READABLE_COMPRESSION = ("gzip", "zstd")
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"7z\xbc\xaf\x27\x1c", "7z"), (b"\x04\x22\x4d\x18", "lz4"),
)
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class SourceFileMissing(Exception):
    """The incoming file for a source and date is not where it is expected."""


class SourceFileInvalid(Exception):
    """The incoming file cannot be read as its format (malformed, empty, missing columns)."""


class UnexpectedSourceFiles(SourceFileInvalid):
    """A date's folder holds files besides the one source file (and the ready marker)."""


class UnsafeSourcePath(SourceFileInvalid):
    """An input is a symbolic link, not a regular file, or resolves outside the data folder."""


class SourceFileCompressed(SourceFileInvalid):
    """An input is compressed in a format the pipeline does not read (zip, bzip2, xz, 7z, lz4)."""


class SourceFileUnstable(SourceFileInvalid):
    """The source file changed while it was being landed (it is probably still being written)."""


class SourceNotReady(Exception):
    """The ready marker is required ([landing] ready_marker) and the date's folder lacks it."""


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One incoming file as the landing reads it."""

    source: str
    path: str
    format: str  # csv | array | newline_delimited
    compression: str  # none | gzip | zstd


def data_root() -> str:
    """The data folder, symbolic links resolved (what every input must be inside)."""
    return read_once.once(("data root",), lambda: os.path.realpath(_data_dir()))


def _data_dir() -> str:
    """config.data_dir, read once in a `read_once.scope` (a setting costs ~0.5 ms; a range's check asks it per file)."""
    return read_once.once(("data dir",), config.data_dir)


def _ready_marker() -> str:
    return read_once.once(("ready marker",), config.ready_marker)


def date_folder(source: str, load_date: dt.date) -> str:
    """A daily source's folder for a date."""
    if source not in NAMES:
        raise ValueError(f"unknown daily source {source!r}; expected one of {DAILY_SOURCES}")
    return os.path.join(_data_dir(), source, load_date.isoformat())


def expected_path(source: str, load_date: dt.date) -> str:
    """The file a missing source is reported as (orders.json, events.csv)."""
    return os.path.join(date_folder(source, load_date), next(iter(NAMES[source])))


def _inside(path: str, root: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def check_regular_file(path: str, what: str) -> os.stat_result:
    """lstat of an input that must be a regular file under the data folder; refuse anything else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise SourceFileMissing(f"{what}: expected {path}") from None
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeSourcePath(
            f"{what}: {path} is a symbolic link; inputs must be regular files inside the data folder"
            f" ({config.data_dir()}): copy or move the file there instead of linking it; nothing was landed")
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeSourcePath(f"{what}: {path} is not a regular file (a folder, FIFO or device); nothing was landed")
    if not _inside(path, data_root()):
        raise UnsafeSourcePath(
            f"{what}: {path} resolves outside the data folder ({config.data_dir()}) through a linked folder;"
            f" inputs must be inside it; nothing was landed")
    return info


def _classify(source: str, name: str) -> tuple[str, str] | None:
    """(format, compression the name announces) of an accepted source file name, else None."""
    base, compression = name, "none"
    for suffix, codec in COMPRESSED_SUFFIXES.items():
        if name.endswith(suffix):
            base, compression = name[: -len(suffix)], codec
    fmt = NAMES[source].get(base)
    return (fmt, compression) if fmt else None


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def _accepted_names(source: str) -> str:
    """The file names a source's folder may hold: `orders.json or orders.ndjson, optionally ending in .gz or .zst`."""
    return f"{' or '.join(NAMES[source])}, optionally ending in {' or '.join(COMPRESSED_SUFFIXES)}"


def find(source: str, load_date: dt.date) -> SourceFile:
    """The one source file of a date's folder, checked against the folder rules (see module doc)."""
    folder = date_folder(source, load_date)
    what = f"{source} for {load_date}"
    if os.path.lexists(folder) and not _inside(folder, data_root()):
        raise UnsafeSourcePath(f"{what}: the folder {folder} resolves outside the data folder"
                               f" ({config.data_dir()}) through a symbolic link; inputs must be inside it;"
                               f" nothing was landed")
    if not os.path.isdir(folder):
        raise SourceFileMissing(f"{what}: expected {expected_path(source, load_date)}")
    marker = _ready_marker()
    found: list[tuple[str, str, str]] = []
    others: list[str] = []
    for name in sorted(os.listdir(folder)):
        kind = _classify(source, name)
        if kind is not None:
            found.append((name, *kind))
        elif name != marker:
            others.append(name)
    if others and not found:  # orders.JSON, orders (1).json: a file the sender misnamed, not a second part
        raise UnexpectedSourceFiles(
            f"{what}: no file named {_accepted_names(source)} (names are case-sensitive); {folder} holds"
            f" {_files(len(others))} ({', '.join(others)}): rename the {source} file to one of those names, move any"
            f" other out of the folder, then run again; nothing was landed")
    if others or len(found) > 1:
        names = ", ".join([n for n, _, _ in found] + others)
        marked = f" and the ready marker {marker}" if marker else ""
        raise UnexpectedSourceFiles(
            f"{what}: {folder} holds {_files(len(found) + len(others))} ({names}); a date's folder must hold exactly"
            f" one {source} file ({_accepted_names(source)}){marked}. Multi-part delivery is not supported: combine"
            f" the parts into one file, move the others out of the folder, then run again; nothing was landed")
    if not found:
        raise SourceFileMissing(f"{what}: expected {expected_path(source, load_date)}; its folder holds no"
                                f" {source} file (accepted names: {_accepted_names(source)})")
    name, fmt, named_compression = found[0]
    path = os.path.join(folder, name)
    check_regular_file(path, what)
    compression = detect_compression(path, what)
    if compression != named_compression:
        logger.warning("%s: the name says %s but the content is %s: read as %s", path, named_compression,
                       compression, compression)
    return SourceFile(source=source, path=path, format=fmt, compression=compression)


def detect_compression(path: str, what: str) -> str:
    """none, gzip or zstd from the file's first bytes; refuse other compressed formats, and UTF-16 text."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    for magic, codec in MAGIC:
        if head.startswith(magic):
            if codec in READABLE_COMPRESSION:
                return codec
            raise SourceFileCompressed(
                f"{what}: {path} is a {codec}-compressed file; only plain, gzip and zstd files are read:"
                f" decompress it (or recompress it with gzip), then run again; nothing was landed")
    if head.startswith(UTF16_BOMS) or _utf16_without_bom(head):
        how = "byte order mark" if head.startswith(UTF16_BOMS) else "no byte order mark, but every other byte is 0"
        raise SourceFileInvalid(f"{what}: {path} is UTF-16 text ({how}); files must be UTF-8:"
                                f" convert it, then run again; nothing was landed")
    return "none"


def _utf16_without_bom(head: bytes) -> bool:
    """Whether a file's first bytes are ASCII text as UTF-16 (LE or BE) without a byte order mark: text, then a 0
    byte, twice. No UTF-8 JSON or CSV starts with a 0 byte in its first four."""
    return len(head) >= 4 and any(all(head[i] == 0 for i in zeros) and all(head[i] for i in text)
                                  for zeros, text in (((1, 3), (0, 2)), ((0, 2), (1, 3))))


class _Decompressing:
    """A decompressing stream whose damaged content is a SourceFileInvalid naming the file, not a bare EOFError."""

    def __init__(self, src: SourceFile, stream: BinaryIO) -> None:
        self._src, self._stream = src, stream

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except (EOFError, OSError, zlib.error) as err:  # gzip: EOFError, BadGzipFile, zlib.error; zstd: OSError
            raise SourceFileInvalid(
                f"{self._src.path}: cannot be decompressed as {self._src.compression} ({err}): the file is cut off"
                f" or damaged; have it delivered again, then run again; nothing was landed") from None

    def __enter__(self) -> _Decompressing:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()


def open_stream(src: SourceFile) -> BinaryIO:
    """The file's content as a binary stream, decompressed (damaged compressed content: SourceFileInvalid)."""
    if src.compression == "gzip":
        return _Decompressing(src, gzip.open(src.path, "rb"))  # type: ignore[return-value]
    if src.compression == "zstd":
        import pyarrow as pa

        return _Decompressing(src, pa.input_stream(src.path, compression="zstd"))  # type: ignore[return-value]
    return open(src.path, "rb")


def stat_key(path: str) -> tuple[int, int, int, int]:
    """What changes when a file is written to or replaced: (device, inode, size, mtime in ns)."""
    info = os.stat(path)
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def marker_path(source: str, load_date: dt.date) -> str | None:
    """The ready marker a source's date folder must hold (None: not required)."""
    marker = _ready_marker()
    return os.path.join(date_folder(source, load_date), marker) if marker else None


def is_ready(source: str, load_date: dt.date) -> bool:
    """Whether the date's folder may be landed: no marker required, or the marker is there."""
    path = marker_path(source, load_date)
    return path is None or os.path.lexists(path)


def not_ready_message(source: str, load_date: dt.date) -> str:
    """The one line saying a source is not ready."""
    return (f"{source} for {load_date} is not ready: {marker_path(source, load_date)} is missing ([landing]"
            f" ready_marker); the sender writes it once the day's file is complete. The date is not landed.")


def require_ready(source: str, load_date: dt.date) -> None:
    """Raise SourceNotReady when the marker is required and missing."""
    if not is_ready(source, load_date):
        raise SourceNotReady(not_ready_message(source, load_date))
