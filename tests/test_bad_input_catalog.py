"""The bad-input catalog: every case of docs/bad-input.md, landed and staged for real, and reconciled.

CASES is the single source of the table in docs/bad-input.md (between the markers
`<!-- bad-input:start -->` and `<!-- bad-input:end -->`; print it with
`python -m tests.test_bad_input_catalog`). Each case writes real incoming files into a
temporary folder and runs the pipeline's own Luigi tasks for the date (LandX then StageX, each only
when its `complete()` says so, as the scheduler would) with real DuckDB and real Parquet. Then:

- a case that must fail raises the named error, whose message names the file (an API case: its URL) and
  the place, and nothing of that source is landed or staged;
- for every source and date that was staged, the lake's audit/reconciliation record holds
  source_records = raw + rejected and raw = staged + quarantined + duplicates, and each figure
  equals the rows of the partition it counts (raw, staging, audit/bad_records,
  audit/rejected_lines); for orders and events the file's records, counted here independently
  (non-blank lines after the header, NDJSON lines, JSON array elements), = raw + rejected;
- the staged, quarantined (by reason code), duplicate and rejected counts are the case's.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline import lake, tasks
from pipeline.ingest import landing
from pipeline.tasks import catalog_cover
from pipeline.transform import staging
from tests.support import rows
from tests.support.dummyjson_server import DummyJsonServer
from tests.support.paths import REPO

D = dt.date(2025, 12, 15)  # a Monday: the API snapshot day
PREV = D - dt.timedelta(days=1)
HEADER = "event_id,user_id,product_id,event_type,event_ts"
CATALOG_PAGE = REPO / "docs" / "bad-input.md"
# assembled at run time, so that the repository's secret scan (tests/test_security.py) does not find it here
SECRET, SECRET_KEY = "hunter" + "2", "pass" + "word"
START, END = "<!-- bad-input:start -->", "<!-- bad-input:end -->"
LAND = {"orders": tasks.LandOrders, "events": tasks.LandEvents, "products": tasks.LandProducts,
        "users": tasks.LandUsers}
STAGE = {"orders": tasks.StageOrders, "events": tasks.StageEvents, "products": tasks.StageProducts,
         "users": tasks.StageUsers}


# ------------------------------------------------------------------------------------ factories
def order(**fields: Any) -> dict[str, Any]:
    """A valid order of D, fields overridden."""
    return {"order_id": "ORD_1", "user_id": "USER_0001", "product_id": "PROD_0001", "quantity": 2,
            "price": 9.99, "timestamp": f"{D}T10:00:00", "status": "paid", **fields}


def orders(*records: dict[str, Any], day: dt.date = D) -> dict[str, bytes]:
    return {f"orders/{day}/orders.json": json.dumps(list(records) or [order()], indent=2).encode()}


def written(files: dict[str, bytes], **numbers: str) -> dict[str, bytes]:
    """`files` with each JSON string "@name@" replaced by the number numbers[name] as written (digits no float holds)."""
    def replace(content: bytes) -> bytes:
        for name, number in numbers.items():
            content = content.replace(f'"@{name}@"'.encode(), number.encode())
        return content
    return {path: replace(content) for path, content in files.items()}


def raw_orders(content: bytes, name: str = "orders.json", day: dt.date = D) -> dict[str, bytes]:
    return {f"orders/{day}/{name}": content}


def event_line(event_id: str = "E1", user_id: str = "USER_0001", product_id: str = "PROD_0001",
               event_type: str = "view_product", ts: str = f"{D}T10:00:00") -> str:
    return f"{event_id},{user_id},{product_id},{event_type},{ts}"


def events(*lines: str, header: str = HEADER, day: dt.date = D, newline: str = "\n",
           bom: bool = False) -> dict[str, bytes]:
    text = newline.join([header, *(lines or (event_line(),))]) + newline
    return {f"events/{day}/events.csv": (b"\xef\xbb\xbf" if bom else b"") + text.encode()}


def raw_events(content: bytes, day: dt.date = D) -> dict[str, bytes]:
    return {f"events/{day}/events.csv": content}


def products(*records: dict[str, Any], day: dt.date = D) -> dict[str, bytes]:
    items = list(records) or [{"product_id": "PROD_0001", "product_name": "Lamp", "category": "Home",
                               "brand": "BrandA", "current_price": 19.99}]
    return {f"products/products_{day}.json": json.dumps(items).encode()}


def users(*records: dict[str, Any], day: dt.date = D) -> dict[str, bytes]:
    return {f"users/users_{day}.json": json.dumps(list(records)).encode()}


def merge(*parts: dict[str, bytes]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for part in parts:
        out.update(part)
    return out


def renamed(files: dict[str, bytes], suffix: str = "", compress: Callable[[bytes], bytes] | None = None,
            name: str | None = None) -> dict[str, bytes]:
    """The files, each renamed (a suffix, or another name in its folder) and maybe compressed."""
    out = {}
    for rel, content in files.items():
        target = f"{rel.rsplit('/', 1)[0]}/{name}" if name else rel + suffix
        out[target] = compress(content) if compress else content
    return out


def zstd(content: bytes) -> bytes:
    import pyarrow as pa

    return pa.compress(content, codec="zstd", asbytes=True)


def ndjson(*lines: str, day: dt.date = D, name: str = "orders.ndjson") -> dict[str, bytes]:
    return {f"orders/{day}/{name}": ("\n".join(lines) + "\n").encode()}


def order_line(**fields: Any) -> str:
    return json.dumps(order(**fields))


def link_events_outside(incoming: Path) -> None:
    """events.csv -> a file outside the data folder holding a secret."""
    outside = incoming.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "pgpass").write_text(":".join(["localhost", "5432", "*", "postgres", SECRET]) + "\n")
    link = incoming / "events" / str(D) / "events.csv"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside / "pgpass")


def link_orders_folder_outside(incoming: Path) -> None:
    """orders/<D> -> a folder outside the data folder."""
    outside = incoming.parent / "outside-orders"
    outside.mkdir(exist_ok=True)
    (outside / "orders.json").write_text(json.dumps([order()]))
    (incoming / "orders").mkdir(exist_ok=True)
    (incoming / "orders" / str(D)).symlink_to(outside, target_is_directory=True)


# ---------------------------------------------------------------------------------------- cases
@dataclasses.dataclass(frozen=True)
class Expect:
    """What a case must produce for date D (every other staged source/date must still reconcile)."""

    fails: tuple[str, str, tuple[str, ...]] | None = None  # (source, error class, message fragments)
    staged: dict[str, int] = dataclasses.field(default_factory=dict)
    quarantined: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    duplicates: dict[str, int] = dataclasses.field(default_factory=dict)
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)  # records in audit/rejected_lines
    not_in_message: tuple[str, ...] = ()  # file content the failure's message must not quote


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    input: str  # the catalog page's description of the input
    behaviour: str  # the catalog page's description of what the pipeline does
    files: dict[str, bytes]
    expect: Expect
    api_fault: tuple[str, int] | tuple[str, int, int] | None = None  # products from a DummyJSON server with this
    # fault queued (kind, times[, after]: fail_next's arguments)
    api_server: dict[str, Any] | None = None  # attributes of that server (e.g. the "redirect" fault's target)
    check: Callable[[], None] | None = None  # further assertions after staging
    fix: dict[str, bytes] | None = None  # rerun after writing these files (a partial failure fixed)
    prepare: Callable[[Path], None] | None = None  # further setup of the incoming folder (links ...)


def staged_value(table: str, column: str, day: dt.date = D) -> list[Any]:
    return [r[column] for r in rows.read("staging", table, day, "_row_number")]


def check_offset_normalised() -> None:
    assert staged_value("stg_orders", "order_ts") == [dt.datetime(2025, 12, 15, 8, 0)]


def check_epoch_parsed() -> None:
    assert staged_value("stg_orders", "order_ts") == [dt.datetime(2025, 12, 15, 10, 0)] * 2


def check_crlf_and_bom_values_clean() -> None:
    assert staged_value("stg_events", "event_ts") == [dt.datetime(2025, 12, 15, 10, 0)] * 2
    assert staged_value("stg_events", "event_id") == ["E1", "E2"]


def check_quoted_comma_kept() -> None:
    assert staged_value("stg_events", "user_id") == ["USER,0001"]


def check_lineage_kept_beside_same_named_columns() -> None:
    raw = duckdb.sql("select * from read_parquet($p, hive_partitioning = false) order by _row_number",
                     params={"p": lake.partition_file("raw", "events", D)})
    got = [dict(zip(raw.columns, row)) for row in raw.fetchall()]
    assert [(r["_row_number"], r["csv__row_number"], r["csv__source_file"], r["csv_load_date"]) for r in got] == [
        (1, "99", "elsewhere.csv", "1999-01-01"), (2, "98", "x", "y")]
    assert all(r["_source_file"].endswith("events.csv") for r in got)
    assert staged_value("stg_events", "_row_number") == [1, 2]


def check_rejected_records_named(expected: list[tuple[int, str]], source: str = "orders") -> Callable[[], None]:
    def check() -> None:
        got = [(r["line_number"], r["error"]) for r in rows.read("audit", "rejected_lines", D, "line_number",
                                                                  source_table=source)]
        assert [n for n, _ in got] == [n for n, _ in expected], got
        assert all(part in error for (_, error), (_, part) in zip(got, expected)), got
    return check


def check_reordered_columns() -> None:
    (row,) = rows.read("staging", "stg_events", D)
    assert (row["event_id"], row["event_type"], row["product_id"]) == ("E1", "purchase", "PROD_0002")


def check_extra_columns_kept() -> None:
    raw = duckdb.sql("select campaign from read_parquet($p)", params={"p": lake.partition_file("raw", "events", D)})
    assert raw.fetchall() == [("spring",)]


def check_nested_fields_kept() -> None:
    (record,) = [json.loads(r["record"]) for r in rows.read("raw", "orders", D)]
    assert record["coupon"] == {"code": "X", "tags": [1, 2]}


def check_huge_id_kept_exactly() -> None:
    assert staged_value("stg_orders", "order_id") == ["123456789012345678901234567890"]


def check_one_user_after_trimming() -> None:
    assert staged_value("stg_orders", "user_id") == ["USER_0001"] * 3
    assert staged_value("stg_orders", "status") == ["paid"] * 3


def check_integer_and_string_id_are_one_order() -> None:
    assert staged_value("stg_orders", "order_id") == ["515151"]


def check_numbers_quoted_as_written() -> None:
    assert sorted(bad["failing_value"] for bad in rows.bad_records("stg_orders", D)) == [
        "1e-400", "2.0000000000000000001", "4.9999999999999999999", "9.990000000000000000001"]
    assert sorted(bad["failing_value"] for bad in rows.bad_records("stg_products", D)) == ["19.989999999999998"]


def check_numeric_fields_quoted_as_written() -> None:
    assert sorted(bad["failing_value"] for bad in rows.bad_records("stg_orders", D)) == ["1.7657928E9", "1E2", "7.5"]


def check_control_characters_named() -> None:
    """Each quarantined catalog row names the field that holds a control character; the tab counts too."""
    bad = rows.bad_records("stg_products", D) + rows.bad_records("stg_users", D)
    assert not any(ord(char) < 32 or 127 <= ord(char) < 160 for b in bad for char in b["message"] + b["failing_value"])
    assert ("PROD_0001", "Lamp\\u001b[2J") in {(b["record_id"], b["failing_value"]) for b in bad}, "as JSON writes it"
    assert sorted((b["record_id"], b["message"].rsplit("(", 1)[-1]) for b in bad) == [
        ("PROD_0001", "product_name contains a control character)"), ("PROD_0002", "brand contains a control character)"),
        ("PROD_0003", "category contains a control character)"), ("PROD_0004", "product_name contains a control character)"),
        ("USER_0001", "first_name contains a control character)")], bad


def check_nul_escaped_in_bad_records() -> None:
    (bad,) = rows.bad_records("stg_orders", D)
    assert bad["failing_value"] == "USER\\u00000001" and "\x00" not in bad["message"] + bad["raw_record"]
    assert staged_value("stg_orders", "order_id") == ["ORD_2"]  # the NUL in an unused field is harmless


def check_evening_in_western_offset_is_staged() -> None:
    assert staged_value("stg_orders", "order_ts") == [dt.datetime(2025, 12, 16, 4, 30), dt.datetime(2025, 12, 16, 2)]


def check_epoch_milliseconds_parsed() -> None:
    assert staged_value("stg_orders", "order_ts") == [dt.datetime(2025, 12, 15, 10, 0, 0, 123000)]


def check_lower_case_t_and_z_read() -> None:
    assert staged_value("stg_orders", "order_ts") == [dt.datetime(2025, 12, 15, 10), dt.datetime(2025, 12, 15, 11)]


def check_date_alone_says_the_time_is_required() -> None:
    (bad,) = rows.bad_records("stg_orders", D)
    assert bad["failing_value"] == "2025-12-15" and bad["message"].endswith(
        "(a date without a time of day: the time is required, midnight would be a guess)"), bad


def check_one_id_in_any_unicode_form() -> None:
    assert staged_value("stg_orders", "user_id") == ["USER_\u00c91", "\uff35\uff33\uff25\uff32_0001"]


def check_numeric_ids_are_the_catalogs() -> None:
    # leading zeros are dropped before the id is padded: 00089 is 89, 0004512 is 4512
    assert staged_value("stg_orders", "product_id") == ["PROD_0089", "PROD_0089"]
    assert staged_value("stg_orders", "user_id") == ["USER_4512", "USER_4512"]
    assert staged_value("stg_products", "product_id") == ["PROD_0089"]


def check_second_line_names_the_kept_row() -> None:
    (bad,) = rows.bad_records("stg_orders", D)
    assert bad["row_number"] == 1 and bad["message"].endswith("(kept row 2)"), bad


def check_late_event_keeps_its_day() -> None:
    assert staged_value("stg_events", "event_ts") == [dt.datetime(2025, 12, 12, 23, 30)]
    assert staged_value("stg_events", "load_date") == [D]


def check_gate(table: str, check: str, outcome: str, *fragments: str) -> Callable[[], None]:
    """The date built (warehouse, marts) and gated: the named check has this outcome and its message these
    fragments; a warning does not block the date, a failure does."""
    def gated() -> None:
        from pipeline.quality import gate

        rows.build_day(D)
        result = gate.run_gate(D)
        (checked,) = [r for r in result.results if (r.table_name, r.check_name) == (table, check)]
        assert checked.outcome == outcome, checked
        for fragment in fragments:
            assert fragment in checked.message, f"{fragment!r} not in {checked.message!r}"
        assert result.blocked == (outcome == "fail"), [r for r in result.results if r.outcome in ("fail", "error")]
    return gated


def check_late_order_keeps_its_day() -> None:
    assert staged_value("stg_orders", "order_ts") == [dt.datetime(2025, 12, 1, 9, 0)]


def check_unknown_product_is_flagged() -> None:
    rows.build_day(D, ("fact_orders",))
    facts = {r["product_id"]: r["is_known_product"] for r in rows.read("warehouse", "fact_orders", D)}
    assert facts == {"PROD_0001": True, "PROD_9999": False}


def check_order_redelivered_latest_wins() -> None:
    rows.build_day(PREV, ("fact_orders",))
    rows.build_day(D, ("fact_orders",))
    current = rows.current("fact_orders")
    assert [(r["order_id"], r["quantity"], r["load_date"]) for r in current] == [("ORD_1", 3, D)]


def check_event_resent_earliest_wins() -> None:
    rows.build_day(PREV, ("fact_events",))
    rows.build_day(D, ("fact_events",))
    current = rows.current("fact_events")
    assert [(r["event_id"], r["load_date"]) for r in current] == [("E1", PREV)]


def check_conflict_names_the_kept_row() -> None:
    (bad,) = rows.bad_records("stg_orders", D)
    assert bad["row_number"] == 1 and "kept row 2" in bad["message"], bad  # row 2 has the later timestamp


def check_api_page_missing_fields() -> None:
    reasons = Counter(r["reason_code"] for r in rows.bad_records("stg_products", D))
    assert reasons == {"invalid_text": 100}  # no title: the first rule they break
    assert all(r["failing_value"] is None for r in rows.bad_records("stg_products", D))


def check_missing_names_quarantined() -> None:
    bad = rows.bad_records("stg_products", D)
    assert sorted(b["record_id"] for b in bad) == ["PROD_0001", "PROD_0002", "PROD_0003", "PROD_0004"]
    assert all(b["message"].endswith("(product_name is missing or empty)") for b in bad), bad[0]["message"]


def check_text_not_a_string_named() -> None:
    """Each quarantined catalog row names the field and its JSON type; nothing staged holds JSON text."""
    bad = rows.bad_records("stg_products", D) + rows.bad_records("stg_users", D)
    assert sorted((b["record_id"], b["failing_value"], b["message"].rsplit("(", 1)[-1]) for b in bad) == [
        ("PROD_0001", '{"slug":"beauty","name":"Beauty"}', "category is a JSON object)"),
        ("PROD_0002", '["mens-watches"]', "category is a JSON array)"),
        ("PROD_0003", '{"name":"Essence"}', "brand is a JSON object)"),
        ("USER_0001", '{"name":"Phoenix"}', "city is a JSON object)"),
        ("USER_0002", "true", "country is a JSON boolean)")], bad
    assert staged_value("stg_products", "category") == ["{beauty}"]
    assert staged_value("stg_users", "city") == ["Phoenix"]


def check_api_nested_category_named() -> None:
    bad = rows.bad_records("stg_products", D)
    assert len(bad) == 100 and all(b["message"].endswith("(category is a JSON object)") for b in bad), bad[0]
    assert not any(str(value).startswith("{") for value in staged_value("stg_products", "category"))


def check_nan_ids_named() -> None:
    bad = rows.bad_records("stg_orders", D)
    assert sorted((b["reason_code"], b["failing_value"]) for b in bad) == [
        ("invalid_order_id", "-Infinity"), ("invalid_product_id", "NaN"), ("invalid_user_id", "Infinity")]
    assert all(b["message"].endswith("(a JSON NaN or Infinity)") for b in bad), bad
    assert staged_value("stg_orders", "product_id") == ["NaN"]  # the JSON string "NaN" is a text id


def check_api_prices_quoted_as_written() -> None:
    failing = [r["failing_value"] for r in rows.bad_records("stg_products", D)]
    assert len(failing) == 100 and all(re.fullmatch(r"[0-9]+\.[0-9]{2}0{19}1", value) for value in failing), failing[:3]


CASES: list[Case] = [
    # ----------------------------------------------------------------------------- orders (JSON)
    Case("orders-malformed-json", "orders: malformed JSON (`[{...} {...}]`)",
         "fails: `SourceFileInvalid` naming the file, the array element and the byte, not quoting it (a JSON array cannot be"
         " resynchronised); nothing landed",
         raw_orders(b'[{"order_id": "ORD_1"} {"order_id": "ORD_2"}]'),
         Expect(fails=("orders", "SourceFileInvalid", ("orders.json", "in array element", "byte")),
                not_in_message=("ORD_",))),
    Case("orders-array-cut-off", "orders: a JSON array cut off after an element and its comma (`[{...},\\n{...},\\n`:"
         " an export that stopped between two elements)",
         "fails: `SourceFileInvalid` saying the array is not closed (\"probably cut off\"); nothing landed",
         raw_orders(("[" + json.dumps(order(order_id="ORD_1")) + ",\n" + json.dumps(order(order_id="ORD_2")) + ",\n"
                     ).encode()),
         Expect(fails=("orders", "SourceFileInvalid", ("orders.json", "the JSON array is not closed")),
                not_in_message=("ORD_",))),
    Case("orders-trailing-comma", "orders: a comma after the last array element (`[{...}, {...},]`)",
         "fails: `SourceFileInvalid` naming the file and the empty element after the comma; nothing landed",
         raw_orders(b'[{"order_id": "ORD_1"}, {"order_id": "ORD_2"},\n]\n'),
         Expect(fails=("orders", "SourceFileInvalid", ("orders.json", "array element 3", "an empty element: a"
                                                       " comma after the last one")), not_in_message=("ORD_",))),
    Case("orders-truncated-json", "orders: JSON cut off mid-record",
         "fails: `SourceFileInvalid` naming the file, the array element and the byte; nothing landed",
         raw_orders(b'[{"order_id": "ORD_1", "user_id": "USER_0001"},\n{"order_id": "OR'),
         Expect(fails=("orders", "SourceFileInvalid", ("orders.json", "in array element 2, at byte")))),
    Case("orders-empty-file", "orders: empty file (0 bytes)",
         "fails: `SourceFileInvalid` naming the file (\"the file is empty\"); nothing landed",
         raw_orders(b""), Expect(fails=("orders", "SourceFileInvalid", ("orders.json", "empty (0 bytes)")))),
    Case("orders-empty-array", "orders: `[]` (a day without orders)",
         "accepted: 0 rows landed and staged; the quality gate blocks the date unless it is rerun with"
         " `--checks-orders-volume-fail-low-ratio 0` (see quality-gate.md)",
         raw_orders(b"[]\n"), Expect(staged={"orders": 0})),
    Case("orders-blank-space-only", "orders: only blank lines and spaces (no `[]`)",
         "fails: `SourceFileInvalid` naming the file (\"only blank space\"): nothing says the export finished;"
         " nothing landed",
         raw_orders(b" \n\n"), Expect(fails=("orders", "SourceFileInvalid", ("orders.json", "only blank space")))),
    Case("orders-ndjson-blank-lines-only", "orders.ndjson: only blank lines",
         "fails: `SourceFileInvalid` naming the file (\"only blank space\"; a day without orders is `orders.json`"
         " holding `[]`); nothing landed",
         raw_orders(b"\n\n", name="orders.ndjson"),
         Expect(fails=("orders", "SourceFileInvalid", ("orders.ndjson", "only blank space", "[]")))),
    Case("orders-not-an-array", "orders: one JSON object instead of an array",
         "fails: `SourceFileInvalid` naming the file and what it expected; nothing landed",
         raw_orders(b'{"order_id": "ORD_1"}'),
         Expect(fails=("orders", "SourceFileInvalid", ("orders.json", "top-level JSON array")),
                not_in_message=("ORD_", "'{'"))),
    Case("orders-invalid-utf8", "orders: invalid UTF-8 inside a string",
         "fails: `SourceFileInvalid` naming the file, the byte and the record; nothing landed",
         raw_orders(b'[{"order_id": "ORD_\xff1", "user_id": "USER_0001"}]'),
         Expect(fails=("orders", "SourceFileInvalid", ("orders.json", "byte", "invalid UTF-8")))),
    Case("orders-utf8-bom", "orders: UTF-8 byte order mark before the array",
         "accepted", raw_orders(b"\xef\xbb\xbf" + json.dumps([order()]).encode()),
         Expect(staged={"orders": 1})),
    Case("orders-crlf", "orders: CRLF line ends", "accepted",
         raw_orders(json.dumps([order(), order(order_id="ORD_2")], indent=2).replace("\n", "\r\n").encode()),
         Expect(staged={"orders": 2})),
    Case("orders-ndjson", "orders: `orders.ndjson` (one object per line)", "accepted",
         raw_orders(b"\n".join(json.dumps(order(order_id=f"ORD_{i}")).encode() for i in range(3)) + b"\n",
                    name="orders.ndjson"),
         Expect(staged={"orders": 3})),
    Case("orders-ndjson-malformed-line-first", "orders.ndjson: the first line is not JSON",
         "that line rejected into `audit/rejected_lines` (source_table orders, line, reason); the rest lands",
         ndjson('{"order_id": "ORD_0", "user', order_line(order_id="ORD_1"), order_line(order_id="ORD_2")),
         Expect(staged={"orders": 2}, rejected={"orders": 1}),
         check=check_rejected_records_named([(1, "not valid JSON")])),
    Case("orders-ndjson-malformed-line-middle", "orders.ndjson: a line in the middle is not JSON",
         "that line rejected into `audit/rejected_lines`; the rest lands",
         ndjson(order_line(order_id="ORD_1"), "not json at all", order_line(order_id="ORD_2")),
         Expect(staged={"orders": 2}, rejected={"orders": 1}),
         check=check_rejected_records_named([(2, "not valid JSON")])),
    Case("orders-ndjson-malformed-line-last", "orders.ndjson: the last line is not JSON (and ends with a line end)",
         "that line rejected into `audit/rejected_lines`; the rest lands",
         ndjson(order_line(order_id="ORD_1"), order_line(order_id="ORD_2"), '{"order_id": "ORD_3", "qua'),
         Expect(staged={"orders": 2}, rejected={"orders": 1}),
         check=check_rejected_records_named([(3, "not valid JSON")])),
    Case("orders-ndjson-cut-off", "orders.ndjson: the file ends mid-line (its last line has no line end and is not"
         " JSON: an export that stopped)",
         "fails: `SourceFileInvalid` naming the file and its last line (\"probably cut off\"); nothing landed (with a"
         " line end, that line alone would be rejected)",
         {f"orders/{D}/orders.ndjson": (order_line(order_id="ORD_1") + '\n{"order_id": "ORD_2", "qua').encode()},
         Expect(fails=("orders", "SourceFileInvalid", ("orders.ndjson", "its last line, 2, has no line end")),
                not_in_message=("ORD_2",))),
    Case("orders-ndjson-not-objects", "orders.ndjson: lines that are JSON but not objects (`42`, `\"x\"`, `null`, `[]`)",
         "each rejected into `audit/rejected_lines` with its JSON type; the objects land",
         ndjson("42", order_line(order_id="ORD_1"), '"x"', "null", order_line(order_id="ORD_2"), "[1, 2]"),
         Expect(staged={"orders": 2}, rejected={"orders": 4}),
         check=check_rejected_records_named([(1, "a JSON number"), (3, "a JSON string"), (4, "a JSON null"),
                                             (6, "a JSON array")])),
    Case("orders-ndjson-object-over-lines", "orders.ndjson: one object written over three lines",
         "each of its lines rejected (one object per line); the rest lands",
         ndjson(order_line(order_id="ORD_1"), '{"order_id": "ORD_2",', '"quantity": 1', "}",
                order_line(order_id="ORD_3")),
         Expect(staged={"orders": 2}, rejected={"orders": 3})),
    Case("orders-ndjson-blank-lines", "orders.ndjson: blank and whitespace-only lines",
         "accepted; blank lines are no records (counted in the manifest as `blank_lines`)",
         ndjson("", order_line(order_id="ORD_1"), "   ", order_line(order_id="ORD_2"), "", ""),
         Expect(staged={"orders": 2})),
    Case("orders-array-not-objects", "orders: array elements that are not objects (first, middle, last)",
         "each rejected into `audit/rejected_lines` (its position in the array, its JSON type); the objects land",
         raw_orders(json.dumps([7, order(), "text", None, order(order_id="ORD_2"), [1]]).encode()),
         Expect(staged={"orders": 2}, rejected={"orders": 4}),
         check=check_rejected_records_named([(1, "array element: a JSON number"), (3, "a JSON string"),
                                             (4, "a JSON null"), (6, "a JSON array")])),
    Case("orders-array-only-not-objects", "orders: an array of numbers only",
         "fails: `SourceFileInvalid` (none of its records could be landed); nothing landed",
         raw_orders(b"[1, 2, 3]"),
         Expect(fails=("orders", "SourceFileInvalid", ("orders.json", "none of its 3 record(s)")))),
    Case("orders-json-and-ndjson", "orders: `orders.json` and `orders.ndjson` both in the folder",
         "fails: `UnexpectedSourceFiles` naming both; nothing landed",
         merge(orders(order()), ndjson(order_line(order_id="ORD_2"))),
         Expect(fails=("orders", "UnexpectedSourceFiles", ("orders.json", "orders.ndjson", "exactly one")))),
    Case("orders-second-part", "orders: a second part `orders_part2.json` beside `orders.json`",
         "fails: `UnexpectedSourceFiles` naming it (multi-part delivery is not supported); nothing landed",
         merge(orders(order()), {f"orders/{D}/orders_part2.json": json.dumps([order(order_id="ORD_2")]).encode()}),
         Expect(fails=("orders", "UnexpectedSourceFiles", ("orders_part2.json", "Multi-part delivery")))),
    Case("orders-gzip", "orders: `orders.json.gz`", "accepted (gzip is read)",
         renamed(orders(order(), order(order_id="ORD_2")), ".gz", gzip.compress), Expect(staged={"orders": 2})),
    Case("orders-ndjson-zstd", "orders: `orders.ndjson.zst` with a malformed line",
         "accepted (zstd is read); the malformed line rejected",
         renamed(ndjson(order_line(order_id="ORD_1"), "{oops", order_line(order_id="ORD_2")), ".zst", zstd),
         Expect(staged={"orders": 2}, rejected={"orders": 1})),
    Case("orders-gzip-plain-name", "orders: gzip content under the name `orders.json`",
         "accepted (compression is recognised by the file's first bytes, not its name)",
         renamed(orders(order()), compress=gzip.compress), Expect(staged={"orders": 1})),
    Case("orders-zip", "orders: a zip archive named `orders.json`",
         "fails: `SourceFileCompressed` saying the file is zip-compressed; nothing landed",
         raw_orders(b"PK\x03\x04" + b"\x00" * 40),
         Expect(fails=("orders", "SourceFileCompressed", ("orders.json", "zip-compressed")))),
    Case("orders-folder-linked-outside", "orders: the date's folder is a symbolic link out of the data folder",
         "fails: `UnsafeSourcePath`; nothing landed", {},
         Expect(fails=("orders", "UnsafeSourcePath", ("orders", "outside the data folder"))),
         prepare=link_orders_folder_outside),
    Case("orders-unknown-fields", "orders: extra and nested fields (`coupon: {code, tags}`)",
         "accepted; kept in raw `record`", orders(order(coupon={"code": "X", "tags": [1, 2]})),
         Expect(staged={"orders": 1}), check=check_nested_fields_kept),
    Case("orders-missing-field", "orders: a record without `product_id`",
         "quarantined: `missing_product_id`", orders(order(), {k: v for k, v in order(order_id="ORD_2").items()
                                                              if k != "product_id"}),
         Expect(staged={"orders": 1}, quarantined={"orders": {"missing_product_id": 1}})),
    Case("orders-null-user-id", "orders: `user_id: null` (and `\"  \"`)", "quarantined: `missing_user_id`",
         orders(order(user_id=None), order(order_id="ORD_2", user_id="  ")),
         Expect(staged={"orders": 0}, quarantined={"orders": {"missing_user_id": 2}})),
    Case("orders-negative-price", "orders: `price: -5`", "quarantined: `negative_price`",
         orders(order(), order(order_id="ORD_2", price=-5)),
         Expect(staged={"orders": 1}, quarantined={"orders": {"negative_price": 1}})),
    Case("orders-price-three-decimals", "orders: `price: 9.999`", "quarantined: `invalid_price`",
         orders(order(price=9.999)), Expect(staged={"orders": 0}, quarantined={"orders": {"invalid_price": 1}})),
    Case("orders-price-float-artefact", "orders: `price: 0.30000000000000004` (a float's digits), `\"9.99000000001\"`,"
         " `quantity: \"2.00000000001\"`", "quarantined: `invalid_price`, `invalid_quantity` (never rounded to 0.30,"
         " 9.99 or 2)", orders(order(price=0.30000000000000004), order(order_id="ORD_2", price="9.99000000001"),
                               order(order_id="ORD_3", quantity="2.00000000001"), order(order_id="ORD_4")),
         Expect(staged={"orders": 1}, quarantined={"orders": {"invalid_price": 2, "invalid_quantity": 1}})),
    Case("orders-numbers-beyond-a-double", "orders: `price: 9.990000000000000000001`, `4.9999999999999999999`,"
         " `1e-400`, `quantity: 2.0000000000000000001` (JSON numbers a double cannot hold); products file:"
         " `current_price: 19.989999999999998`", "quarantined: `invalid_price`, `invalid_quantity`, the number as"
         " written (never read as a double, which rounds them to 9.99, 5.00, 0.00, 2 and 19.99)",
         written(merge(orders(order(price="@a@"), order(order_id="ORD_2", price="@b@"), order(order_id="ORD_3",
                                                                                              price="@c@"),
                              order(order_id="ORD_4", quantity="@d@"), order(order_id="ORD_5")),
                       products({"product_id": "PROD_0001", "product_name": "Lamp", "current_price": "@e@"},
                                {"product_id": "PROD_0002", "product_name": "Shade", "current_price": 5.25})),
                 a="9.990000000000000000001", b="4.9999999999999999999", c="1e-400", d="2.0000000000000000001",
                 e="19.989999999999998"),
         Expect(staged={"orders": 1, "products": 1},
                quarantined={"orders": {"invalid_price": 3, "invalid_quantity": 1}, "products": {"invalid_price": 1}}),
         check=check_numbers_quoted_as_written),
    Case("orders-numeric-ids-and-timestamps", "orders: `user_id: 1E2`, `order_id: 7.5`, `timestamp: 1.7657928E9`"
         " (JSON numbers with an exponent or a fraction)", "quarantined: `invalid_user_id`, `invalid_order_id`,"
         " `invalid_timestamp`, each failing value as written (not the double's `100.0`, `1765792800.0`)",
         written(orders(order(user_id="@u@"), order(order_id="@o@"), order(order_id="ORD_3", timestamp="@t@"),
                        order(order_id="ORD_4")), u="1E2", o="7.5", t="1.7657928E9"),
         Expect(staged={"orders": 1}, quarantined={"orders": {
             "invalid_user_id": 1, "invalid_order_id": 1, "invalid_timestamp": 1}}),
         check=check_numeric_fields_quoted_as_written),
    Case("orders-zero-quantity", "orders: `quantity: 0` (and `-1`)", "quarantined: `non_positive_quantity`",
         orders(order(quantity=0), order(order_id="ORD_2", quantity=-1), order(order_id="ORD_3")),
         Expect(staged={"orders": 1}, quarantined={"orders": {"non_positive_quantity": 2}})),
    Case("orders-quantity-three", "orders: `quantity: \"three\"`", "quarantined: `invalid_quantity`",
         orders(order(quantity="three")),
         Expect(staged={"orders": 0}, quarantined={"orders": {"invalid_quantity": 1}})),
    Case("orders-quantity-decimal-text", "orders: `quantity: \"2.0\"` / `\"1e1\"`",
         "normalised to the whole number", orders(order(quantity="2.0"), order(order_id="ORD_2", quantity="1e1")),
         Expect(staged={"orders": 2})),
    Case("orders-huge-integers", "orders: `quantity: 10^23`, `price: 1e25`",
         "quarantined: `invalid_quantity`, `invalid_price` (never wrapped or rounded)",
         orders(order(quantity=10**23), order(order_id="ORD_2", price=1e25)),
         Expect(staged={"orders": 0}, quarantined={"orders": {"invalid_quantity": 1, "invalid_price": 1}})),
    Case("orders-huge-integer-id", "orders: `order_id: 123456789012345678901234567890` (a JSON number)",
         "accepted; the id is kept digit for digit as text", orders(order(order_id=123456789012345678901234567890)),
         Expect(staged={"orders": 1}), check=check_huge_id_kept_exactly),
    Case("orders-revenue-overflow", "orders: `quantity: 2000000000`, `price: 99999999.99`",
         "quarantined: `revenue_out_of_range`", orders(order(quantity=2_000_000_000, price=99999999.99)),
         Expect(staged={"orders": 0}, quarantined={"orders": {"revenue_out_of_range": 1}})),
    Case("orders-timestamp-offset", "orders: `2025-12-15T10:00:00+02:00`", "normalised to UTC (08:00)",
         orders(order(timestamp="2025-12-15T10:00:00+02:00")), Expect(staged={"orders": 1}),
         check=check_offset_normalised),
    Case("orders-timestamp-epoch", "orders: `\"1765792800\"` and `1765792800` (epoch seconds)",
         "normalised to UTC", orders(order(timestamp="1765792800"), order(order_id="ORD_2", timestamp=1765792800)),
         Expect(staged={"orders": 2}),
         check=check_epoch_parsed),
    Case("orders-timestamp-garbage", "orders: `timestamp: \"yesterday\"`", "quarantined: `invalid_timestamp`",
         orders(order(timestamp="yesterday")),
         Expect(staged={"orders": 0}, quarantined={"orders": {"invalid_timestamp": 1}})),
    Case("orders-timestamp-far-future", "orders: `2099-01-01T00:00:00`", "quarantined: `future_timestamp`",
         orders(order(timestamp="2099-01-01T00:00:00")),
         Expect(staged={"orders": 0}, quarantined={"orders": {"future_timestamp": 1}})),
    Case("orders-timestamp-before-1970", "orders: `1969-12-31T23:59:59`", "quarantined: `ancient_timestamp`",
         orders(order(timestamp="1969-12-31T23:59:59")),
         Expect(staged={"orders": 0}, quarantined={"orders": {"ancient_timestamp": 1}})),
    Case("orders-late-for-earlier-day", "orders: an order of 2025-12-01 in the 2025-12-15 file",
         "accepted (late-arriving, within `late_window_days`); keeps its own timestamp",
         orders(order(timestamp="2025-12-01T09:00:00")), Expect(staged={"orders": 1}),
         check=check_late_order_keeps_its_day),
    Case("orders-order-past-late-window", "orders: a paid order of 2025-10-01 in the 2025-12-15 file",
         "quarantined: `ancient_timestamp` (before the `late_window_days`, 30)",
         orders(order(timestamp="2025-10-01T09:00:00")),
         Expect(staged={"orders": 0}, quarantined={"orders": {"ancient_timestamp": 1}})),
    Case("orders-refund-past-late-window", "orders: an order of 2025-10-01 in the 2025-12-15 file, status `refunded`"
         " (or `cancelled`)", "accepted: a status change of an earlier order, within `status_change_window_days` (180);"
         " keeps its own timestamp", orders(order(timestamp="2025-10-01T09:00:00", status="refunded")),
         Expect(staged={"orders": 1})),
    Case("orders-file-of-another-date", "orders: the 2025-12-15 file is a copy of 2025-12-11's (every order of that day)",
         "staged as late rows of 2025-12-11 (none counts on 2025-12-15); the quality gate blocks the date: "
         "`share of orders from another business day than the load date` 100 % > `late_fail_pct` (90 %), with what "
         "to do (compare with the sender, restate; `--checks-late-fail-pct 100` if really late)",
         merge(orders(*(order(order_id=f"ORD_{i}", timestamp=f"2025-12-11T{i:02d}:00:00") for i in range(12))),
               events()),
         Expect(staged={"orders": 12, "events": 1}),
         check=check_gate("stg_orders", "share of orders from another business day than the load date", "fail",
                          "fail: measured 100;", "python -m pipeline restate --date 2025-12-15",
                          "--checks-late-fail-pct 100")),
    Case("orders-prices-in-cents", "orders: `price` x 100 with `\"currency\": \"USD_CENTS\"` (catalog price 19.99)",
         "accepted (revenue 100x); the quality gate warns: `share of order lines priced far from the catalog price` "
         "above `price_off_catalog_warn_pct` (1 %), with what to do",
         merge(products(), events(),
               orders(order(price=1999, currency="USD_CENTS"), order(order_id="ORD_2", price=19.99))),
         Expect(staged={"orders": 2, "events": 1, "products": 1}),
         check=check_gate("fact_orders", "share of order lines priced far from the catalog price", "warn",
                          "warn: measured 50;", "python -m pipeline restate --date 2025-12-15")),
    Case("orders-huge-quantity", "orders: `quantity: 1000000`",
         "accepted; the quality gate warns: `order lines with an implausibly large quantity` (above "
         "`quantity_warn_max`, 1000), with what to do",
         merge(events(), orders(order(quantity=1_000_000))), Expect(staged={"orders": 1, "events": 1}),
         check=check_gate("fact_orders", "order lines with an implausibly large quantity", "warn",
                          "quantity above 1000")),
    Case("orders-invalid-status", "orders: `status: \"shipped\"`", "quarantined: `invalid_status`",
         orders(order(status="shipped")), Expect(staged={"orders": 0}, quarantined={"orders": {"invalid_status": 1}})),
    Case("orders-duplicate-exact", "orders: the same record twice in a day",
         "collapsed: one staged, one counted as duplicate", orders(order(), order()),
         Expect(staged={"orders": 1}, duplicates={"orders": 1})),
    Case("orders-duplicate-id-conflict", "orders: one `order_id` twice in a day, different content",
         "latest timestamp staged; the other quarantined: `duplicate_id_conflict` naming the kept row",
         orders(order(quantity=1), order(quantity=5, timestamp=f"{D}T11:00:00")),
         Expect(staged={"orders": 1}, quarantined={"orders": {"duplicate_id_conflict": 1}}),
         check=check_conflict_names_the_kept_row),
    Case("orders-duplicate-id-across-days", "orders: one `order_id` on 2025-12-14 and again on 2025-12-15",
         "accepted on both days; the later load date's version is current (`fact_orders`)",
         merge(orders(order(timestamp=f"{PREV}T10:00:00"), day=PREV), orders(order(quantity=3))),
         Expect(staged={"orders": 1}), check=check_order_redelivered_latest_wins),
    Case("orders-unknown-product", "orders: a `product_id` the catalog does not list",
         "accepted; `is_known_product = false` and an inferred `dim_product` member",
         merge(products(), orders(order(), order(order_id="ORD_2", product_id="PROD_9999"))),
         Expect(staged={"orders": 2, "products": 1}), check=check_unknown_product_is_flagged),
    Case("orders-unknown-user", "orders: a `user_id` the users snapshot does not list (`USER_9999`; `user_0155`, a"
         " listed id in lower case)",
         "accepted (each a new customer in `dim_user`, without city); the quality gate warns: `unknown user share of"
         " order lines` above `unknown_user_warn_pct` (1 %), naming them, with what to do",
         merge(users({"user_id": "USER_0001", "city": "Oslo", "country": "Norway"},
                     {"user_id": "USER_0155", "city": "Bergen", "country": "Norway"}), events(),
               orders(order(), order(order_id="ORD_2", user_id="USER_9999"),
                      order(order_id="ORD_3", user_id="user_0155"))),
         Expect(staged={"orders": 3, "events": 1, "users": 2}),
         check=check_gate("unknown_users", "unknown user share of order lines", "warn",
                          "2 of the 3 order lines of 2025-12-15", "USER_9999", "user_0155",
                          "python -m pipeline restate --catalog users --date <its date>).")),
    Case("orders-number-not-plain", "orders: `price: \"1_999.00\"`, `\"1,999.00\"`, `\"inf\"`, `\"0x10\"`, "
         "`\"1 999\"`, `quantity: \"1_0\"`",
         "quarantined: `invalid_price`, `invalid_quantity` (DuckDB's own cast would read 1999.00 and 10)",
         orders(order(price="1_999.00"), order(order_id="ORD_2", price="1,999.00"),
                order(order_id="ORD_3", price="inf"), order(order_id="ORD_4", price="0x10"),
                order(order_id="ORD_5", price="1 999"), order(order_id="ORD_6", quantity="1_0"),
                order(order_id="ORD_7")),
         Expect(staged={"orders": 1}, quarantined={"orders": {"invalid_price": 5, "invalid_quantity": 1}})),
    Case("orders-duplicate-json-key", "orders: `{..., \"price\": 1, \"price\": 999}` (a key twice)",
         "quarantined: `duplicate_json_key` naming the key",
         raw_orders(b'[{"order_id": "ORD_1", "user_id": "USER_0001", "product_id": "PROD_0001", "quantity": 1,'
                    b' "price": 1, "timestamp": "2025-12-15T10:00:00", "status": "paid", "price": 999},'
                    + json.dumps(order(order_id="ORD_2")).encode() + b"]"),
         Expect(staged={"orders": 1}, quarantined={"orders": {"duplicate_json_key": 1}})),
    Case("orders-id-not-string-or-integer", "orders: `order_id: 515151.0`, `user_id: {..}`, `[..]`, `true`; "
         "`order_id: 515151` and `\"515151\"`",
         "quarantined: `invalid_order_id`, `invalid_user_id` (never staged as JSON text); 515151 and \"515151\" "
         "are one id (the later version staged, the other `duplicate_id_conflict`)",
         orders(order(order_id=515151.0), order(order_id="ORD_2", user_id={"id": 1}),
                order(order_id="ORD_3", user_id=[1]), order(order_id="ORD_4", user_id=True),
                order(order_id=515151), order(order_id="515151", quantity=3)),
         Expect(staged={"orders": 1}, quarantined={"orders": {
             "invalid_order_id": 1, "invalid_user_id": 3, "duplicate_id_conflict": 1}}),
         check=check_integer_and_string_id_are_one_order),
    Case("orders-id-nan-or-infinity", "orders: `product_id: NaN`, `user_id: Infinity`, `order_id: -Infinity` (not"
         " JSON, but Python's `json.dumps` writes them and DuckDB's reader takes them, in any case)",
         "quarantined: `invalid_product_id`, `invalid_user_id`, `invalid_order_id` (detail \"a JSON NaN or"
         " Infinity\"), never staged as the id `NaN`; the string `\"NaN\"` is a text id like any other",
         orders(order(product_id=float("nan")), order(order_id="ORD_2", user_id=float("inf")),
                order(order_id=float("-inf")), order(order_id="ORD_4", product_id="NaN")),
         Expect(staged={"orders": 1}, quarantined={"orders": {
             "invalid_product_id": 1, "invalid_user_id": 1, "invalid_order_id": 1}}),
         check=check_nan_ids_named),
    Case("orders-unicode-whitespace", "orders: a tab, a no-break space, U+3000 around `user_id` and `status`",
         "trimmed like a space: one user, status `paid`",
         orders(order(user_id="\tUSER_0001", status="paid\t"), order(order_id="ORD_2", user_id="USER_0001\u00a0"),
                order(order_id="ORD_3", user_id="\u3000USER_0001\ufeff", status="\u2003PAID")),
         Expect(staged={"orders": 3}), check=check_one_user_after_trimming),
    Case("orders-status-look-alike", "orders: `status: \"PA\u0130D\"` (a dotted capital I); events: `VIEW_PRODUCT`,"
         " `chec\u212aout` (a Kelvin sign)", "quarantined: `invalid_status`, `unknown_event_type` (lower case folds"
         " ASCII letters only: `PAID` and `VIEW_PRODUCT` are valid)",
         merge(orders(order(status="PA\u0130D"), order(order_id="ORD_2", status="PAID")),
               events(event_line(event_type="VIEW_PRODUCT"), event_line("E2", event_type="VI\u0130EW_PRODUCT"),
                      event_line("E3", event_type="chec\u212aout"))),
         Expect(staged={"orders": 1, "events": 1},
                quarantined={"orders": {"invalid_status": 1}, "events": {"unknown_event_type": 2}})),
    Case("orders-nul-character", "orders: `\\u0000` in `user_id`; another order with it in an unused field",
         "the first quarantined: `invalid_user_id`, the NUL written as `\\u0000` in `bad_records`; the other accepted",
         orders(order(user_id="USER\u00000001"), order(order_id="ORD_2", note="gift\u0000wrap")),
         Expect(staged={"orders": 1}, quarantined={"orders": {"invalid_user_id": 1}}),
         check=check_nul_escaped_in_bad_records),
    Case("orders-id-too-long", "orders: a 3,000-character `user_id`",
         "quarantined: `invalid_user_id` (longer than `[model] max_id_length`, 256)",
         orders(order(user_id="U" * 3000), order(order_id="ORD_2")),
         Expect(staged={"orders": 1}, quarantined={"orders": {"invalid_user_id": 1}})),
    Case("orders-record-too-large", "orders: an order with a 2.1 MB extra field; another with a 1 MB `status`",
         "the first rejected: `a record of 2,100,... bytes, over the limit of 2,000,000 bytes per record` (one limit"
         " for every source, its text kept whole in `audit/rejected_lines`); the second quarantined: `invalid_status`,"
         " its message and `failing_value` quoting its first 200 characters and its length, its raw record whole",
         orders(order(note="n" * 2_100_000), order(order_id="ORD_2", status="s" * 1_000_000), order(order_id="ORD_3")),
         Expect(staged={"orders": 1}, rejected={"orders": 1}, quarantined={"orders": {"invalid_status": 1}}),
         check=check_rejected_records_named([(1, "over the limit of 2,000,000 bytes per record")])),
    Case("orders-timestamp-bad-offset-or-clock", "orders: `...T10:00:00+25:00`, `...T24:00:00`, `...+05:60`",
         "quarantined: `invalid_timestamp`",
         orders(order(timestamp=f"{D}T10:00:00+25:00"), order(order_id="ORD_2", timestamp=f"{D}T24:00:00"),
                order(order_id="ORD_3", timestamp=f"{D}T10:00:00+05:60")),
         Expect(staged={"orders": 0}, quarantined={"orders": {"invalid_timestamp": 3}})),
    Case("orders-evening-western-offset", "orders: `2025-12-15T23:30:00-05:00` (04:30 UTC the next day)",
         "accepted: written with the load date, so not from the future (stored in UTC)",
         orders(order(timestamp=f"{D}T23:30:00-05:00"), order(order_id="ORD_2", timestamp=f"{D}T21:00:00-05:00")),
         Expect(staged={"orders": 2}), check=check_evening_in_western_offset_is_staged),
    Case("orders-timestamp-epoch-ms", "orders: `1765792800123` (epoch milliseconds)", "normalised to UTC",
         orders(order(timestamp="1765792800123")), Expect(staged={"orders": 1}), check=check_epoch_milliseconds_parsed),
    Case("orders-timestamp-lower-case-t-z", "orders: `2025-12-15t10:00:00z`, `2025-12-15t12:00:00+01:00` (RFC 3339"
         " allows a lower-case `t` and `z`)", "accepted; normalised to UTC",
         orders(order(timestamp=f"{D}t10:00:00z"), order(order_id="ORD_2", timestamp=f"{D}t12:00:00+01:00")),
         Expect(staged={"orders": 2}), check=check_lower_case_t_and_z_read),
    Case("orders-timestamp-date-only", "orders: `timestamp: \"2025-12-15\"` (a date without a time)",
         "quarantined: `invalid_timestamp` (\"a date without a time of day\": never guessed as midnight)",
         orders(order(timestamp=str(D))),
         Expect(staged={"orders": 0}, quarantined={"orders": {"invalid_timestamp": 1}}),
         check=check_date_alone_says_the_time_is_required),
    Case("orders-ids-unicode-forms", "orders: `user_id` `USER_\u00c91` written precomposed (U+00C9) and as `USER_E`,"
         " a combining accent U+0301, `1` (the same order twice); a fullwidth `\uff35\uff33\uff25\uff32_0001`",
         "accepted: ids are compared in Unicode NFC, so the two forms are one order of one user (the later version"
         " staged, the other `duplicate_id_conflict`); the fullwidth id is another id (NFC, not NFKC: see"
         " pipeline.md, Ids)",
         orders(order(user_id="USER_\u00c91"), order(user_id="USER_E\u03011", quantity=3),
                order(order_id="ORD_2", user_id="\uff35\uff33\uff25\uff32_0001")),
         Expect(staged={"orders": 2}, quarantined={"orders": {"duplicate_id_conflict": 1}}),
         check=check_one_id_in_any_unicode_form),
    Case("orders-numeric-ids", "orders: `product_id: 89`, `user_id: 4512` (JSON numbers), `\"00089\"`,"
         " `\"0004512\"`; products file: `product_id: 89`", "accepted: a user or product id of digits is the"
         " catalog's numeric id in every source, as the catalog API's id is, leading zeros dropped: `PROD_0089`,"
         " `USER_4512`",
         merge(orders(order(product_id=89, user_id=4512), order(order_id="ORD_2", product_id="00089",
                                                                 user_id="0004512")),
               products({"product_id": 89, "product_name": "Lamp", "current_price": 5})),
         Expect(staged={"orders": 2, "products": 1}), check=check_numeric_ids_are_the_catalogs),
    Case("orders-second-line-of-an-order", "orders: one `order_id` with two products (two lines)",
         "one row per order: the later line staged, the other quarantined: `multiple_order_lines`",
         orders(order(product_id="PROD_0001"), order(product_id="PROD_0002")),
         Expect(staged={"orders": 1}, quarantined={"orders": {"multiple_order_lines": 1}}),
         check=check_second_line_names_the_kept_row),
    # ------------------------------------------------------------------------------ events (CSV)
    Case("events-line-too-large", "events: a line of 2.1 MB (a long `event_type`)",
         "rejected: `a record of 2,100,... bytes, over the limit of 2,000,000 bytes per record`, as an order; the"
         " whole line in `audit/rejected_lines`",
         events(event_line(event_type="v" * 2_100_000), event_line("E2")),
         Expect(staged={"events": 1}, rejected={"events": 1}),
         check=check_rejected_records_named([(2, "over the limit of 2,000,000 bytes per record")], "events")),
    Case("events-empty-file", "events: empty file", "fails: `SourceFileInvalid` naming the file; nothing landed",
         raw_events(b""), Expect(fails=("events", "SourceFileInvalid", ("events.csv", "empty")))),
    Case("events-header-is-a-secret", "events: a first line that is not a header but a secret",
         "fails: `SourceFileInvalid` naming the missing columns, not quoting the line; nothing landed",
         raw_events(f"{SECRET_KEY}={SECRET}\nE1,U1\n".encode()),
         Expect(fails=("events", "SourceFileInvalid", ("events.csv", "line 1 (header)", "event_type")),
                not_in_message=(SECRET, SECRET_KEY))),
    Case("events-symlink", "events: `events.csv` is a symbolic link to a file outside the data folder",
         "fails: `UnsafeSourcePath`, not quoting the target's content; nothing landed", {},
         Expect(fails=("events", "UnsafeSourcePath", ("events.csv", "symbolic link")), not_in_message=(SECRET,)),
         prepare=link_events_outside),
    Case("events-extra-file", "events: another file (`notes.txt`) beside `events.csv`",
         "fails: `UnexpectedSourceFiles` naming it; nothing landed",
         merge(events(event_line("E1")), {f"events/{D}/notes.txt": b"x"}),
         Expect(fails=("events", "UnexpectedSourceFiles", ("notes.txt", "events.csv")))),
    Case("events-header-only", "events: header line only (a day without events)",
         "accepted: 0 rows landed and staged; the quality gate blocks the date unless it is rerun with"
         " `--checks-events-volume-fail-low-ratio 0` (see quality-gate.md)",
         raw_events((HEADER + "\n").encode()), Expect(staged={"events": 0})),
    Case("events-every-line-short", "events: a header, then only lines with too few fields",
         "fails: `SourceFileInvalid` (none of its records could be landed: a damaged file); nothing landed",
         raw_events((HEADER + "\nE1,USER_0001\nE2,USER_0002\n").encode()),
         Expect(fails=("events", "SourceFileInvalid", ("events.csv", "none of its 2 record(s) could be landed")))),
    Case("events-missing-required-column", "events: header without `event_type`",
         "fails: `SourceFileInvalid` naming the file, line 1 and the missing column; nothing landed",
         events("E1,USER_0001,PROD_0001,2025-12-15T10:00:00", header="event_id,user_id,product_id,event_ts"),
         Expect(fails=("events", "SourceFileInvalid", ("events.csv", "line 1 (header)", "event_type")))),
    Case("events-semicolon-delimited", "events: a file delimited with `;` instead of commas",
         "fails: `SourceFileInvalid` saying line 1 (header) looks semicolon-delimited and the file must be"
         " comma-delimited; nothing landed",
         raw_events((HEADER.replace(",", ";") + "\n" + event_line().replace(",", ";") + "\n").encode()),
         Expect(fails=("events", "SourceFileInvalid", ("events.csv", "looks semicolon-delimited",
                                                       "must be comma-delimited")))),
    Case("events-no-header", "events: no header line (line 1 is an event)",
         "fails: `SourceFileInvalid` saying the file has no header line and which line to add, not quoting line 1;"
         " nothing landed",
         raw_events((event_line("E1") + "\n" + event_line("E2") + "\n").encode()),
         Expect(fails=("events", "SourceFileInvalid", ("events.csv", "no header line", HEADER)),
                not_in_message=("USER_0001",))),
    Case("events-utf8-bom", "events: UTF-8 byte order mark", "accepted (the header is matched without it)",
         events(event_line("E1"), event_line("E2"), bom=True), Expect(staged={"events": 2}),
         check=check_crlf_and_bom_values_clean),
    Case("events-crlf", "events: CRLF line ends", "accepted; no `\\r` left in values",
         events(event_line("E1"), event_line("E2"), newline="\r\n"), Expect(staged={"events": 2}),
         check=check_crlf_and_bom_values_clean),
    Case("events-quoted-commas", "events: `\"USER,0001\"` (a quoted comma)", "accepted; the comma is data",
         events('E1,"USER,0001",PROD_0001,view_product,2025-12-15T10:00:00'), Expect(staged={"events": 1}),
         check=check_quoted_comma_kept),
    Case("events-embedded-newline", "events: a quoted value spanning two lines",
         "both lines rejected into `audit/rejected_lines` (events are one record per line); the rest lands",
         events(event_line("E1"), 'E2,"USER\n0002",PROD_0001,view_product,2025-12-15T10:00:00', event_line("E3")),
         Expect(staged={"events": 2}, rejected={"events": 2})),
    Case("events-unterminated-quote-first", "events: an unterminated quote on the first data line",
         "that line rejected into `audit/rejected_lines`; every other line lands",
         events('E1,"USER_0001,PROD_0001,view_product,2025-12-15T10:00:00', event_line("E2"), event_line("E3"),
                event_line("E4")),
         Expect(staged={"events": 3}, rejected={"events": 1})),
    Case("events-unterminated-quote-middle", "events: an unterminated quote on a line in the middle",
         "that line rejected into `audit/rejected_lines`; every other line lands (the reader does not run on)",
         events(*(event_line(f"E{i}") for i in range(1, 10)), 'E10,"USER_0010,PROD_0001,view_product,x',
                *(event_line(f"E{i}") for i in range(11, 21))),
         Expect(staged={"events": 19}, rejected={"events": 1})),
    Case("events-quote-runs-on", "events: a quote inside a value opens a quoted value that ends lines later",
         "that line rejected (its quoting does not close on the line); every other line lands",
         events(event_line("E1"), 'E2,USER "x,y,"z,view_product,2025-12-15T10:00:00', event_line("E3"),
                'E4,USER_0004,PROD_0001",view_product,2025-12-15T10:00:00', event_line("E5")),
         Expect(staged={"events": 4}, rejected={"events": 1})),
    Case("events-stray-carriage-return", "events: a carriage return in the middle of a line",
         "that line rejected; every other line lands",
         events(event_line("E1"), "E2,USER_0002\r,PROD_0001,view_product,2025-12-15T10:00:00", event_line("E3")),
         Expect(staged={"events": 2}, rejected={"events": 1})),
    Case("events-blank-lines", "events: blank lines between and after the events",
         "accepted; blank lines are no records (counted in the manifest as `blank_lines`)",
         events(event_line("E1"), "", event_line("E2"), "", ""), Expect(staged={"events": 2})),
    Case("events-lineage-named-columns", "events: extra columns `_row_number`, `_source_file`, `load_date`",
         "accepted; kept in raw as `csv__row_number`, `csv__source_file`, `csv_load_date`: lineage untouched",
         events(event_line("E1") + ",99,elsewhere.csv,1999-01-01", event_line("E2") + ",98,x,y",
                header=HEADER + ",_row_number,_source_file,load_date"),
         Expect(staged={"events": 2}), check=check_lineage_kept_beside_same_named_columns),
    Case("events-gzip", "events: `events.csv.gz` with an unterminated quote in the middle",
         "accepted (gzip is read); that line rejected, the rest lands",
         renamed(events(event_line("E1"), 'E2,"USER_0002,PROD_0001,view_product,x', event_line("E3")), ".gz",
                 gzip.compress), Expect(staged={"events": 2}, rejected={"events": 1})),
    Case("events-zstd-plain-name", "events: zstd content under the name `events.csv`",
         "accepted (compression is recognised by the file's first bytes)",
         renamed(events(event_line("E1"), event_line("E2")), compress=zstd), Expect(staged={"events": 2})),
    Case("events-bzip2", "events: a bzip2 file named `events.csv.gz`",
         "fails: `SourceFileCompressed` saying the file is bzip2-compressed; nothing landed",
         {f"events/{D}/events.csv.gz": b"BZh91AY&SY" + b"\x00" * 30},
         Expect(fails=("events", "SourceFileCompressed", ("events.csv.gz", "bzip2-compressed")))),
    Case("events-gzip-cut-off", "events: `events.csv.gz` cut off before its end (a transfer that stopped)",
         "fails: `SourceFileInvalid` naming the file (\"cannot be decompressed as gzip\", cut off or damaged);"
         " nothing landed",
         {f"events/{D}/events.csv.gz": gzip.compress(events(*(event_line(f"E{i}") for i in range(200)))[
                                                 f"events/{D}/events.csv"])[:-12]},
         Expect(fails=("events", "SourceFileInvalid", ("events.csv.gz", "cannot be decompressed as gzip")))),
    Case("events-unterminated-quote", "events: an unterminated quote on the last line",
         "that line rejected into `audit/rejected_lines` (file, line, text, error); the rest lands",
         events(event_line("E1"), 'E2,"USER_0002,PROD_0002,view_product,2025-12-15T10:00:00'),
         Expect(staged={"events": 1}, rejected={"events": 1})),
    Case("events-cut-off", "events: the file ends mid-line (its last line has no line end and too few fields: an"
         " export that stopped)",
         "fails: `SourceFileInvalid` naming the file and its last line (\"probably cut off\"); nothing landed (with a"
         " line end, that line alone would be rejected)",
         raw_events(f"{HEADER}\n{event_line('E1')}\nE2,USER_0002,PROD_0".encode()),
         Expect(fails=("events", "SourceFileInvalid", ("events.csv", "its last line, 3, has no line end")),
                not_in_message=("USER_0002",))),
    Case("events-columns-reordered", "events: the columns in another order", "accepted (matched by name)",
         events("purchase,2025-12-15T10:00:00,PROD_0002,USER_0001,E1",
                header="event_type,event_ts,product_id,user_id,event_id"),
         Expect(staged={"events": 1}), check=check_reordered_columns),
    Case("events-extra-columns", "events: an extra `campaign` column", "accepted; the column is kept in raw",
         events(event_line("E1") + ",spring", header=HEADER + ",campaign"), Expect(staged={"events": 1}),
         check=check_extra_columns_kept),
    Case("events-short-row", "events: a line with too few fields",
         "that line rejected into `audit/rejected_lines`; the rest lands",
         events(event_line("E1"), "E2,USER_0002"), Expect(staged={"events": 1}, rejected={"events": 1})),
    Case("events-long-row", "events: a line with too many fields",
         "that line rejected into `audit/rejected_lines`; the rest lands",
         events(event_line("E1"), event_line("E2") + ",surplus"), Expect(staged={"events": 1}, rejected={"events": 1})),
    Case("events-invalid-utf8", "events: a line with invalid UTF-8",
         "that line rejected into `audit/rejected_lines`; the rest lands",
         raw_events((HEADER + "\n" + event_line("E1") + "\n").encode() + b"E2,USER_\xff2,PROD_0001,view_product,"
                    b"2025-12-15T10:00:00\n"),
         Expect(staged={"events": 1}, rejected={"events": 1})),
    Case("events-unknown-event-type", "events: `event_type: teleport` (and empty)",
         "quarantined: `unknown_event_type`",
         events(event_line("E1"), event_line("E2", event_type="teleport"), event_line("E3", event_type="")),
         Expect(staged={"events": 1}, quarantined={"events": {"unknown_event_type": 2}})),
    Case("events-missing-product", "events: `add_to_cart` without a product (a `page_view` without one)",
         "quarantined: `missing_product_id` (the page view is accepted)",
         events(event_line("E1", product_id="", event_type="add_to_cart"),
                event_line("E2", product_id="", event_type="page_view")),
         Expect(staged={"events": 1}, quarantined={"events": {"missing_product_id": 1}})),
    Case("events-null-user-id", "events: an empty `user_id`", "quarantined: `missing_user_id`",
         events(event_line("E1", user_id="")),
         Expect(staged={"events": 0}, quarantined={"events": {"missing_user_id": 1}})),
    Case("events-timestamp-epoch-and-offset", "events: `1765792800` and `2025-12-15T11:00:00+01:00`",
         "normalised to UTC",
         events(event_line("E1", ts="1765792800"), event_line("E2", ts="2025-12-15T11:00:00+01:00")),
         Expect(staged={"events": 2})),
    Case("events-late-for-earlier-day", "events: an event of 2025-12-12 in the 2025-12-15 file",
         "accepted (late-arriving); keeps its own timestamp and the file's load date",
         events(event_line("E1", ts="2025-12-12T23:30:00")), Expect(staged={"events": 1}),
         check=check_late_event_keeps_its_day),
    Case("events-duplicate-id-within-day", "events: the same line twice, and an id reused with other content",
         "one collapsed as duplicate; the conflict quarantined: `duplicate_id_conflict`",
         events(event_line("E1"), event_line("E1"), event_line("E1", event_type="purchase", ts=f"{D}T09:00:00")),
         Expect(staged={"events": 1}, duplicates={"events": 1}, quarantined={"events": {"duplicate_id_conflict": 1}})),
    Case("events-column-named-raw-record", "events: an extra column `raw_record` (a name staging works with), an"
         " `event_id` reused with another user", "accepted; the column is data like any other extra column (the"
         " pipeline's own columns start with `_`): the reused id quarantined, `duplicate_id_conflict`",
         events(event_line("E1") + ",x", event_line("E1", user_id="USER_0002") + ",x",
                header=HEADER + ",raw_record"),
         Expect(staged={"events": 1}, quarantined={"events": {"duplicate_id_conflict": 1}})),
    Case("events-duplicate-id-across-days", "events: one `event_id` on 2025-12-14 and again on 2025-12-15",
         "accepted on both days; the first load date's event is current (a resend, `fact_events`)",
         merge(events(event_line("E1", ts=f"{PREV}T23:59:00"), day=PREV),
               events(event_line("E1", ts=f"{PREV}T23:59:00"))),
         Expect(staged={"events": 1}), check=check_event_resent_earliest_wins),
    Case("events-nul-byte", "events: a raw 0x00 byte inside `user_id`",
         "quarantined: `invalid_user_id`; `bad_records` holds the NUL as `\\u0000`",
         raw_events((HEADER + "\n" + event_line("E1") + "\n").encode()
                    + b"E2,USER_\x000002,PROD_0001,view_product,2025-12-15T10:00:00\n"),
         Expect(staged={"events": 1}, quarantined={"events": {"invalid_user_id": 1}})),
    Case("events-tab-around-id", "events: a tab around `user_id` and `event_type`", "trimmed like a space",
         events(event_line("E1", user_id="\tUSER_0001", event_type="view_product\t")), Expect(staged={"events": 1})),
    # --------------------------------------------------------------------------------- catalogs
    Case("products-api-page-missing-fields", "products API: a page whose items lack `price` and `title`",
         "landed as received; those items quarantined: `invalid_text` (no name); the rest staged",
         {}, Expect(staged={"products": 94}, quarantined={"products": {"invalid_text": 100}}),
         api_fault=("missing_fields", 1), check=check_api_page_missing_fields),
    Case("products-api-numbers-beyond-a-double", "products API: a page whose prices are written with digits no"
         " double holds (`9.9900000000000000000001`)", "quarantined: `invalid_price`, the number as the API wrote"
         " it (never read as a double, which rounds it to 9.99); the rest staged",
         {}, Expect(staged={"products": 94}, quarantined={"products": {"invalid_price": 100}}),
         api_fault=("precise_prices", 1), check=check_api_prices_quoted_as_written),
    Case("products-api-redirect-same-server", "products API: a page answered with a redirect to the same URL on the"
         " same server", "followed (same scheme, host and port); landed and staged",
         {}, Expect(staged={"products": 194}), api_fault=("redirect", 1)),
    Case("products-api-redirect-elsewhere", "products API: a page answered with a redirect to another port (or"
         " host, or scheme: `ftp://`, https to http)", "fails at once, not retried: `CatalogApiBadResponse` naming"
         " the target (secrets in it masked); nothing is fetched from there, nothing landed",
         {}, Expect(fails=("products", "CatalogApiBadResponse", ("redirect to http://127.0.0.1:1/products",
                                                                  "another scheme, host or port"))),
         api_fault=("redirect", 1), api_server={"redirect_to": "http://127.0.0.1:1"}),
    Case("products-api-deep-json", "products API: a page of 100 000 nested arrays (`[[[...]]]`)",
         "fails at once, not retried: `CatalogApiBadResponse` (JSON nested more than 64 levels), not a"
         " RecursionError; nothing landed",
         {}, Expect(fails=("products", "CatalogApiBadResponse", ("nested more than 64 levels",))),
         api_fault=("deep", 1)),
    Case("products-api-ids-repeated-as-text", "products API: the second page starts with products 51..100 of the first"
         " again, their ids as text (`\"51\"` after `51`), in every fetch", "the catalog changed while it was read"
         " (50 of its products came on an earlier page too: ids compared as staging reads them, one product): fetched"
         " again from the first page, `[catalog] attempts` times, then fails: `CatalogChangedWhileRead` (the catalog"
         " kept changing while it was read); nothing landed", {}, Expect(fails=("products", "CatalogChangedWhileRead", (
             "50 of its 94 products came on an earlier page too (id '51' ...)", "changed while it was read"))),
         api_fault=("shifted_text_ids", 1000, 1)),
    Case("products-api-ids-repeated-within-a-page", "products API: the first page holds products 1..90, then 1..10"
         " again (194 items for total 194, products 91..100 never served)", "fails: `CatalogApiBadResponse` (184"
         " distinct products of total=194, an id that came twice); nothing landed",
         {}, Expect(fails=("products", "CatalogApiBadResponse", (
             "only 184 distinct products of total=194", "(id 1 came twice on the page at skip=0)",
             "nothing was landed"))), api_fault=("repeats_within", 1)),
    Case("products-api-total-shrinks", "products API: the second page says `total` 189, the first said 194, in the"
         " first fetch only", "the catalog changed while it was read (`CatalogChangedWhileRead`, transient): fetched"
         " again from the first page after `[catalog] retry_delay_seconds`; landed and staged whole",
         {}, Expect(staged={"products": 194}), api_fault=("total_dropped", 1, 1)),
    Case("products-api-limit-echoed", "products API: every page's `limit` is the one asked for (100), the last one"
         " holding 94 items", "accepted (a last page holds `total - skip` items); landed and staged; a page before"
         " the last holding fewer than `limit` is still a short page", {}, Expect(staged={"products": 194}),
         api_server={"echo_limit": True}),
    Case("products-gzip", "products file: `products_D.json.gz` (a gzip-compressed snapshot)", "accepted",
         renamed(products(), suffix=".gz", compress=gzip.compress), Expect(staged={"products": 1})),
    Case("products-negative-price", "products file: `current_price: -1`",
         "quarantined: `negative_price` (the product stays listed with its last valid version)",
         products({"product_id": "PROD_0001", "product_name": "Lamp", "current_price": 5},
                  {"product_id": "PROD_0002", "product_name": "Shade", "current_price": -1}),
         Expect(staged={"products": 1}, quarantined={"products": {"negative_price": 1}})),
    Case("products-missing-name", "products file: no `product_name`, `null`, `\"  \"`; products API: an item"
         " without `title`", "quarantined: `invalid_text` (detail: the name is missing), the product stays listed"
         " with its last valid version; the rest staged (a nameless product would fail dim_product's gate)",
         products({"product_id": "PROD_0001", "current_price": 5}, {"product_id": "PROD_0002", "product_name": None,
                                                                   "current_price": 5},
                  {"product_id": "PROD_0003", "product_name": "  ", "current_price": 5},
                  {"id": 4, "price": 5}, {"product_id": "PROD_0005", "product_name": "Lamp", "current_price": 5}),
         Expect(staged={"products": 1}, quarantined={"products": {"invalid_text": 4}}),
         check=check_missing_names_quarantined),
    Case("users-missing-id", "users file: a record without `user_id`", "quarantined: `missing_user_id`",
         users({"user_id": "USER_0001", "city": "Oslo"}, {"first_name": "Nobody"}),
         Expect(staged={"users": 1}, quarantined={"users": {"missing_user_id": 1}})),
    Case("products-strict-values", "products file: a key twice, `product_id: 12.5`, a NUL in `product_name`",
         "quarantined: `duplicate_json_key`, `invalid_product_id`, `invalid_text`",
         {f"products/products_{D}.json": b'[{"product_id": "PROD_0001", "current_price": 1, "current_price": 9},'
          b' {"product_id": 12.5, "current_price": 1},'
          b' {"product_id": "PROD_0003", "product_name": "Sh\\u0000ade", "current_price": 1},'
          b' {"product_id": "PROD_0004", "product_name": "Lamp", "current_price": 1}]'},
         Expect(staged={"products": 1}, quarantined={"products": {
             "duplicate_json_key": 1, "invalid_product_id": 1, "invalid_text": 1}})),
    Case("users-nul-in-city", "users file: a NUL character in `city`", "quarantined: `invalid_text`",
         users({"user_id": "USER_0001", "city": "Oslo"}, {"user_id": "USER_0002", "city": "Ber\u0000gen"}),
         Expect(staged={"users": 1}, quarantined={"users": {"invalid_text": 1}})),
    Case("users-city-renamed", "users file (API shape): `address.city` renamed `address.town` in every record (a"
         " changed export)", "staged, without a city; the quality gate blocks every date the snapshot covers: `share"
         " of catalog users without a city` 100 % > `catalog_field_missing_fail_pct` (50 %), naming the snapshot and"
         " the count, with what to do (a corrected file, `restate --catalog users`; or"
         " `--checks-catalog-field-missing-fail-pct 100`)",
         merge(users({"id": 1, "firstName": "Eve", "address": {"town": "Oslo", "country": "Norway"}},
                     {"id": 2, "firstName": "Ann", "address": {"town": "Bergen", "country": "Norway"}}),
               events(), orders(order())),
         Expect(staged={"orders": 1, "events": 1, "users": 2}),
         check=check_gate("catalog_snapshots", "share of catalog users without a city", "fail",
                          "2 of the 2 users of the snapshot of 2025-12-15 (covering 2025-12-15) have no city",
                          "restate --catalog users", "--checks-catalog-field-missing-fail-pct 100")),
    Case("catalog-control-characters", "products file: an escape sequence in `product_name`, a bell in `brand`, a line"
         " break in `category`, a tab in a name; users file: an escape sequence in `first_name`",
         "quarantined: `invalid_text` (detail: which field holds a control character); the product keeps its last"
         " valid version (they would act on the terminal of whoever reads the value in psql, break a CSV line)",
         merge(products({"product_id": "PROD_0001", "product_name": "Lamp\u001b[2J", "current_price": 1},
                        {"product_id": "PROD_0002", "product_name": "Shade", "brand": "Acme\u0007", "current_price": 1},
                        {"product_id": "PROD_0003", "product_name": "Desk", "category": "home\ndecor", "current_price": 1},
                        {"product_id": "PROD_0004", "product_name": "Tab\tle", "current_price": 1},
                        {"product_id": "PROD_0005", "product_name": "Chair", "current_price": 1}),
               users({"user_id": "USER_0001", "first_name": "\u001b]0;owned\u0007Eve", "city": "Oslo"},
                     {"user_id": "USER_0002", "first_name": "Ann", "city": "Bergen"})),
         Expect(staged={"products": 1, "users": 1},
                quarantined={"products": {"invalid_text": 4}, "users": {"invalid_text": 1}}),
         check=check_control_characters_named),
    Case("catalog-text-not-a-string", "products file: `category: {\"slug\": \"beauty\", ...}` or"
         " `[\"mens-watches\"]`, `brand: {\"name\": \"Essence\"}`; users file: `address.city: {\"name\":"
         " \"Phoenix\"}`, `country: true`",
         "quarantined: `invalid_text` (detail: the field and its JSON type, \"category is a JSON object\"), never"
         " published as JSON text; the product keeps its last valid version; a string that looks like JSON is text",
         merge(products({"product_id": "PROD_0001", "product_name": "Lipstick", "current_price": 1,
                         "category": {"slug": "beauty", "name": "Beauty"}},
                        {"product_id": "PROD_0002", "product_name": "Watch", "current_price": 1,
                         "category": ["mens-watches"]},
                        {"product_id": "PROD_0003", "product_name": "Mascara", "current_price": 1,
                         "brand": {"name": "Essence"}},
                        {"product_id": "PROD_0004", "product_name": "Lamp", "current_price": 1, "category": "{beauty}"}),
               users({"id": 1, "firstName": "Ann", "address": {"city": {"name": "Phoenix"}, "country": "US"}},
                     {"user_id": "USER_0002", "first_name": "Bo", "city": "Oslo", "country": True},
                     {"id": 3, "firstName": "Cy", "address": {"city": "Phoenix", "country": "US"}})),
         Expect(staged={"products": 1, "users": 1},
                quarantined={"products": {"invalid_text": 3}, "users": {"invalid_text": 2}}),
         check=check_text_not_a_string_named),
    Case("products-api-nested-category", "products API: a page whose items' `category` is an object"
         " (`{\"slug\": \"beauty\", \"name\": \"Beauty\"}`)",
         "quarantined: `invalid_text` (\"category is a JSON object\"), never published as JSON text; the rest staged",
         {}, Expect(staged={"products": 94}, quarantined={"products": {"invalid_text": 100}}),
         api_fault=("nested_text", 1), check=check_api_nested_category_named),
    # ------------------------------------------------------------------------------------- rerun
    Case("rerun-after-partial-failure", "a run fails on malformed orders after events landed; the file is fixed",
         "the rerun lands and stages orders only (events are not landed again), removes a killed "
         "writer's temporary file, and reconciles",
         merge(raw_orders(b'[{"order_id": "ORD_1"'), events(event_line("E1"), event_line("E2"))),
         Expect(staged={"orders": 2, "events": 2}), fix=orders(order(), order(order_id="ORD_2"))),
]


# --------------------------------------------------------------------------------------- running
@dataclasses.dataclass
class Outcome:
    errors: dict[tuple[str, dt.date], BaseException] = dataclasses.field(default_factory=dict)
    staged: set[tuple[str, dt.date]] = dataclasses.field(default_factory=set)  # (source, partition date)


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def days_of(files: dict[str, bytes]) -> list[dt.date]:
    found = {dt.date.fromisoformat(m.group(0)) for rel in files for m in [re.search(r"\d{4}-\d{2}-\d{2}", rel)] if m}
    return sorted(found | {D})


def run_date(day: dt.date, sources: list[str], outcome: Outcome) -> None:
    """Land then stage each source of a date through its Luigi task, as the scheduler would."""
    for source in sources:
        land = LAND[source](date=day)
        try:
            if not land.complete():
                land.run()
        except Exception as err:  # noqa: BLE001 - the case asserts on it
            outcome.errors[(source, day)] = err
            continue
        outcome.errors.pop((source, day), None)
        stage = STAGE[source](date=day)
        if not stage.complete():
            stage.run()
        partition_day = catalog_cover.covering_snapshot(source, day) if source in landing.CATALOGS else day
        if partition_day is not None:
            outcome.staged.add((source, partition_day))


def sources_of(files: dict[str, bytes], day: dt.date, api: bool, incoming: Path) -> list[str]:
    names = [rel for rel in files if str(day) in rel]
    found = [s for s in ("products", "users", "orders", "events")
             if any(rel.startswith(s + "/") for rel in names) or os.path.lexists(incoming / s / str(day))]
    return (["products"] if api and day == D else []) + found


def run_case(case: Case, incoming: Path, written: dict[str, bytes] | None = None) -> Outcome:
    """Write the case's files (or `written`), then run every date and source the case has."""
    outcome = Outcome()
    write_files(incoming, case.files if written is None else written)
    if written is None and case.prepare is not None:
        case.prepare(incoming)
    api = case.api_fault is not None or case.api_server is not None
    for day in days_of(case.files):
        run_date(day, sources_of(case.files, day, api, incoming), outcome)
    return outcome


def partition_rows(layer: str, table: str, day: dt.date, **keys: str) -> int:
    path = lake.partition_file(layer, table, day, **keys)
    return duckdb.sql("select count(*) from read_parquet($p)", params={"p": path}).fetchall()[0][0]


def assert_reconciled(source: str, day: dt.date) -> dict[str, Any]:
    """raw = staged + quarantined + duplicates, from the lake's audit/reconciliation, and each figure
    equal to the rows of the partition it counts."""
    table = staging.staging_table(source)
    record = rows.reconciliation(table, day)
    assert record["is_balanced"], record
    assert record["raw_count"] == record["staged_count"] + record["quarantined_count"] + record["duplicate_count"]
    assert record["raw_count"] == partition_rows("raw", source, day)
    assert record["staged_count"] == partition_rows("staging", table, day)
    assert record["quarantined_count"] == partition_rows("audit", "bad_records", day, source_table=table)
    assert record["source_records"] == record["raw_count"] + record["rejected_count"], record
    rejected = lake.partition_file("audit", "rejected_lines", day, source_table=source)
    assert record["rejected_count"] == (partition_rows("audit", "rejected_lines", day, source_table=source)
                                        if os.path.exists(rejected) else 0)
    return record


def content_of(path: Path) -> bytes:
    """A file's bytes, decompressed (gzip, zstd)."""
    data = path.read_bytes()
    if data.startswith(b"\x1f\x8b"):
        return gzip.decompress(data)
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        import pyarrow as pa

        return pa.input_stream(str(path), compression="zstd").read()
    return data


def file_records(path: Path) -> int:
    """The records of a source file, counted independently of the landing: events and NDJSON are one record
    per line (blank lines are none; a CSV header is none), a JSON array one per element."""
    data = content_of(path)
    if path.name.startswith("orders.json"):
        return len(json.loads(data))
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if path.name.startswith("events"):
        return sum(1 for line in lines[1:] if line not in (b"", b"\r"))
    return sum(1 for line in lines if line.strip(b" \t\r"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, lake_root: Path, incoming: Path, monkeypatch: pytest.MonkeyPatch,
                   luigi_settings: Callable[..., None]) -> None:
    """One case of the catalog: land and stage it, check the behaviour and the reconciliation."""
    server = None
    if case.api_fault is not None or case.api_server is not None:
        luigi_settings("catalog", retry_delay_seconds=0.05)  # a fetch the task tries again, without 5 minutes' wait
        server = DummyJsonServer().start()
        for name, value in (case.api_server or {}).items():
            setattr(server, name, value)
        if case.api_fault is not None:
            server.fail_next(*case.api_fault)
        monkeypatch.setenv("ECOMM_PRODUCTS_URL", server.url)
    try:
        outcome = run_case(case, incoming)
        if case.fix is not None:  # a partial failure, then the cause fixed and the date run again
            events_landed_at = assert_partial_failure(outcome)
            outcome = run_case(case, incoming, written=case.fix)
            assert os.stat(lake.partition_file("raw", "events", D)).st_mtime_ns == events_landed_at, \
                "the rerun landed events again"
            assert list(Path(lake.partition_dir("raw", "orders", D)).glob("*.tmp-*")) == []
    finally:
        if server is not None:
            server.stop()
    expect = case.expect
    if expect.fails is not None:
        source, error, fragments = expect.fails
        err = outcome.errors.get((source, D))
        assert err is not None, f"{case.id}: expected {error}, nothing failed"
        assert type(err).__name__ == error, repr(err)
        message = str(err)
        named = server.url if server is not None else str(incoming)  # the API's URL, or the file
        assert named in message, f"the message must name the file or the API: {message}"
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in {message!r}"
        for content in expect.not_in_message:
            assert content not in message, f"the message quotes the file: {message!r}"
        assert not os.path.exists(lake.partition_dir("raw", source, D)), "a failed landing left a partition"
        assert not os.path.exists(lake.partition_dir("staging", f"stg_{source}", D))
    else:
        assert outcome.errors == {}, outcome.errors
    for source, day in sorted(outcome.staged, key=str):
        assert_reconciled(source, day)
    for source, staged in expect.staged.items():
        day = D if source not in landing.CATALOGS else catalog_cover.covering_snapshot(source, D)
        record = assert_reconciled(source, day)
        assert record["staged_count"] == staged, record
        assert record["duplicate_count"] == expect.duplicates.get(source, 0), record
        reasons = Counter(r["reason_code"] for r in rows.bad_records(f"stg_{source}", day))
        assert reasons == Counter(expect.quarantined.get(source, {})), reasons
        assert set(reasons) <= set(staging.REASON_CODES)
    for source in ("orders", "events"):
        if source not in expect.staged:
            continue
        rejected = lake.partition_file("audit", "rejected_lines", D, source_table=source)
        rejected_rows = (partition_rows("audit", "rejected_lines", D, source_table=source)
                         if os.path.exists(rejected) else 0)
        assert rejected_rows == expect.rejected.get(source, 0)
        record = assert_reconciled(source, D)
        path = Path(landing.orders_file(D) if source == "orders" else landing.events_file(D))
        assert record["source_records"] == file_records(path), f"a record of {path.name} is not accounted for"
        assert record["raw_count"] + rejected_rows == file_records(path), f"a record of {path.name} was lost"
    if case.check is not None:
        case.check()


def assert_partial_failure(outcome: Outcome) -> int:
    """The first run of the rerun case: orders failed, events landed; return when events landed."""
    assert isinstance(outcome.errors.get(("orders", D)), landing.SourceFileInvalid), outcome.errors
    assert ("events", D) in outcome.staged and not os.path.exists(lake.partition_dir("raw", "orders", D))
    # and a writer killed mid-write left its temporary file where orders land
    stale = Path(lake.partition_file("raw", "orders", D) + ".tmp-999999")
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"PAR1 half a file")
    return os.stat(lake.partition_file("raw", "events", D)).st_mtime_ns


# ------------------------------------------------------------------------ docs/bad-input.md vs CASES
def catalog_block() -> str:
    """The catalog page's table, generated from CASES (markers included)."""
    lines = [START, "", "| case | input | behaviour |", "|---|---|---|"]
    lines += [f"| `{c.id}` | {c.input} | {c.behaviour} |" for c in CASES]
    return "\n".join([*lines, "", END])


def catalog_table() -> str:
    """The block as docs/bad-input.md has it (markers included)."""
    text = CATALOG_PAGE.read_text(encoding="utf-8")
    assert START in text and END in text, f"{CATALOG_PAGE} lacks the {START} / {END} markers"
    return START + text.split(START, 1)[1].split(END, 1)[0] + END


def test_catalog_has_at_least_30_distinct_cases() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9-]+", i) for i in ids)


def test_the_catalog_page_lists_exactly_the_tested_cases() -> None:
    table = catalog_table()
    ids = re.findall(r"^\| `([a-z0-9-]+)` \|", table, flags=re.MULTILINE)
    assert ids == [c.id for c in CASES], "docs/bad-input.md and tests/test_bad_input_catalog.py CASES differ"
    assert table == catalog_block(), "regenerate it: python -m tests.test_bad_input_catalog --write"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:
        text = CATALOG_PAGE.read_text(encoding="utf-8")
        before, rest = text.split(START, 1)
        CATALOG_PAGE.write_text(before + catalog_block() + rest.split(END, 1)[1], encoding="utf-8")
        print(f"wrote the table of {CATALOG_PAGE}")
    else:
        print(catalog_block())
