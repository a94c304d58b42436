"""The binary COPY encoder (pipeline/serving/binary_copy.py) against a real Postgres.

Every column type the encoder supports, with NULLs in every column and each type's extremes, is
encoded from Arrow, copied in with `copy_batches` (as publish does) and selected back value for value.
Types it cannot write, and values a column cannot hold, are refused with an error naming the column.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import struct
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from pipeline.serving import binary_copy
from pipeline.serving.binary_copy import CopyValueRefused, UnsupportedCopyType

UTC = dt.timezone.utc
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1

# (column, Postgres type, Arrow type): one column per supported type, numerics at several typmods
COLUMNS: list[tuple[str, str, pa.DataType]] = [
    ("row_id", "integer", pa.int32()),
    ("small", "smallint", pa.int16()),
    ("body", "text", pa.string()),
    ("whole", "integer", pa.int32()),
    ("big", "bigint", pa.int64()),
    ("flag", "boolean", pa.bool_()),
    ("label", "character varying(40)", pa.string()),
    ("day", "date", pa.date32()),
    ("ts", "timestamp without time zone", pa.timestamp("us")),
    ("tstz", "timestamp with time zone", pa.timestamp("us", tz="UTC")),
    ("dbl", "double precision", pa.float64()),
    ("money", "numeric(18,2)", pa.decimal128(18, 2)),
    ("units", "numeric(18,0)", pa.decimal128(18, 0)),
    ("rate", "numeric(18,4)", pa.decimal128(18, 4)),
    ("share", "numeric(4,4)", pa.decimal128(4, 4)),
    ("small_money", "numeric(5,2)", pa.decimal128(5, 2)),
    ("doc", "json", pa.string()),
    ("docb", "jsonb", pa.string()),
]
NAMES = [name for name, _, _ in COLUMNS]

LONG = "€" * 400_000  # 1.2 MB of UTF-8: a length prefix well past 16 bits
NON_ASCII = "Ünïcödé — 日本語 🛒 \u200b"
AWKWARD = "tab\there\nnewline \\N \\. 'quote' \"dq\" NULL , ;"

# rows as Python values (what psycopg gives back); row_id 1..n
VALUES: dict[str, list[Any]] = {
    "small": [-32768, 32767, 0, -1, 1],
    "body": ["", LONG, NON_ASCII, AWKWARD, "x"],
    "whole": [-(2**31), 2**31 - 1, 0, -1, 1],
    "big": [-(2**63), 2**63 - 1, 0, -1, 1],
    "flag": [True, False, True, False, True],
    "label": ["", "ä" * 40, NON_ASCII, "short", "x"],  # 40 characters (80 bytes) fill varchar(40)
    "day": [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2000, 1, 1), dt.date(1999, 12, 31), dt.date(1970, 1, 1)],
    "ts": [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(2000, 1, 1),
           dt.datetime(1999, 12, 31, 23, 59, 59, 999999), dt.datetime(1969, 12, 31, 23, 59, 59, 1)],
    "tstz": [dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
             dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
             dt.datetime(2025, 12, 14, 3, 4, 5, 678901, tzinfo=UTC)],
    "dbl": [-1.7976931348623157e308, 1.7976931348623157e308, 5e-324, -0.0, math.nan],
    "money": [Decimal("-9999999999999999.99"), Decimal("9999999999999999.99"), Decimal("0.00"), Decimal("-0.01"),
              Decimal("0.01")],
    "units": [Decimal("-999999999999999999"), Decimal("999999999999999999"), Decimal("0"), Decimal("-1"),
              Decimal("10000")],
    "rate": [Decimal("-99999999999999.9999"), Decimal("99999999999999.9999"), Decimal("0.0000"),
             Decimal("-0.0001"), Decimal("0.0001")],
    "share": [Decimal("-0.9999"), Decimal("0.9999"), Decimal("0.0000"), Decimal("-0.0001"), Decimal("0.0001")],
    "small_money": [Decimal("-999.99"), Decimal("999.99"), Decimal("0.00"), Decimal("-0.50"), Decimal("123.40")],
    "doc": ['{"a": [1, 2.5, null], "b": "ü"}', "[]", '""', "null", '{"nested": {"k": true}}'],
    "docb": ['{"a": [1, 2.5, null], "b": "ü"}', "{}", "0", '"日本"', '{"k": -1.5e3}'],
}
N = len(VALUES["small"])


def create_table(conn: psycopg.Connection, name: str, columns: list[tuple[str, str]]) -> list[binary_copy.PgColumn]:
    conn.execute(sql.SQL("create table {} ({})").format(
        sql.Identifier(name), sql.SQL(", ").join(sql.SQL("{} " + pg_type).format(sql.Identifier(col))
                                                 for col, pg_type in columns)))
    return binary_copy.table_columns(conn, name)


def batch(rows: list[dict[str, Any]], columns: list[binary_copy.PgColumn]) -> pa.RecordBatch:
    """The rows as an Arrow batch whose columns follow `columns` (each with its Arrow type from COLUMNS)."""
    types = {name: arrow for name, _, arrow in COLUMNS}
    arrays = [pa.array([r[c.name] for r in rows], types[c.name]) for c in columns]
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])


def comparable(value: Any) -> Any:
    """Floats by bits (NaN equals NaN, -0.0 differs from 0.0); everything else as it is."""
    if isinstance(value, float):
        return ("nan",) if math.isnan(value) else (value, math.copysign(1.0, value))
    return value


def expected_row(row: dict[str, Any]) -> tuple:
    return tuple(comparable(json.loads(row[n]) if n in ("doc", "docb") and row[n] is not None else row[n])
                 for n in NAMES)


def selected(conn: psycopg.Connection, table: str) -> list[tuple]:
    conn.execute("set timezone to 'UTC'")
    rows = conn.execute(sql.SQL("select {} from {} order by row_id").format(
        sql.SQL(", ").join(map(sql.Identifier, NAMES)), sql.Identifier(table))).fetchall()
    return [tuple(comparable(v) for v in row) for row in rows]


def all_rows() -> list[dict[str, Any]]:
    """N rows of values, then for every column a row that is NULL there only, then a row of NULLs only."""
    rows = [{"row_id": i + 1, **{n: VALUES[n][i] for n in VALUES}} for i in range(N)]
    for n in VALUES:
        rows.append({"row_id": len(rows) + 1, **{m: VALUES[m][len(rows) % N] for m in VALUES}, n: None})
    rows.append({"row_id": len(rows) + 1, **{n: None for n in VALUES}})
    return rows


@pytest.mark.parametrize("path", ["table order", "copy order", "through DuckDB"])
def test_every_supported_type_round_trips_with_nulls_and_extremes(fresh_db, path: str) -> None:
    rows = all_rows()
    with fresh_db.connect() as conn:
        columns = create_table(conn, "every_type", [(n, t) for n, t, _ in COLUMNS])
        assert [c.pg_type for c in columns] == [t for _, t, _ in COLUMNS]
        clean, with_nulls = rows[:N], rows[N:]
        if path == "table order":  # text columns between fixed-width ones: the encoder's blocks split there
            # a batch without NULLs (the encoder's one-block path), then one with NULLs in every column
            # (its per-column path), sliced so that its arrays start at an offset as a reader's may
            batches = [batch(clean, columns), batch(clean[:2] + with_nulls, columns).slice(2)]
        else:  # what publish sends: fixed-width columns first
            columns = binary_copy.copy_order(columns)
            assert (columns[0].name, columns[-1].name) == ("row_id", "docb")
            batches = [batch(clean, columns), batch(with_nulls, columns)]
        if path == "through DuckDB":  # as publish reads the lake: cast to each column's DuckDB type
            lake_rows = pa.Table.from_batches(batches)  # noqa: F841 - DuckDB finds it by name
            select = ", ".join(f'cast("{c.name}" as {c.duckdb_type}) as "{c.name}"' for c in columns)
            batches = duckdb.sql(f"select {select} from lake_rows").to_arrow_reader(7)
        sent = binary_copy.copy_batches(conn, sql.Identifier("every_type"), columns, batches)
        assert sent == len(rows)
        assert selected(conn, "every_type") == [expected_row(r) for r in rows]
        # text is stored byte for byte (json keeps its text as given)
        assert conn.execute("select octet_length(body), doc::text from every_type where row_id = 2").fetchone() == (
            len(LONG.encode()), "[]")


def test_an_empty_batch_sends_no_rows(fresh_db) -> None:
    with fresh_db.connect() as conn:
        columns = create_table(conn, "every_type", [(n, t) for n, t, _ in COLUMNS])
        assert bytes(binary_copy.encode_batch(batch([], columns), columns)) == b""
        assert binary_copy.copy_batches(conn, sql.Identifier("every_type"), columns, [batch([], columns)]) == 0
        assert conn.execute("select count(*) from every_type").fetchone() == (0,)


# ------------------------------------------------------------------ the ends of the time range
# Arrow holds dates and timestamps as integers since 1970-01-01; Postgres's range is narrower at the
# start (4714-11-24 BC) and a timestamp[us] ends before Postgres's (294276 AD). DuckDB writes its
# 'infinity' / '-infinity' as the largest integers (+-(2^31-1) days, +-(2^63-1) us).
JULIAN_DAY_ZERO = -2_440_588  # 4714-11-24 BC, the first day Postgres stores
LAST_POSTGRES_DAY = 2_145_042_905  # 5874897-12-31
DAY_US = 86_400 * 1_000_000


def test_dates_and_timestamps_at_the_ends_of_the_range_and_infinities(fresh_db) -> None:
    days = [JULIAN_DAY_ZERO, LAST_POSTGRES_DAY, INT32_MAX, -INT32_MAX, None]
    stamps = [JULIAN_DAY_ZERO * DAY_US, INT64_MAX - 1, INT64_MAX, -INT64_MAX, None]
    with fresh_db.connect() as conn:
        columns = create_table(conn, "ends", [("day", "date"), ("ts", "timestamp without time zone"),
                                              ("tstz", "timestamp with time zone")])
        data = pa.RecordBatch.from_arrays([
            pa.array(days, pa.int32()).cast(pa.date32()),
            pa.array(stamps, pa.int64()).cast(pa.timestamp("us")),
            pa.array(stamps, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        ], names=["day", "ts", "tstz"])
        binary_copy.copy_batches(conn, sql.Identifier("ends"), columns, [data])
        conn.execute("set timezone to 'UTC'")
        assert conn.execute("select day::text, ts::text, tstz::text from ends").fetchall() == [
            ("4714-11-24 BC", "4714-11-24 00:00:00 BC", "4714-11-24 00:00:00+00 BC"),
            ("5874897-12-31", "294247-01-10 04:00:54.775806", "294247-01-10 04:00:54.775806+00"),
            ("infinity", "infinity", "infinity"),
            ("-infinity", "-infinity", "-infinity"),
            (None, None, None),
        ]


def test_duckdb_infinities_arrive_as_postgres_infinities(fresh_db) -> None:
    with fresh_db.connect() as conn:
        columns = create_table(conn, "ends", [("day", "date"), ("ts", "timestamp without time zone"),
                                              ("tstz", "timestamp with time zone")])
        reader = duckdb.sql("select cast(v as date) as day, cast(v as timestamp) as ts, cast(v as timestamptz) as tstz"
                            " from (values ('infinity'), ('-infinity')) as t(v)").to_arrow_reader(10)
        binary_copy.copy_batches(conn, sql.Identifier("ends"), columns, reader)
        assert conn.execute("select day::text, ts::text, tstz::text from ends").fetchall() == [
            ("infinity", "infinity", "infinity"), ("-infinity", "-infinity", "-infinity")]


@pytest.mark.parametrize(("pg_type", "array", "message"), [
    ("date", pa.array([JULIAN_DAY_ZERO - 1], pa.int32()).cast(pa.date32()), "before 4714-11-24 BC"),
    ("date", pa.array([LAST_POSTGRES_DAY + 1], pa.int32()).cast(pa.date32()), "after 5874897-12-31"),
    ("timestamp without time zone", pa.array([JULIAN_DAY_ZERO * DAY_US - 1], pa.int64()).cast(pa.timestamp("us")),
     "before 4714-11-24 BC"),
    ("timestamp with time zone", pa.array([-(2**63)], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
     "before 4714-11-24 BC"),
], ids=["date-early", "date-late", "timestamp-early", "timestamptz-int64-min"])
def test_dates_and_timestamps_postgres_cannot_store_are_refused(fresh_db, pg_type, array, message) -> None:
    with fresh_db.connect() as conn:
        columns = create_table(conn, "t", [("ok", "integer"), ("at", pg_type)])
        data = pa.RecordBatch.from_arrays([pa.array([1], pa.int32()), array], names=["ok", "at"])
        with pytest.raises(CopyValueRefused, match=rf"column at \({re.escape(pg_type)}\): .*{message}"):
            binary_copy.copy_batches(conn, sql.Identifier("t"), columns, [data])


# ------------------------------------------------------------------ other Arrow types are converted
MONEY = [Decimal("-12.34"), Decimal("5.67"), Decimal("0.01")]  # several: a wrong stride shows from the 2nd on


@pytest.mark.parametrize(("pg_type", "array", "expected"), [
    ("smallint", pa.array([-128, 127, None], pa.int8()), [-128, 127, None]),
    ("bigint", pa.array([0, 2**40], pa.uint64()), [0, 2**40]),
    ("double precision", pa.array([1.5, -2.25], pa.float32()), [1.5, -2.25]),
    ("double precision", pa.array([math.inf, -math.inf], pa.float64()), [math.inf, -math.inf]),
    ("date", pa.array([dt.date(2025, 12, 14), None], pa.date64()), [dt.date(2025, 12, 14), None]),
    ("timestamp without time zone", pa.array([dt.datetime(2025, 12, 14, 1, 2, 3)], pa.timestamp("s")),
     [dt.datetime(2025, 12, 14, 1, 2, 3)]),
    ("timestamp without time zone", pa.array([dt.datetime(2025, 12, 14, 1, 2, 3, 4000)], pa.timestamp("ms")),
     [dt.datetime(2025, 12, 14, 1, 2, 3, 4000)]),
    ("timestamp without time zone", pa.array([dt.datetime(2025, 12, 14, 1, 2, 3, 5)], pa.timestamp("ns")),
     [dt.datetime(2025, 12, 14, 1, 2, 3, 5)]),
    ("timestamp with time zone",  # the instant is kept, whatever zone Arrow carries
     pa.array([dt.datetime(2025, 12, 14, 23, 30, tzinfo=UTC)], pa.timestamp("us", tz="America/New_York")),
     [dt.datetime(2025, 12, 14, 23, 30, tzinfo=UTC)]),
    ("numeric(18,2)", pa.array([Decimal("-12.34"), None], pa.decimal128(38, 2)), [Decimal("-12.34"), None]),
    ("numeric(18,2)", pa.array(MONEY, pa.decimal256(10, 2)), MONEY),
    ("numeric(18,2)", pa.array(MONEY, pa.decimal64(10, 2)), MONEY),
    ("numeric(18,2)", pa.array(MONEY, pa.decimal32(5, 2)), MONEY),
    ("numeric(18,2)", pa.array([Decimal("7")], pa.decimal128(10, 0)), [Decimal("7.00")]),
    ("numeric(18,4)", pa.array([1, -2], pa.int64()), [Decimal("1.0000"), Decimal("-2.0000")]),
    ("text", pa.array(["a", None, "ü"], pa.large_string()), ["a", None, "ü"]),
    ("text", pa.array(["a", None, "ü"], pa.string_view()), ["a", None, "ü"]),
    ("text", pa.array([42, None], pa.int64()), ["42", None]),
], ids=["int8", "uint64", "float32", "infinities", "date64", "ts-s", "ts-ms", "ts-ns", "tstz-zone", "decimal38",
        "decimal256", "decimal64", "decimal32", "scale-up", "int-to-numeric", "large-string", "string-view",
        "int-to-text"])
def test_other_arrow_types_are_converted_exactly(fresh_db, pg_type: str, array: pa.Array, expected: list) -> None:
    with fresh_db.connect() as conn:
        columns = create_table(conn, "t", [("v", pg_type)])
        binary_copy.copy_batches(conn, sql.Identifier("t"), columns, [pa.RecordBatch.from_arrays([array], ["v"])])
        conn.execute("set timezone to 'UTC'")
        assert [v for (v,) in conn.execute("select v from t").fetchall()] == expected


# ------------------------------------------------------------------ refused, never silently changed
@pytest.mark.parametrize(("pg_type", "array", "message"), [
    ("smallint", pa.array([40_000], pa.int32()), "not in range"),
    ("integer", pa.array([2**31], pa.int64()), "not in range"),
    ("bigint", pa.array([2**63], pa.uint64()), "not in range"),
    ("integer", pa.array([1.5], pa.float64()), "truncated"),
    ("numeric(18,2)", pa.array([Decimal("1.234")], pa.decimal128(10, 3)), "data loss"),
    ("numeric(18,2)", pa.array([Decimal("1e17")], pa.decimal128(38, 2)), "precision"),
    ("timestamp without time zone", pa.array([1_000_000_001], pa.int64()).cast(pa.timestamp("ns")), "lose data"),
], ids=["smallint", "integer", "bigint", "fraction-to-integer", "numeric-digits", "numeric-precision",
        "nanoseconds"])
def test_values_the_column_cannot_hold_exactly_are_refused(fresh_db, pg_type, array, message) -> None:
    with fresh_db.connect() as conn:
        columns = create_table(conn, "t", [("v", pg_type)])
        with pytest.raises(CopyValueRefused, match=rf"column v \({re.escape(pg_type)}\): .*{message}"):
            binary_copy.copy_batches(conn, sql.Identifier("t"), columns, [pa.RecordBatch.from_arrays([array], ["v"])])


def test_a_numeric_wider_than_its_column_is_refused_by_postgres(fresh_db) -> None:
    with fresh_db.connect() as conn:
        columns = create_table(conn, "t", [("v", "numeric(5,2)")])
        data = pa.RecordBatch.from_arrays([pa.array([Decimal("1000.00")], pa.decimal128(18, 2))], ["v"])
        with pytest.raises(psycopg.errors.NumericValueOutOfRange, match="numeric field overflow"):
            binary_copy.copy_batches(conn, sql.Identifier("t"), columns, [data])


def test_text_too_long_for_a_varchar_is_refused_by_postgres(fresh_db) -> None:
    with fresh_db.connect() as conn:
        columns = create_table(conn, "t", [("v", "character varying(3)")])
        data = pa.RecordBatch.from_arrays([pa.array(["abcd"])], ["v"])
        with pytest.raises(psycopg.errors.StringDataRightTruncation, match="too long"):
            binary_copy.copy_batches(conn, sql.Identifier("t"), columns, [data])


@pytest.mark.parametrize("pg_type", [
    "uuid", "bytea", "real", "time without time zone", "interval", "integer[]", "character(3)",
    "timestamp(3) without time zone", "numeric", "numeric(19,2)", "numeric(18,5)",
])
def test_a_column_type_it_cannot_write_is_refused_naming_the_column(fresh_db, pg_type: str) -> None:
    with fresh_db.connect() as conn:
        columns = create_table(conn, "t", [("fine", "integer"), ("odd", pg_type)])
        data = pa.RecordBatch.from_arrays([pa.array([1], pa.int32()), pa.array([None], pa.null())], ["fine", "odd"])
        with pytest.raises(UnsupportedCopyType, match=r"column odd: .*" + re.escape(pg_type)):
            binary_copy.copy_order(columns)
        with pytest.raises(UnsupportedCopyType, match="column odd"):
            binary_copy.copy_batches(conn, sql.Identifier("t"), columns, [data])
        with pytest.raises(UnsupportedCopyType, match="column odd"):
            columns[1].duckdb_type  # noqa: B018 - what publish asks first


def test_an_arrow_type_that_does_not_fit_the_column_is_refused(fresh_db) -> None:
    with fresh_db.connect() as conn:
        columns = create_table(conn, "t", [("at", "timestamp without time zone")])
        data = pa.RecordBatch.from_arrays([pa.array([dt.date(2025, 12, 14)], pa.date32())], ["at"])
        with pytest.raises(UnsupportedCopyType, match="column at: expected an Arrow timestamp, got date32"):
            binary_copy.copy_batches(conn, sql.Identifier("t"), columns, [data])


# ------------------------------------------------------------------ the bytes, against a reference encoder
def reference_rows(data: pa.RecordBatch, columns: list[binary_copy.PgColumn]) -> bytes:
    """The rows encoded value by value with struct, as Postgres's binary COPY format describes them."""
    fields = []
    for col, arr in zip(columns, data.columns, strict=True):
        if col.base_type == "date":
            arr = arr.cast(pa.int32())
        elif col.base_type.startswith("timestamp"):
            arr = arr.cast(pa.timestamp("us", tz=arr.type.tz)).cast(pa.int64())
        fields.append([reference_field(col, v) for v in arr.to_pylist()])
    return b"".join(struct.pack(">h", len(columns)) + b"".join(row) for row in zip(*fields, strict=True))


def reference_field(col: binary_copy.PgColumn, value: Any) -> bytes:
    if value is None:
        return struct.pack(">i", -1)
    base = col.base_type
    if base == "date":
        payload = struct.pack(">i", {INT32_MAX: INT32_MAX, -INT32_MAX: -(2**31)}.get(value, value - 10_957))
    elif base.startswith("timestamp"):
        payload = struct.pack(">q", {INT64_MAX: INT64_MAX, -INT64_MAX: -(2**63)}.get(value, value - 10_957 * DAY_US))
    elif base == "numeric":
        scale = int(col.pg_type.rstrip(")").split(",")[1])
        integer, fraction = divmod(abs(int(value.scaleb(scale))), 10**scale)
        groups = [integer // 10_000**g % 10_000 for g in range(4, -1, -1)] + [fraction * 10 ** (4 - scale)]
        payload = struct.pack(">hhHH6h", 6, 4, 0x4000 if value < 0 else 0, scale, *groups)
    elif base in ("text", "character varying", "json", "jsonb"):
        payload = (b"\x01" if base == "jsonb" else b"") + value.encode()
    else:
        payload = struct.pack({"smallint": ">h", "integer": ">i", "bigint": ">q", "boolean": ">?",
                               "double precision": ">d"}[base], value)
    return struct.pack(">i", len(payload)) + payload


def test_the_encoded_bytes_are_those_of_a_value_by_value_encoder() -> None:
    columns = [binary_copy.PgColumn(n, t) for n, t, _ in COLUMNS]
    rows = all_rows()
    for order in (columns, binary_copy.copy_order(columns)):
        data = batch(rows[:3] + rows, order)
        for part in (data, data.slice(3)):  # the slice: arrays that start at an offset
            assert bytes(binary_copy.encode_batch(part, order)) == reference_rows(part, order)
    fixed = [c for c in columns if c.fixed_width]
    clean = batch(rows[:N], fixed)  # no NULL and no text: every row has the same layout
    assert bytes(binary_copy.encode_batch(clean, fixed)) == reference_rows(clean, fixed)


def test_the_bytes_of_texts_of_many_lengths_and_odd_arrow_layouts() -> None:
    columns = [binary_copy.PgColumn("a", "text"), binary_copy.PgColumn("n", "integer"),
               binary_copy.PgColumn("b", "jsonb"), binary_copy.PgColumn("c", "text")]
    texts = [None if i % 7 == 3 else "é" * (i % 40) + str(i) for i in range(500)]  # > 16 distinct lengths
    numbers = [None if i % 5 == 1 else i for i in range(500)]
    docs = [None if i % 3 else f'{{"k": {i}}}' for i in range(500)]
    # a NULL whose offsets span bytes ("bcd"), as Arrow allows
    spanning = pa.StringArray.from_buffers(500, pa.py_buffer(np.array([0, 1] + [4] * 499, np.int32)),
                                           pa.py_buffer(b"abcd"), pa.array([i != 1 for i in range(500)]).buffers()[1])
    for text_type in (pa.string(), pa.large_string(), pa.string_view()):
        data = pa.RecordBatch.from_arrays(
            [pa.array(texts, text_type), pa.array(numbers, pa.int32()), pa.array(docs, pa.string()), spanning],
            names=["a", "n", "b", "c"])
        for part in (data, data.slice(3, 250)):
            assert bytes(binary_copy.encode_batch(part, columns)) == reference_rows(part, columns)
