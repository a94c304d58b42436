"""Line accounting at landing: every physical line (or JSON record) of a source is a raw row or a rejected one.

Real files in, real DuckDB, real Parquet out. The bad line goes first, in the middle and last, in
plain, CRLF and compressed files, and whichever way the landing reads the file (DuckDB directly, or
line by line when the direct read does not give one record per line) the result is the same.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re

import duckdb
import pyarrow as pa
import pytest

from pipeline import lake
from pipeline.ingest import landing
from pipeline.ingest.lines import SELF_CONTAINED_CSV, blank_lines, csv_line_safe, scan
from tests.support.files import write

D = dt.date(2025, 12, 15)
HEADER = "event_id,user_id,product_id,event_type,event_ts"



def event_lines(n: int, bad: dict[int, str] | None = None) -> list[str]:
    """A header and n event lines; `bad` replaces physical line numbers (the header is line 1)."""
    lines = [HEADER] + [f"E{i},U{i},P{i % 7},view_product,2025-12-15T10:{i % 60:02d}:00" for i in range(2, n + 2)]
    for number, text in (bad or {}).items():
        lines[number - 1] = text
    return lines


def encode(lines: list[str], newline: str = "\n", final: bool = True) -> bytes:
    return (newline.join(lines) + (newline if final else "")).encode()


def raw_ids(table: str = "events") -> list[tuple]:
    column = "event_id" if table == "events" else "order_id"
    return duckdb.sql(f"select {column}, _row_number from read_parquet($p) order by _row_number",
                      params={"p": lake.partition_file("raw", table, D)}).fetchall()


def rejected(source: str = "events") -> list[tuple]:
    return duckdb.sql("select line_number, raw_text, error, source_file from read_parquet($p) order by 1",
                      params={"p": lake.partition_file("audit", "rejected_lines", D, source_table=source)}).fetchall()


def accounted(manifest: dict) -> tuple[int, int, int]:
    assert manifest["source_records"] == manifest["rows"] + manifest["rejected_count"], manifest
    return manifest["rows"], manifest["rejected_count"], manifest["source_records"]


UNTERMINATED = 'E{n},"U{n},P1,view_product,2025-12-15T10:00:00'
COMPRESS = {"plain": (lambda b: b, "events.csv"), "gzip": (gzip.compress, "events.csv.gz"),
            "zstd": (lambda b: pa.compress(b, codec="zstd", asbytes=True), "events.csv.zst")}


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("compression", list(COMPRESS))
@pytest.mark.parametrize("line", [2, 11, 20001], ids=["first", "line-11", "last"])
def test_one_unterminated_quote_rejects_that_line_only(lake_root, incoming, line, compression, newline):
    """The headline case: 20,000 events, one unterminated quote: 19,999 land, exactly that line is rejected."""
    compress, name = COMPRESS[compression]
    lines = event_lines(20_000, {line: UNTERMINATED.format(n=line)})
    path = write(incoming, f"events/{D}/{name}", compress(encode(lines, newline)))
    manifest = landing.land_events(D)
    assert manifest["rows"] == 19_999, "the other 19,999 lines land"
    assert accounted(manifest) == (19_999, 1, 20_000)
    (bad,) = rejected()
    assert bad[0] == line and bad[1] == lines[line - 1] and bad[3] == str(path)
    assert "quote" in bad[2]
    landed = raw_ids()
    assert [r[1] for r in landed] == list(range(1, 20_000)), "_row_number numbers the accepted lines in file order"
    assert [r[0] for r in landed] == [text.split(",")[0] for n, text in enumerate(lines[1:], start=2) if n != line]


def test_the_last_line_without_a_line_end_is_a_line(lake_root, incoming):
    write(incoming, f"events/{D}/events.csv", encode(event_lines(50), final=False))
    assert accounted(landing.land_events(D)) == (50, 0, 50)
    assert raw_ids()[-1] == ("E51", 50)


CUT_OFF = "its last line, 51, has no line end and cannot be read: the file was probably cut off"


@pytest.mark.parametrize("compression", ["plain", "gzip"])
@pytest.mark.parametrize("last", [UNTERMINATED.format(n=51), "E51,U51,P1,view_pro"], ids=["in-a-quote", "short"])
def test_a_file_cut_off_mid_line_is_refused(lake_root, incoming, last, compression):
    """An export that stopped mid-line: landed, the rest of the day would pass as complete (one rejected line)."""
    compress, name = COMPRESS[compression]
    lines = event_lines(50, {51: last})
    write(incoming, f"events/{D}/{name}", compress(encode(lines, final=False)))
    with pytest.raises(landing.SourceFileInvalid, match=re.escape(CUT_OFF)):
        landing.land_events(D)
    assert not os.path.exists(lake.partition_dir("raw", "events", D))
    write(incoming, f"events/{D}/{name}", compress(encode(lines)))  # as the message says: a line end, and it is
    assert accounted(landing.land_events(D)) == (49, 1, 50)  # one rejected line
    assert [r[0] for r in rejected()] == [51]


@pytest.mark.parametrize("bad", [
    {5: 'E5,"U\nX'},  # a quoted value over two lines (the second line closes it)
    {5: 'E5,U5 "x,y,"z,view_product,t'},  # even quotes, yet the quoting runs on to the next line
    {5: "E5,U5\r,P1,view_product,t"},  # a carriage return that is no line end
    {3: 'E3,"U3,P,v,t', 8: 'E8,"U8,P,v,t'},  # two unterminated quotes: a reader pairs them
], ids=["quoted-newline", "even-quotes-running-on", "stray-cr", "two-unterminated"])
def test_lines_whose_quoting_runs_on_are_rejected_one_by_one(lake_root, incoming, bad):
    lines = event_lines(12, {n: text for n, text in bad.items()})
    write(incoming, f"events/{D}/events.csv", encode(lines))
    physical = encode(lines).decode().split("\n")[1:-1]
    manifest = landing.land_events(D)
    assert manifest["read_path"] == "line-safe"
    rejected_numbers = [r[0] for r in rejected()]
    assert accounted(manifest) == (len(physical) - len(rejected_numbers), len(rejected_numbers), len(physical))
    expected = sorted({n for n in bad} | ({6} if "\n" in bad.get(5, "") else set()))
    assert rejected_numbers == expected


def test_blank_lines_are_no_records_and_line_numbers_stay_physical(lake_root, incoming):
    lines = event_lines(6)
    text = "\n".join([lines[0], "", lines[1], "", "", lines[2], "E4,U4", lines[4], "\r", lines[5], lines[6]]) + "\n\n"
    write(incoming, f"events/{D}/events.csv", text.encode())
    manifest = landing.land_events(D)
    assert manifest["blank_lines"] == 5 and accounted(manifest) == (5, 1, 6)
    assert [r[0] for r in rejected()] == [7], "the short line is line 7 of the file, blank lines counted"


def test_blank_lines_without_a_bad_line_keep_the_direct_read(lake_root, incoming):
    lines = event_lines(4)
    write(incoming, f"events/{D}/events.csv", ("\n".join(lines[:3] + ["", ""] + lines[3:]) + "\n\n").encode())
    manifest = landing.land_events(D)
    assert (manifest["read_path"], manifest["blank_lines"]) == ("direct", 3)
    assert accounted(manifest) == (4, 0, 4)


@pytest.mark.parametrize(("content", "fragment"), [
    (HEADER + '\nE1,"U1,P1,v,t\nE2,"U2,P2,v,t\n', "none of its 2 record(s) could be landed"),
    (HEADER + "\nE1,U1\n\nE2\n", "none of its 2 record(s) could be landed"),
], ids=["every-line-bad", "every-line-short"])
def test_a_file_without_a_landable_line_fails_and_lands_nothing(lake_root, incoming, content, fragment):
    write(incoming, f"events/{D}/events.csv", content.encode())
    with pytest.raises(landing.SourceFileInvalid, match=re.escape(fragment)):
        landing.land_events(D)
    assert not os.path.exists(lake.partition_dir("raw", "events", D))
    assert not os.path.exists(landing.manifest_path("events", D))


def test_rejected_lines_at_the_csv_readers_buffer_boundary_lose_no_line(lake_root, incoming):
    """DuckDB's parallel CSV reader drops every line after an 8,000,000-byte buffer boundary that a rejected
    line straddles: the accounting sees it, and the line-safe path's reading loses none."""
    lines, size, bad = [HEADER], len(HEADER) + 1, []
    while size < 8_300_000:
        text = f"E{len(lines)},U{len(lines) % 997},P{len(lines) % 7},view_product,2025-12-15T10:00:00"
        if abs(size - 8_000_000) < 200:  # a few lines with an extra field around the boundary
            text += ",extra"
            bad.append(len(lines) + 1)
        lines.append(text)
        size += len(text) + 1
    write(incoming, f"events/{D}/events.csv", encode(lines))
    manifest = landing.land_events(D)
    assert accounted(manifest) == (len(lines) - 1 - len(bad), len(bad), len(lines) - 1)
    assert [r[0] for r in rejected()] == bad
    assert raw_ids()[-1] == (f"E{len(lines) - 1}", len(lines) - 1 - len(bad)), "the file's last line landed"


def test_either_read_path_gives_the_same_partition(lake_root, incoming):
    """A line the direct read accepts is landed identically when another line forces the line-safe path."""
    lines = event_lines(30, {9: "E9,U9", 20: 'E20,"U,20",P1,view_product,2025-12-15T10:00:00'})
    write(incoming, f"events/{D}/events.csv", encode(lines))
    direct = landing.land_events(D)
    first = duckdb.sql("select * exclude (_ingested_at) from read_parquet($p)",
                       params={"p": lake.partition_file("raw", "events", D)}).fetchall()
    assert [r[0] for r in rejected()] == [9]
    os.remove(landing.manifest_path("events", D))
    lines[8] = UNTERMINATED.format(n=9)  # line 9 is still rejected, but now its quote would run on
    write(incoming, f"events/{D}/events.csv", encode(lines))
    safe = landing.land_events(D)
    assert (direct["read_path"], safe["read_path"]) == ("direct", "line-safe")
    again = duckdb.sql("select * exclude (_ingested_at) from read_parquet($p)",
                       params={"p": lake.partition_file("raw", "events", D)}).fetchall()
    assert again == first
    assert [r[0] for r in rejected()] == [9]


def test_a_file_that_changes_while_it_is_landed_is_refused(lake_root, incoming, monkeypatch):
    """stat before and after: a writer appending meanwhile (here: right after the line count) is caught."""
    path = write(incoming, f"events/{D}/events.csv", encode(event_lines(100)))
    real_scan = scan

    def scan_then_append(src):
        scanned = real_scan(src)
        with open(path, "ab") as handle:
            handle.write(b"E999,U999,P1,view_product,2025-12-15T11:00:00\n")
        return scanned

    monkeypatch.setattr("pipeline.ingest.lines.scan", scan_then_append)
    with pytest.raises(landing.SourceFileUnstable, match="changed while it was being landed"):
        landing.land_events(D)
    assert not os.path.exists(landing.manifest_path("events", D))
    assert not os.path.exists(lake.partition_file("raw", "events", D))


# --------------------------------------------------------------------------------------- orders
ORDER = {"order_id": "ORD_1", "user_id": "USER_0001", "product_id": "PROD_0001", "quantity": 2,
         "price": 9.99, "timestamp": "2025-12-15T10:00:00", "status": "paid"}


def order_lines(n: int) -> list[str]:
    return [json.dumps({**ORDER, "order_id": f"ORD_{i}"}) for i in range(1, n + 1)]


@pytest.mark.parametrize("compression", ["plain", "gzip"])
@pytest.mark.parametrize("line", [1, 50, 100], ids=["first", "middle", "last"])
def test_a_malformed_ndjson_line_is_rejected_and_the_rest_landed(lake_root, incoming, line, compression):
    lines = order_lines(100)
    lines[line - 1] = '{"order_id": "ORD_X", "price": 1,'
    data = encode(lines)
    name = "orders.ndjson" + (".gz" if compression == "gzip" else "")
    write(incoming, f"orders/{D}/{name}", gzip.compress(data) if compression == "gzip" else data)
    manifest = landing.land_orders(D)
    assert accounted(manifest) == (99, 1, 100) and manifest["read_path"] == "line-safe"
    (bad,) = rejected("orders")
    assert bad[0] == line and bad[1] == lines[line - 1] and "not valid JSON" in bad[2]
    numbers = [r[1] for r in raw_ids("orders")]
    assert numbers == [n for n in range(1, 101) if n != line], "_row_number is the record's line; a gap marks the reject"


def test_ndjson_records_that_are_not_objects_and_undecodable_lines_are_rejected(lake_root, incoming):
    lines = [b"42", order_lines(1)[0].encode(), b"", b'"text"', b"null", b"[1]", b'{"order_id": "ORD_\xff"}',
             b"  ", b"true", order_lines(2)[1].encode()]
    write(incoming, f"orders/{D}/orders.ndjson", b"\r\n".join(lines) + b"\r\n")
    manifest = landing.land_orders(D)
    assert accounted(manifest) == (2, 6, 8) and manifest["blank_lines"] == 2
    got = [(r[0], r[2]) for r in rejected("orders")]
    assert [n for n, _ in got] == [1, 4, 5, 6, 7, 9]
    assert [r[1] for r in raw_ids("orders")] == [2, 10], "_row_number is the physical line, as line_number is"
    assert ["number" in got[0][1], "string" in got[1][1], "null" in got[2][1], "array" in got[3][1],
            "UTF-8" in got[4][1], "boolean" in got[5][1]] == [True] * 6


@pytest.mark.parametrize("content", [f"{HEADER}\nE1,U1,P1,view_pro", f"{HEADER}\r\nE1,\"U1,P1"], ids=["short", "quote"])
def test_a_file_of_one_line_cut_off_says_cut_off(lake_root, incoming, content):
    write(incoming, f"events/{D}/events.csv", content.encode())
    with pytest.raises(landing.SourceFileInvalid, match=re.escape(CUT_OFF.replace("51", "2"))):
        landing.land_events(D)


@pytest.mark.parametrize("blank", ["", "\n"], ids=["read-directly", "read-line-by-line"])
def test_an_ndjson_last_line_that_is_json_but_no_object_is_rejected_not_cut_off(lake_root, incoming, blank):
    """Either read path: `42` is whole JSON, so a missing line end after it is no sign of a cut."""
    write(incoming, f"orders/{D}/orders.ndjson", ("\n".join(order_lines(3)) + "\n" + blank + "42").encode())
    assert accounted(landing.land_orders(D)) == (3, 1, 4)


def test_an_ndjson_file_cut_off_mid_line_is_refused(lake_root, incoming):
    lines = order_lines(3)
    lines[-1] = lines[-1][:25]
    path = write(incoming, f"orders/{D}/orders.ndjson", "\n".join(lines).encode())
    with pytest.raises(landing.SourceFileInvalid, match=re.escape(CUT_OFF.replace("51", "3"))):
        landing.land_orders(D)
    assert not os.path.exists(lake.partition_dir("raw", "orders", D))
    path.write_bytes(path.read_bytes() + b"\n")
    assert accounted(landing.land_orders(D)) == (2, 1, 3)


def test_a_clean_ndjson_file_is_read_directly(lake_root, incoming):
    write(incoming, f"orders/{D}/orders.ndjson", encode(order_lines(20)))
    manifest = landing.land_orders(D)
    assert manifest["read_path"] == "direct" and accounted(manifest) == (20, 0, 20)
    assert rejected("orders") == []


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_json_array_elements_that_are_not_objects_are_rejected_with_their_position(lake_root, incoming, position):
    records: list = [{**ORDER, "order_id": f"ORD_{i}"} for i in range(1, 6)]
    where = {"first": 0, "middle": 2, "last": 5}[position]
    records.insert(where, None)
    write(incoming, f"orders/{D}/orders.json", json.dumps(records).encode())
    manifest = landing.land_orders(D)
    assert accounted(manifest) == (5, 1, 6)
    (bad,) = rejected("orders")
    assert bad[0] == where + 1 and bad[1] == "null" and bad[2].startswith("array element: a JSON null")
    assert [r[1] for r in raw_ids("orders")] == [n for n in range(1, 7) if n != where + 1]


def test_catalog_elements_that_are_not_objects_are_rejected_too(lake_root, incoming):
    write(incoming, "products/products_2025-12-15.json",
          json.dumps([{"product_id": "PROD_0001", "current_price": 1}, "PROD_0002"]).encode())
    manifest = landing.land_catalog("products", D)
    assert accounted(manifest) == (1, 1, 2)
    assert [r[:2] for r in rejected("products")] == [(2, '"PROD_0002"')]


def test_a_malformed_json_array_still_fails_the_whole_file(lake_root, incoming):
    write(incoming, f"orders/{D}/orders.json", b'[{"order_id": "ORD_1"}, {"order_id": "ORD_2" "x": 1}]')
    with pytest.raises(landing.SourceFileInvalid, match=r"malformed JSON in array element 2, at byte 22 of the"
                       r" element: unexpected character; nothing was landed"):
        landing.land_orders(D)
    assert not os.path.exists(lake.partition_dir("raw", "orders", D))


# ------------------------------------------------------------- the vectorised line-safe split
def reference_split(data: bytes) -> tuple[int, int, list[int], bytes]:
    """What csv_line_safe must produce, line by line: (records, blank lines, rejected line numbers, output)."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    records, blank, rejected, out = 0, 0, [], []
    for number, line in enumerate(lines, start=1):
        content = line[:-1] if line.endswith(b"\r") else line
        if number == 1:
            out.append(content)
        elif not content:
            blank += 1
            out.append(b"")
        else:
            records += 1
            ok = SELF_CONTAINED_CSV.fullmatch(content) is not None
            out.append(content if ok else b"")
            rejected += [] if ok else [number]
    return records, blank, rejected, b"\n".join(out) + b"\n"


@pytest.mark.parametrize("seed", range(12))
def test_the_vectorised_split_matches_a_line_by_line_reading(tmp_path, monkeypatch, seed):
    """Random lines of quotes, stray and trailing CRs, blank lines, across small block boundaries."""
    import random

    from pipeline.ingest.incoming import SourceFile

    rng = random.Random(seed)
    pieces = ["E1", "U,1", '"a,b"', '"x""y"', '"open', 'mid"quote', "\r", "", " ", '""', "c\rd", "z"]
    lines = [HEADER] + [",".join(rng.choice(pieces) for _ in range(rng.randint(0, 6))) for _ in range(300)]
    ends = [rng.choice(["\n", "\r\n"]) for _ in lines]
    data = "".join(line + end for line, end in zip(lines, ends)).encode()
    if seed % 3 == 0:
        data = data.rstrip(b"\n") + rng.choice([b"", b"\r"])  # the last line without a line end
    path = tmp_path / "events.csv"
    path.write_bytes(data)
    monkeypatch.setattr("pipeline.ingest.lines.BLOCK", rng.choice([7, 64, 1000]))
    src = SourceFile(source="events", path=str(path), format="csv", compression="none")
    found = csv_line_safe(src, str(tmp_path / "out.csv"))
    records, blank, rejected, out = reference_split(data)
    assert (found.records, found.blank, [r[0] for r in found.rejects]) == (records, blank, rejected)
    assert (tmp_path / "out.csv").read_bytes() == out
    assert blank_lines(src, skip=1) == blank
    assert scan(src).lines == data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def test_an_ndjson_byte_order_mark_is_no_part_of_the_first_record(lake_root, incoming):
    lines = order_lines(3)
    lines[2] = "{oops"  # forces the line-by-line reading
    write(incoming, f"orders/{D}/orders.ndjson", b"\xef\xbb\xbf" + encode(lines))
    manifest = landing.land_orders(D)
    assert manifest["read_path"] == "line-safe" and accounted(manifest) == (2, 1, 3)
    assert [r[0] for r in raw_ids("orders")] == ["ORD_1", "ORD_2"]
