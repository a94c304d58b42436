"""Streaming Arrow record batches into Postgres as `COPY ... FROM STDIN (FORMAT binary)`.

Binary COPY spares the server the text parsing of timestamps, numerics and integers (measured:
~40% less server time than CSV for the fact tables). Rows are never formatted one by one: each
batch is encoded column-wise with numpy/pyarrow kernels, and the encoded batch is handed to
psycopg's queued writer, so encoding the next batch overlaps with the server ingesting this one.

The Postgres binary COPY format: a signature and header, then per row an int16 field count and
per field an int32 byte length (-1 = NULL) followed by the value in the type's binary `recv` form
(all integers big-endian); a trailing int16 -1 ends the stream.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import struct
from collections.abc import Iterable, Sequence

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import as_strided
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

logger = logging.getLogger(__name__)

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_DAYS = 10_957  # 2000-01-01 - 1970-01-01
PG_EPOCH_US = PG_EPOCH_DAYS * 86_400 * 1_000_000
NUMERIC_INT_GROUPS = 5  # base-10000 digits before the point: covers |x| < 10^20
NUMERIC_POS, NUMERIC_NEG = 0x0000, 0x4000
# Postgres stores dates and timestamps from 4714-11-24 BC (Julian day 0) on; as days / microseconds
# since 1970-01-01 (Arrow's epoch), that is the first value below. A timestamp[us] ends before
# Postgres's last timestamp (294276 AD); a date32 may not (Postgres's last date is 5874897-12-31).
FIRST_DAY, END_DAY = -2_440_588, 2_145_042_906
FIRST_US = FIRST_DAY * 86_400 * 1_000_000
_INTEGERS = {2: pa.int16(), 4: pa.int32(), 8: pa.int64()}
_NUMPY = {pa.int16(): "i2", pa.int32(): "i4", pa.int64(): "i8", pa.uint8(): "u1", pa.float64(): "f8"}

# Postgres type (format_type text, without typmod) -> (DuckDB cast type, fixed payload bytes or None)
_TYPES: dict[str, tuple[str, int | None]] = {
    "smallint": ("smallint", 2),
    "integer": ("integer", 4),
    "bigint": ("bigint", 8),
    "boolean": ("boolean", 1),
    "date": ("date", 4),
    "timestamp without time zone": ("timestamp", 8),
    "timestamp with time zone": ("timestamptz", 8),
    "double precision": ("double", 8),
    "numeric": ("decimal", 8 + 2 * (NUMERIC_INT_GROUPS + 1)),
    "text": ("varchar", None),
    "character varying": ("varchar", None),
    "json": ("varchar", None),
    "jsonb": ("varchar", None),
}


class UnsupportedCopyType(TypeError):
    """A Postgres column type the binary COPY encoder cannot write (add it to binary_copy._TYPES)."""


class CopyValueRefused(ValueError):
    """A value its target column cannot hold exactly (out of the type's range, or digits it would lose)."""


@dataclasses.dataclass(frozen=True)
class PgColumn:
    """A target column: its name and its Postgres type as format_type() prints it."""

    name: str
    pg_type: str  # e.g. "numeric(18,2)", "timestamp without time zone", "text"

    @property
    def base_type(self) -> str:
        return self.pg_type.split("(")[0].strip()

    @property
    def duckdb_type(self) -> str:
        """The DuckDB type to cast the source column to before encoding."""
        if self.base_type == "numeric":
            precision, scale = _numeric_typmod(self)
            return f"decimal({precision},{scale})"
        return self._encoding[0]

    @property
    def fixed_width(self) -> int | None:
        """Payload bytes of every value, or None for variable-length (text-like) columns."""
        if self.base_type == "numeric":
            _numeric_typmod(self)  # refuse a numeric it cannot write before any row is sent
        return self._encoding[1]

    @property
    def _encoding(self) -> tuple[str, int | None]:
        if self.base_type not in _TYPES:
            raise UnsupportedCopyType(f"column {self.name}: no binary COPY encoder for {self.pg_type}")
        return _TYPES[self.base_type]


def _numeric_typmod(col: PgColumn) -> tuple[int, int]:
    try:
        precision, scale = (int(x) for x in col.pg_type.split("(")[1].rstrip(")").split(","))
    except (IndexError, ValueError):
        raise UnsupportedCopyType(f"column {col.name}: numeric needs an explicit (p,s), got {col.pg_type}") from None
    if precision > 18 or scale > 4:
        raise UnsupportedCopyType(f"column {col.name}: binary COPY supports numeric up to (18,4), got {col.pg_type}")
    return precision, scale


def table_columns(conn: psycopg.Connection, qualified_table: str) -> list[PgColumn]:
    """The columns of a table (schema.name) in their ordinal order, with their exact types."""
    rows = conn.execute(
        """select a.attname, format_type(a.atttypid, a.atttypmod)
           from pg_attribute as a
           where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped
           order by a.attnum""",
        [qualified_table],
    ).fetchall()
    return [PgColumn(name, pg_type) for name, pg_type in rows]


def copy_order(columns: Sequence[PgColumn]) -> list[PgColumn]:
    """Fixed-width columns first, so most of each row is one numpy block (COPY takes any order)."""
    return [c for c in columns if c.fixed_width] + [c for c in columns if not c.fixed_width]


# ------------------------------------------------------------------------------------ encoding
# A batch is encoded as slots, one per piece of a row: the field count, then per field its int32 length
# and its payload. The fixed slots (the same width in every row) are written side by side into one
# (rows x width) byte matrix, numbers made big-endian by numpy as it writes them (a text column whose
# values all have one length is a reshape of its Arrow data). A variable slot (a text, a NULL-able
# payload) has its own length in each row. Once the rows' offsets are known, each run of fixed slots is
# copied from the matrix into the output (one fixed-size value per row), and each variable slot from its
# source once per distinct length in the batch: no row is assembled part by part.
@dataclasses.dataclass(frozen=True)
class _Slot:
    """Bytes of every row at one place. Fixed: `width` bytes, `values` (one per row, or one for all) written
    as `dtype` into the slot's columns of the matrix. Variable: lengths[i] bytes from `source` at starts[i]."""

    width: int = 0
    values: np.ndarray | np.void | None = None
    dtype: str = ""
    lengths: np.ndarray | None = None
    source: np.ndarray | None = None
    starts: np.ndarray | None = None


def _constant(value: bytes) -> _Slot:
    return _Slot(len(value), np.void(value), f"V{len(value)}")


def _bytes(matrix: np.ndarray) -> tuple[np.ndarray, str]:  # a (rows x width) uint8 matrix: a value per row
    return np.ascontiguousarray(matrix).view(f"V{matrix.shape[1]}")[:, 0], f"V{matrix.shape[1]}"


def _write(dest: np.ndarray, slot: _Slot) -> None:
    dest.view(slot.dtype)[:, 0] = slot.values  # numbers are cast and byte-swapped by numpy as it writes


def _numbers(arr: pa.Array, to: pa.DataType) -> np.ndarray:
    """The values cast (checked) to `to`, NULLs as 0 (their payload is not sent, but is range-checked)."""
    arr, dtype = pc.cast(arr, to), np.dtype(_NUMPY[to])
    arr = pc.fill_null(arr, 0) if arr.null_count else arr  # read from its buffer: to_numpy imports pandas
    return np.frombuffer(arr.buffers()[1], dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def _valid(arr: pa.Array) -> np.ndarray:
    return _numbers(pc.is_valid(arr), pa.uint8()).view(bool)


def _fixed_values(col: PgColumn, arr: pa.Array) -> tuple[np.ndarray, str]:
    """The column's values and the dtype that writes them in their binary recv form (nulls: any value)."""
    base = col.base_type
    if base == "numeric":
        return _bytes(_numeric_payload(col, arr))
    if base in ("timestamp without time zone", "timestamp with time zone"):
        if not pa.types.is_timestamp(arr.type):
            raise UnsupportedCopyType(f"column {col.name}: expected an Arrow timestamp, got {arr.type}")
        us = _numbers(pc.cast(arr, pa.timestamp("us", tz=arr.type.tz)), pa.int64())
        return _postgres_time(col, us, np.int64), ">i8"
    if base == "date":
        days = _numbers(arr if pa.types.is_date32(arr.type) else pc.cast(arr, pa.date32()), pa.int32())
        return _postgres_time(col, days.astype(np.int64), np.int32), ">i4"
    if base == "boolean":
        return _numbers(arr, pa.uint8()), "u1"
    if base == "double precision":
        return _numbers(arr, pa.float64()), ">f8"
    # smallint / integer / bigint: a checked cast, so that a value out of range is refused, not wrapped
    width = col.fixed_width
    return _numbers(arr, _INTEGERS[width]), {2: ">i2", 4: ">i4", 8: ">i8"}[width]


def _postgres_time(col: PgColumn, values: np.ndarray, stored: type[np.integer]) -> np.ndarray:
    """Days or microseconds since 1970 (int64) as Postgres stores them: since 2000, in `stored` (int32 days,
    int64 microseconds), DuckDB's infinities as Postgres's.

    DuckDB writes 'infinity' / '-infinity' as the largest integer of the type and its negation;
    Postgres's are the largest and the smallest (DT_NOEND / DT_NOBEGIN, DATEVAL_NOEND / DATEVAL_NOBEGIN).
    A value outside Postgres's range is refused: shifted to Postgres's epoch it could wrap around
    into a valid-looking one (DuckDB's -infinity would become a timestamp in the year 294247).
    """
    days = stored is np.int32
    first, epoch = (FIRST_DAY, PG_EPOCH_DAYS) if days else (FIRST_US, PG_EPOCH_US)
    infinity = np.iinfo(stored).max
    if not len(values) or (values.min() >= first and values.max() < (END_DAY if days else infinity)):
        return values - epoch  # every value finite and in range: the common case, two passes
    infinite = (values == infinity) | (values == -infinity)
    early = ~infinite & (values < first)
    late = ~infinite & (values >= END_DAY) if days else np.zeros(len(values), dtype=bool)
    if early.any() or late.any():
        bad = int(values[early | late][0])
        where = "before 4714-11-24 BC" if early.any() else "after 5874897-12-31"
        raise CopyValueRefused(f"column {col.name} ({col.pg_type}): {bad} {'days' if days else 'microseconds'}"
                               f" since 1970-01-01 is {where}, outside the range Postgres stores")
    shifted = np.where(infinite, 0, values) - epoch
    limits = np.iinfo(stored)
    return np.where(values == infinity, limits.max, np.where(values == -infinity, limits.min, shifted))


_NUMERIC = np.dtype([("ndigits", ">i2"), ("weight", ">i2"), ("sign", ">u2"), ("dscale", ">u2"),
                     ("digits", ">i2", (NUMERIC_INT_GROUPS + 1,))])


def _numeric_payload(col: PgColumn, arr: pa.Array) -> np.ndarray:
    _, scale = _numeric_typmod(col)
    # the encoder reads decimal128 storage; other widths (decimal32/64/256) and scales are cast, checked
    if not pa.types.is_decimal128(arr.type) or arr.type.scale != scale or arr.type.precision > 18:
        if not pa.types.is_decimal(arr.type):  # e.g. integers: through a decimal wide enough for any of them
            arr = pc.cast(arr, pa.decimal128(38, scale))
        arr = pc.cast(arr, pa.decimal128(18, scale))
    arr = pc.fill_null(arr, pa.scalar(0, arr.type).cast(arr.type)) if arr.null_count else arr
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    # decimal128 is little-endian two's complement; |x| < 10^18 fits the low 64 bits exactly
    raw = np.frombuffer(arr.buffers()[1], dtype="<i8", count=2 * (arr.offset + len(arr)))
    unscaled = raw[0::2][arr.offset:]
    magnitude = np.abs(unscaled)
    integer, fraction = np.divmod(magnitude, 10 ** scale)
    out = np.zeros(len(arr), dtype=_NUMERIC)
    out["ndigits"] = NUMERIC_INT_GROUPS + 1
    out["weight"] = NUMERIC_INT_GROUPS - 1
    out["sign"] = np.where(unscaled < 0, NUMERIC_NEG, NUMERIC_POS)
    out["dscale"] = scale
    for group in range(NUMERIC_INT_GROUPS):  # most significant first; Postgres strips the zeros
        out["digits"][:, group] = (integer // 10_000 ** (NUMERIC_INT_GROUPS - 1 - group)) % 10_000
    out["digits"][:, NUMERIC_INT_GROUPS] = fraction * 10 ** (4 - scale)
    return out.view(np.uint8).reshape(len(arr), -1)


def _fixed_slots(col: PgColumn, arr: pa.Array) -> list[_Slot]:
    """[length, payload] of a fixed-width column; NULL = length -1 and no payload."""
    width = col.fixed_width
    try:
        payload = _Slot(width, *_fixed_values(col, arr))
    except pa.ArrowInvalid as err:  # a checked cast refused a value: say which column
        raise CopyValueRefused(f"column {col.name} ({col.pg_type}): {err}") from err
    if not arr.null_count:
        return [_constant(struct.pack(">i", width)), payload]
    valid, source = _valid(arr), _empty(len(arr) * width)
    _write(source.reshape(-1, width), payload)
    return [_Slot(4, np.where(valid, width, -1), ">i4"),
            _Slot(lengths=np.where(valid, width, 0), source=source, starts=np.arange(len(arr)) * width)]


def _text_slots(col: PgColumn, arr: pa.Array) -> list[_Slot]:
    """[length, bytes] of a text-like column; NULL = length -1 and no bytes. jsonb: a version byte first."""
    if not any(is_text(arr.type) for is_text in (pa.types.is_string, pa.types.is_binary, *_LARGE)):
        view = pa.types.is_string_view(arr.type) or pa.types.is_binary_view(arr.type)
        arr = pc.cast(arr if view else pc.cast(arr, pa.string()), pa.binary())
    valid = _valid(arr) if arr.null_count else None
    offsets = _offsets(arr)
    if valid is not None and np.diff(offsets)[~valid].any():  # Arrow lets a NULL span bytes: drop them
        arr = pc.fill_null(arr, pa.scalar(b"", pa.binary()).cast(arr.type))
        offsets = _offsets(arr)
    lengths, n = np.diff(offsets), len(arr)
    width, jsonb = int(lengths.max()), int(col.base_type == "jsonb")
    same = valid is None and lengths.min() == width
    if same:
        slots = [_constant(struct.pack(">i", width + jsonb))]
    else:
        slots = [_Slot(4, lengths + jsonb if valid is None else np.where(valid, lengths + jsonb, -1), ">i4")]
    if jsonb:
        slots.append(_constant(b"\x01") if valid is None else
                     _Slot(lengths=valid.astype(np.int64), source=np.ones(1, np.uint8), starts=np.zeros(n, np.int64)))
    if not width:
        return slots
    data = np.frombuffer(arr.buffers()[2], np.uint8)
    if same:  # every value as long: the data is the slot, row by row
        return [*slots, _Slot(width, *_bytes(data[offsets[0] : offsets[-1]].reshape(n, width)))]
    return [*slots, _Slot(lengths=lengths, source=data, starts=offsets[:-1])]


_LARGE = (pa.types.is_large_string, pa.types.is_large_binary)


def _offsets(arr: pa.Array) -> np.ndarray:
    dtype = np.dtype(np.int64 if any(is_large(arr.type) for is_large in _LARGE) else np.int32)
    return np.frombuffer(arr.buffers()[1], dtype, count=len(arr) + 1, offset=arr.offset * dtype.itemsize).astype(np.int64)


def _empty(size: int) -> np.ndarray:
    """A uint8 array from Arrow's memory pool, which keeps freed memory for the next batch (numpy's
    malloc gives large blocks back to the system, and each batch paid the page faults again)."""
    return np.frombuffer(pa.allocate_buffer(size), np.uint8)


def _windows(buffer: np.ndarray, size: int) -> np.ndarray:
    """Every run of `size` bytes of a uint8 buffer as one value (window i = buffer[i : i + size])."""
    return as_strided(buffer, shape=(len(buffer) - size + 1, size), strides=(1, 1)).view(f"V{size}")[:, 0]


def _same(values: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
    """(value, the positions holding it) for each positive value of a non-negative integer array."""
    counts = np.bincount(values)
    present = np.flatnonzero(counts[1:]) + 1  # a length 0 has no bytes to copy
    if len(present) <= 16:
        return [(int(v), np.flatnonzero(values == v)) for v in present]
    order = np.argsort(values, kind="stable")[counts[0] :]
    return zip(present.tolist(), np.split(order, np.cumsum(counts[present])[:-1]), strict=True)


def encode_batch(batch: pa.RecordBatch, columns: Sequence[PgColumn]) -> memoryview:
    """One batch (columns in `columns` order) as binary COPY rows, without header or trailer."""
    n = batch.num_rows
    if n == 0:
        return memoryview(b"")
    slots = [_constant(struct.pack(">h", len(columns)))]
    for col, arr in zip(columns, batch.columns, strict=True):
        slots.extend(_fixed_slots(col, arr) if col.fixed_width is not None else _text_slots(col, arr))
    fixed = [s for s in slots if s.lengths is None]
    width = sum(s.width for s in fixed)
    rows = _empty(n * width).reshape(n, width)
    template = b"".join(s.values.tobytes() if isinstance(s.values, np.void) else bytes(s.width) for s in fixed)
    rows.view(f"V{width}")[:, 0] = np.void(template)  # the constants of every row, in one write
    for slot, column in zip(fixed, itertools.accumulate((s.width for s in fixed), initial=0)):
        if not isinstance(slot.values, np.void):
            _write(rows[:, column : column + slot.width], slot)
    if len(fixed) == len(slots):
        return memoryview(rows.reshape(-1))
    row_bytes = width + sum(s.lengths for s in slots if s.lengths is not None)
    ends = np.cumsum(row_bytes)
    at, out = ends - row_bytes, _empty(int(ends[-1]))  # at: where each row's next slot goes
    column = 0
    for is_fixed, run in itertools.groupby(slots, key=lambda s: s.lengths is None):
        if is_fixed:  # a run of fixed slots: one value per row, from the matrix
            size = sum(s.width for s in run)
            _windows(out, size)[at] = rows[:, column : column + size].view(f"V{size}")[:, 0]
            at, column = at + size, column + size
        for slot in () if is_fixed else run:  # a variable slot: its rows grouped by length, a group at a time
            for size, which in _same(slot.lengths):
                _windows(out, size)[at[which]] = _windows(slot.source, size)[slot.starts[which]]
            at += slot.lengths
    return memoryview(out)


class BoundedQueuedWriter(QueuedLibpqWriter):
    """psycopg's queued COPY writer (encoding overlaps sending) with a short queue.

    psycopg's default queue holds up to 1024 chunks of 128 KiB: when Postgres ingests slower than
    batches are encoded (a preload beside other work), up to 128 MiB of copies of encoded batches
    wait in it. Here the encoder blocks once `chunks` chunks wait, so a COPY holds about one encoded
    batch plus 8 MiB. Measured on a max-volume day's 500K-row fact_orders preload (with 64K-row
    batches): peak RSS of the process 337 -> 256 MiB, same speed.
    """

    def __init__(self, cursor: psycopg.Cursor, *, chunks: int = 64) -> None:
        super().__init__(cursor)
        self._queue = queue.Queue(maxsize=chunks)  # replaces psycopg's (same type, smaller bound)


def copy_batches(
    conn: psycopg.Connection, table: sql.Composable, columns: Sequence[PgColumn],
    batches: Iterable[pa.RecordBatch], *, freeze: bool = False,
) -> int:
    """COPY the batches (columns in `columns` order) into `table`; return the rows sent.

    `freeze`: load the rows already frozen (COPY ... FREEZE; the table must have been created in
    the current transaction). The index builds and the first readers after the commit then find
    every tuple visible without setting hint bits, i.e. without dirtying and rewriting every page.
    """
    for col in columns:  # an unsupported column is refused before COPY starts
        col.fixed_width  # noqa: B018 - raises UnsupportedCopyType
    statement = sql.SQL("copy {} ({}) from stdin (format binary{})").format(
        table, sql.SQL(", ").join(sql.Identifier(c.name) for c in columns), sql.SQL(", freeze" if freeze else "")
    )
    rows = 0
    with conn.cursor() as cur:
        with cur.copy(statement, writer=BoundedQueuedWriter(cur)) as copy:
            copy.write(SIGNATURE)
            for batch in batches:
                if batch.num_rows:
                    copy.write(encode_batch(batch, columns))
                    rows += batch.num_rows
            copy.write(TRAILER)
    return rows
