"""Vectorised text formatting and atomic file writers for the sample-data generator.

Rows are never formatted one by one: every column becomes a pyarrow string array (built with
``take`` from small lookup tables or with pyarrow compute kernels), records are assembled with
``binary_join_element_wise`` and the contiguous data buffer of the result is written as is.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DAY_SECONDS = 86_400
BAD_TIMESTAMP = "not-a-date"
_TOD: pa.Array | None = None
# price cents % 100 -> the digits Python's repr(round(x, 2)) prints after the point
_FRACTION = pa.array([(f"{f:02d}".rstrip("0") or "0") for f in range(100)], pa.string())


def enc(values: list[str | None]) -> pa.Array:
    """JSON-encode a (small) list of strings once; rows then ``take`` from it."""
    return pa.array([json.dumps(v) for v in values], pa.string())


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays / literals (no separator)."""
    return pc.binary_join_element_wise(*parts, "")


def _time_of_day() -> pa.Array:
    """All 86,400 "HH:MM:SS" strings, built once."""
    global _TOD
    if _TOD is None:
        s = np.arange(DAY_SECONDS)
        part = [pc.utf8_lpad(pc.cast(pa.array(x), pa.string()), 2, "0") for x in (s // 3600, s // 60 % 60, s % 60)]
        _TOD = pc.binary_join_element_wise(*part, ":")
    return _TOD


def int_text(values: np.ndarray, width: int = 0) -> pa.Array:
    txt = pc.cast(pa.array(values, pa.int64()), pa.string())
    return pc.utf8_lpad(txt, width, "0") if width else txt


def price_text(cents: np.ndarray) -> pa.Array:
    """Cents -> the shortest float text json.dumps would write for round(cents / 100, 2)."""
    cents = np.asarray(cents, np.int64)
    mag = np.abs(cents)
    sign = pc.if_else(pa.array(cents < 0), "-", "")
    return join(sign, int_text(mag // 100), ".", pc.take(_FRACTION, pa.array(mag % 100)))


def timestamp_text(day: dt.date, secs: np.ndarray, bad: np.ndarray | None = None) -> pa.Array:
    """Seconds relative to ``day`` 00:00 (may be negative or beyond one day) -> ISO text, no offset."""
    secs = np.asarray(secs, np.int64)
    off = np.clip(np.floor_divide(secs, DAY_SECONDS), -7, 7)
    prefix = pa.array([(day + dt.timedelta(days=d)).isoformat() + "T" for d in range(-7, 8)], pa.string())
    txt = join(pc.take(prefix, pa.array(off + 7)), pc.take(_time_of_day(), pa.array(secs % DAY_SECONDS)))
    return txt if bad is None else pc.if_else(pa.array(bad), BAD_TIMESTAMP, txt)


def id_text(prefix: str, day: dt.date, seq: np.ndarray, day_offset: np.ndarray, width: int) -> pa.Array:
    """``PREFIX_YYYYMMDD_000123``, where the date is ``day + day_offset`` (0 or -1)."""
    table = pa.array([f"{prefix}_{(day + dt.timedelta(days=d)).strftime('%Y%m%d')}_" for d in (-1, 0)])
    return join(pc.take(table, pa.array(np.asarray(day_offset, np.int64) + 1)), int_text(seq, width))


def quoted(raw: pa.Array, null: np.ndarray | None = None) -> pa.Array:
    """Raw strings -> JSON string literals; rows flagged in ``null`` become ``null``."""
    q = join('"', raw, '"')
    return q if null is None else pc.if_else(pa.array(null), "null", q)


def _data(arr: pa.Array) -> memoryview:
    """The concatenated UTF-8 bytes of a (null-free) string array, without copying."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        raise ValueError("unexpected null while assembling text")
    offsets = np.frombuffer(arr.buffers()[1], np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    return memoryview(arr.buffers()[2])[int(offsets[0]) : int(offsets[-1])]


class OutputNotWritable(OSError):
    """The output folder, or one under it, cannot be made or written in: another user's or read-only, or a file is
    where a folder goes (the writers raise it for these causes only: a full disk is said as what it is)."""


_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR}


def write_atomic(path: Path, parts: Iterable[bytes | memoryview]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(tmp, "wb")  # noqa: SIM115 - closed by the with below
    except OSError as err:
        if err.errno in _NOT_WRITABLE:
            raise OutputNotWritable(err.errno, err.strerror, err.filename) from err
        raise
    with fh:
        for part in parts:
            fh.write(part)
    os.replace(tmp, path)


def write_json(path: Path, columns: dict[str, pa.Array], ndjson: bool = False) -> None:
    """Columns of JSON literal text -> a json.dumps(indent=2) array, or NDJSON with one object per line."""
    keys = list(columns)
    n = len(columns[keys[0]])
    if ndjson:
        pieces: list[pa.Array | str] = []
        for i, k in enumerate(keys):
            pieces += [("{" if i == 0 else ", ") + f'"{k}": ', columns[k]]
        write_atomic(path, [_data(join(*pieces, "}\n"))] if n else [])
        return
    if n == 0:
        write_atomic(path, [b"[]"])
        return
    pieces = []
    for i, k in enumerate(keys):
        pieces += [("  {\n" if i == 0 else ",\n") + f'    "{k}": ', columns[k]]
    body = _data(join(*pieces, "\n  },\n"))
    write_atomic(path, [b"[\n", body[:-2], b"\n]"])


def write_csv(path: Path, columns: dict[str, pa.Array]) -> None:
    """Unquoted CSV with ``\\n`` line ends and no newline after the last row (like the seed files)."""
    header = ",".join(columns).encode()
    arrays = list(columns.values())
    if len(arrays[0]) == 0:
        write_atomic(path, [header])
        return
    body = _data(join(pc.binary_join_element_wise(*arrays, ","), "\n"))
    write_atomic(path, [header, b"\n", body[:-1]])
