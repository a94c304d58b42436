"""Big values and big records: a quarantine row keeps a bad value whole once, and one record size limit holds
for every source (real files landed and staged: DuckDB, Parquet)."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import logging

import duckdb
import pytest

from pipeline import lake
from pipeline.ingest import landing, lines
from pipeline.ingest.incoming import SourceFile
from pipeline.transform import staging
from tests.support.files import write

D = dt.date(2025, 12, 15)
ORDER = {"order_id": "ORD_1", "user_id": "USER_0001", "product_id": "PROD_0001", "quantity": 2,
         "price": 9.99, "timestamp": "2025-12-15T10:00:00", "status": "paid"}
MB = 1_000_000


def read(layer: str, table: str, **keys: str) -> list[dict]:
    relation = duckdb.sql("select * from read_parquet($p) order by all",
                          params={"p": lake.partition_file(layer, table, D, **keys)})
    return [dict(zip(relation.columns, row)) for row in relation.fetchall()]


def test_a_megabyte_bad_value_is_kept_whole_once_in_its_quarantine_row(lake_root, incoming):
    status = "s" * MB  # fails invalid_status
    order_id = "O" * MB  # fails invalid_order_id (longer than max_id_length)
    records = [ORDER, {**ORDER, "order_id": "ORD_2", "status": status}, {**ORDER, "order_id": order_id}]
    write(incoming, "orders/2025-12-15/orders.json", json.dumps(records))
    landing.land_orders(D)
    counts = staging.stage("orders", D)
    assert (counts["raw_count"], counts["staged_count"], counts["quarantined_count"]) == (3, 1, 2)
    assert counts["is_balanced"]
    by_reason = {row["reason_code"]: row for row in read("audit", "bad_records", source_table="stg_orders")}
    bad_status, bad_id = by_reason["invalid_status"], by_reason["invalid_order_id"]
    assert json.loads(bad_status["raw_record"])["status"] == status, "the evidence, whole"
    assert bad_status["failing_value"] == "s" * 200 + "… (1,000,000 characters)"
    quoted = f"'{'s' * 200}…' (1,000,000 characters)"
    assert bad_status["message"] == f"{staging.REASON_CODES['invalid_status']}: {quoted}"
    assert bad_status["record_id"] == "ORD_2"
    assert json.loads(bad_id["raw_record"])["order_id"] == order_id
    assert bad_id["failing_value"] == "O" * 200 + "… (1,000,000 characters)"
    assert bad_id["record_id"] == "O" * (staging.max_id_length() + len("PROD_0001") - 1), "its first characters"
    assert bad_id["message"].endswith("…' (1,000,000 characters) (longer than 256 characters)")
    assert sum(len(value or "") for row in by_reason.values() for value in row.values() if isinstance(value, str)) < (
        2 * MB + 10_000), "each big value once, in its raw record"


def test_a_value_of_the_excerpt_length_is_quoted_whole(lake_root, incoming):
    status = "é" * 200  # 200 characters, 400 bytes: not cut
    records = [ORDER, {**ORDER, "order_id": "ORD_2", "status": status},
               {**ORDER, "order_id": "ORD_3", "status": status + "x"}]
    write(incoming, "orders/2025-12-15/orders.json", json.dumps(records))
    landing.land_orders(D)
    staging.stage("orders", D)
    bad = read("audit", "bad_records", source_table="stg_orders")
    failing = {row["record_id"]: row["failing_value"] for row in bad}
    assert failing == {"ORD_2": status, "ORD_3": status + "… (201 characters)"}


LIMIT = lines.MAX_RECORD_BYTES
HEADER = "event_id,user_id,product_id,event_type,event_ts"


def event_line(n: int, size: int | None = None) -> str:
    """An event line; `size`: padded in its event_type to exactly that many bytes (an unknown type: quarantined)."""
    line = f"EVT_{n},USER_0001,PROD_0001,page_view,2025-12-15T10:00:00"
    return line if size is None else line.replace("page_view", "v" * (size - len(line) + len("page_view")))


def test_one_record_size_limit_for_events_lines(lake_root, incoming):
    lines_in = [HEADER, event_line(1), event_line(2, LIMIT), event_line(3, LIMIT + 1), event_line(4, 3 * LIMIT),
                event_line(5, LIMIT) + "\r", event_line(6)]
    write(incoming, "events/2025-12-15/events.csv", "\n".join(lines_in) + "\n")
    manifest = landing.land_events(D)
    assert (manifest["rows"], manifest["rejected_count"], manifest["source_records"]) == (4, 2, 6)
    got = read("audit", "rejected_lines", source_table="events")
    assert [(row["line_number"], row["error"]) for row in got] == [
        (4, lines.too_large(LIMIT + 1)), (5, lines.too_large(3 * LIMIT))]
    assert [row["raw_text"] for row in got] == [lines_in[3], lines_in[4]], "the whole line, not the reader's excerpt"
    assert lines.too_large(LIMIT + 1) == "a record of 2,000,001 bytes, over the limit of 2,000,000 bytes per record"
    counts = staging.stage("events", D)  # the lines at the limit land and are quarantined by their rule
    assert (counts["raw_count"], counts["staged_count"], counts["quarantined_count"]) == (4, 2, 2)
    assert counts["is_balanced"]



def test_one_over_limit_line_among_many_is_found_by_the_scan_before_the_reader(lake_root, incoming, caplog):
    # 20,000 lines: no other reason to read the file line by line (the reader alone would land the line: its
    # max_line_size leaves room for a line end)
    lines_in = [HEADER, *(event_line(n) for n in range(1, 10_001)), event_line(0, LIMIT + 1),
                *(event_line(n) for n in range(10_001, 20_001))]
    write(incoming, "events/2025-12-15/events.csv", "\n".join(lines_in) + "\n")
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        manifest = landing.land_events(D)
    assert (manifest["rows"], manifest["rejected_count"], manifest["source_records"]) == (20_000, 1, 20_001)
    assert [r.getMessage() for r in caplog.records if "line by line" in r.getMessage()] == [
        f"{incoming}/events/2025-12-15/events.csv: a line over 2,000,000 bytes; reading it line by line"
    ], "the fast path's own check sends the file to the line-safe path, not a count that does not add up"
    (got,) = read("audit", "rejected_lines", source_table="events")
    assert (got["line_number"], got["error"]) == (10_002, lines.too_large(LIMIT + 1))
    assert len(got["raw_text"]) == LIMIT + 1 and got["raw_text"] == lines_in[10_001], "whole, not 10,000 characters"


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_a_line_at_the_limit_is_read_on_the_fast_path(lake_root, incoming, line_end):
    lines_in = [HEADER, event_line(1), event_line(2, LIMIT), event_line(3)]
    write(incoming, "events/2025-12-15/events.csv", line_end.join(lines_in) + line_end)
    manifest = landing.land_events(D)
    assert manifest["read_path"] == "direct", "not the whole day again, line by line"
    assert (manifest["rows"], manifest["rejected_count"], manifest["source_records"]) == (3, 0, 3)
    assert max(len(row["event_type"]) for row in read("raw", "events")) == LIMIT - len(event_line(2)) + len(
        "page_view")



def test_a_line_at_the_limit_after_blank_lines_lands(lake_root, incoming, caplog):
    # the reader counts the blank lines before a line in its size: it refuses this one, which the limit allows
    lines_in = [HEADER, event_line(1), "", "", event_line(2, LIMIT), event_line(3)]
    write(incoming, "events/2025-12-15/events.csv", "\n".join(lines_in) + "\n")
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        manifest = landing.land_events(D)
    assert (manifest["rows"], manifest["rejected_count"], manifest["blank_lines"]) == (3, 0, 2)
    assert read("audit", "rejected_lines", source_table="events") == []
    assert any("the reader refused a line for its size" in r.getMessage() for r in caplog.records)


def scanned(tmp_path, content: bytes, compression: str = "none") -> lines.Scan:
    path = tmp_path / ("events.csv.gz" if compression == "gzip" else "events.csv")
    path.write_bytes(gzip.compress(content) if compression == "gzip" else content)
    return lines.scan(SourceFile("events", str(path), "csv", compression))


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_the_scan_measures_the_longest_line_across_blocks(tmp_path, compression):
    first = (b"h" * 99 + b"\n") * (lines.BLOCK // 100)  # the next line starts 76 bytes before the first block's end
    cases = {  # content -> (long_line, over the limit)
        first + b"x" * 150 + b"\nshort\n": (150, False),
        first + b"x" * LIMIT + b"\nshort\n": (LIMIT, False),
        first + b"x" * LIMIT + b"\r\nshort\r\n": (LIMIT, False),  # a CR ending the line is not counted
        first + b"x" * (LIMIT + 1) + b"\nshort\n": (LIMIT + 1, True),
        first + b"x" * (LIMIT + 1) + b"\r\n": (LIMIT + 1, True),
        first + b"x" * (LIMIT + 1): (LIMIT + 1, True),  # the last line, without a line end
        b"x" * (LIMIT - 1) + b"\r\n" + b"y" * 5: (LIMIT - 1, False),
        b"x" * (lines.BLOCK - 1) + b"\r\n": (lines.BLOCK - 1, False),  # its CR and LF in two blocks
    }
    for content, (long_line, over) in cases.items():
        scan = scanned(tmp_path, content, compression)
        assert (scan.long_line, scan.has_line_over(LIMIT)) == (long_line, over), (len(content), long_line)


def big_order(n: int, size: int) -> dict:
    """An order padded in an extra field to exactly `size` bytes as json.dumps writes it."""
    record = {**ORDER, "order_id": f"ORD_{n}", "note": ""}
    return {**record, "note": "n" * (size - len(json.dumps(record)))}


@pytest.mark.parametrize("name", ["orders.json", "orders.ndjson"])
def test_one_record_size_limit_for_orders_as_a_json_array_and_as_ndjson(lake_root, incoming, name):
    # 40 MB: over what DuckDB's default JSON object buffer (16 MiB) reads, which failed the whole array
    records = [ORDER, big_order(2, LIMIT), big_order(3, LIMIT + 1), big_order(4, 40 * MB)]
    assert [len(json.dumps(record)) for record in records[1:]] == [LIMIT, LIMIT + 1, 40 * MB]
    text = json.dumps(records) if name == "orders.json" else "\n".join(map(json.dumps, records)) + "\n"
    write(incoming, f"orders/2025-12-15/{name}", text)
    manifest = landing.land_orders(D)
    assert (manifest["rows"], manifest["rejected_count"], manifest["source_records"]) == (2, 2, 4)
    got = read("audit", "rejected_lines", source_table="orders")
    prefix = "array element: " if name == "orders.json" else ""
    assert [(row["line_number"], row["error"]) for row in got] == [
        (3, prefix + lines.too_large(LIMIT + 1)), (4, prefix + lines.too_large(40 * MB))]
    assert [json.loads(row["raw_text"]) for row in got] == records[2:], "the whole record"
    counts = staging.stage("orders", D)
    assert (counts["raw_count"], counts["staged_count"], counts["quarantined_count"]) == (2, 2, 0)
    assert counts["is_balanced"]
