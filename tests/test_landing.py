"""Landing: real files in, real Parquet out, and every bad input behaves as promised."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys

import duckdb
import pytest

from pipeline import lake
from pipeline.ingest import landing
from tests.support.dummyjson_server import DummyJsonServer
from tests.support.files import write
from tests.support.paths import REPO, SEED_INCOMING

D = dt.date(2025, 12, 15)
HEADER = "event_id,user_id,product_id,event_type,event_ts"


def rows(table: str, date: dt.date = D, **keys: str) -> list[tuple]:
    return duckdb.sql(
        "select * exclude (_ingested_at) from read_parquet($p)", params={"p": lake.partition_file("raw", table, date, **keys)}
    ).fetchall() if table != "rejected_lines" else duckdb.sql(
        "select * from read_parquet($p)", params={"p": lake.partition_file("audit", table, date, **keys)}
    ).fetchall()



def orders_json(*records: dict) -> str:
    return json.dumps(list(records), indent=2)


ORDER = {"order_id": "ORD_1", "user_id": "USER_0001", "product_id": "PROD_0001", "quantity": 2,
         "price": 9.99, "timestamp": "2025-12-15T10:00:00", "status": "paid"}


def test_seed_fixture_day_lands_every_source(lake_root, seed_incoming):
    assert landing.land_orders(D)["rows"] == 20
    assert landing.land_events(D)["rows"] == 60
    assert landing.land_catalog("products", D)["rows"] == 12
    assert landing.land_catalog("users", D) is None  # the seed system had no users feed
    first = rows("orders")[0]
    assert first[:7] == ("ORD_20251215_000000", "USER_0489", "PROD_0097", "7", first[4], first[5], first[6])
    assert all(isinstance(value, str) for value in first[:7]), "raw keeps text as text"


def test_raw_orders_keep_every_field_and_lineage(lake_root, incoming):
    record = {**ORDER, "quantity": "three", "coupon": {"code": "X", "tags": [1, 2]}}
    write(incoming, "orders/2025-12-15/orders.json", orders_json(record))
    landing.land_orders(D)
    (row,) = duckdb.sql("select * from read_parquet($p)", params={"p": lake_file("orders")}).fetchall()
    names = duckdb.sql("select * from read_parquet($p)", params={"p": lake_file("orders")}).columns
    got = dict(zip(names, row))
    assert got["quantity"] == "three"
    assert json.loads(got["record"])["coupon"] == {"code": "X", "tags": [1, 2]}
    assert got["_source_file"].endswith("orders/2025-12-15/orders.json")
    assert got["_row_number"] == 1 and got["_ingested_at"] is not None


def lake_file(table: str, date: dt.date = D) -> str:
    return lake.partition_file("raw", table, date)


def test_ndjson_orders(lake_root, incoming):
    text = "\n".join(json.dumps({**ORDER, "order_id": f"ORD_{i}"}) for i in range(3)) + "\n"
    write(incoming, "orders/2025-12-15/orders.ndjson", text)
    assert landing.land_orders(D)["rows"] == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"  \n\n", "only blank space"),
        (b'[{"order_id": "ORD_1"},\n{"order_id": "OR', "byte"),
        (b'[{"order_id": "ORD_1"} {"order_id": 2}]', "byte"),
    ],
    ids=["empty-file", "blank-space-only", "truncated", "malformed"],
)
def test_unreadable_orders_fail_naming_file_and_place_and_land_nothing(lake_root, incoming, content, expected):
    path = write(incoming, "orders/2025-12-15/orders.json", content)
    with pytest.raises(landing.SourceFileInvalid) as info:
        landing.land_orders(D)
    assert str(path) in str(info.value) and expected in str(info.value)
    assert not os.path.exists(lake.partition_dir("raw", "orders", D))


def test_missing_source_names_the_expected_path(lake_root, incoming):
    with pytest.raises(landing.SourceFileMissing, match=r"orders/2025-12-15/orders.json"):
        landing.land_orders(D)
    with pytest.raises(landing.SourceFileMissing, match=r"events/2025-12-15/events.csv"):
        landing.land_events(D)


def test_csv_bom_crlf_quoting_reordered_and_extra_columns(lake_root, incoming):
    text = (
        "\ufeffuser_id,event_type,event_id,event_ts,product_id,campaign\r\n"
        "U1,page_view,E1,2025-12-15T10:00:00,,spring\r\n"
        'U2,"add,to,cart",E2,2025-12-15T10:00:01,P1,"say ""hi"", twice"\r\n'
    )
    write(incoming, "events/2025-12-15/events.csv", text.encode("utf-8"))
    manifest = landing.land_events(D)
    assert (manifest["rows"], manifest["source_records"], manifest["rejected_count"]) == (2, 2, 0)
    got = duckdb.sql(
        "select event_id, user_id, product_id, event_type, campaign, _row_number from read_parquet($p) order by 1",
        params={"p": lake_file("events")},
    ).fetchall()
    assert got == [("E1", "U1", None, "page_view", "spring", 1), ("E2", "U2", "P1", "add,to,cart", 'say "hi", twice', 2)]


def test_a_quoted_value_cannot_span_lines(lake_root, incoming):
    """One record per physical line is the events contract: both halves of a multi-line value are rejected."""
    text = (HEADER + "\r\nE1,U1,P1,view_product,2025-12-15T10:00:00\r\n"
            'E2,"U\r\n2",P2,view_product,2025-12-15T10:00:01\r\nE3,U3,P3,view_product,2025-12-15T10:00:02\r\n')
    write(incoming, "events/2025-12-15/events.csv", text)
    manifest = landing.land_events(D)
    assert (manifest["rows"], manifest["source_records"], manifest["rejected_count"]) == (2, 4, 2)
    assert [r[1] for r in rows("rejected_lines", source_table="events")] == [3, 4]
    assert duckdb.sql("select event_id, _row_number from read_parquet($p)",
                      params={"p": lake_file("events")}).fetchall() == [("E1", 1), ("E3", 2)]


def test_bad_csv_lines_are_recorded_not_dropped(lake_root, incoming):
    text = (
        HEADER.encode() + b"\n"
        b"E1,U1,P1,view_product,2025-12-15T10:00:00\n"
        b"E2,U2\n"  # short row
        b"E3,U3,P3,view_product,2025-12-15T10:00:00,surplus\n"  # long row
        b"E4,U\xff4,P4,view_product,2025-12-15T10:00:00\n"  # invalid UTF-8
        b"E5,U5,P5,purchase,2025-12-15T10:00:05\n"
    )
    path = write(incoming, "events/2025-12-15/events.csv", text)
    manifest = landing.land_events(D)
    assert manifest["rows"] == 2 and manifest["rejected_count"] == 3 and manifest["source_records"] == 5
    landed = duckdb.sql("select event_id from read_parquet($p) order by 1", params={"p": lake_file("events")}).fetchall()
    assert landed == [("E1",), ("E5",)]
    rejected = duckdb.sql(
        "select source_file, line_number, raw_text, error from read_parquet($p) order by line_number",
        params={"p": lake.partition_file("audit", "rejected_lines", D, source_table="events")},
    ).fetchall()
    assert [(r[1], r[2][:4]) for r in rejected] == [(3, "E2,U"), (4, "E3,U"), (5, "E4,U")]
    assert all(r[0] == str(path) for r in rejected)
    assert "MISSING COLUMNS" in rejected[0][3] and "TOO MANY COLUMNS" in rejected[1][3]
    assert "INVALID" in rejected[2][3]


def test_row_numbers_follow_the_file_across_parallel_reads(lake_root, incoming):
    """_row_number is the record's place among the accepted lines, also when the reader splits a large
    file between threads (numbered from the reader's table order, not a window over the scan)."""
    lines, accepted = [HEADER], []
    for i in range(1, 400_001):
        if i % 50_000 == 0:
            lines.append(f"E{i},U{i}")  # a short line: rejected, so it takes no number
        else:
            lines.append(f"E{i},U{i},P{i % 97},view_product,2025-12-15T10:{i % 60:02d}:00")
            accepted.append(f"E{i}")
    write(incoming, "events/2025-12-15/events.csv", "\n".join(lines) + "\n")
    manifest = landing.land_events(D)
    assert manifest["rows"] == len(accepted) and manifest["rejected_count"] == 8
    numbered = duckdb.sql("select event_id, _row_number from read_parquet($p) order by _row_number",
                          params={"p": lake_file("events")}).fetchall()
    assert numbered == [(event_id, n) for n, event_id in enumerate(accepted, start=1)]


def test_unterminated_quote_is_recorded(lake_root, incoming):
    text = HEADER + "\nE1,U1,P1,view_product,2025-12-15T10:00:00\nE2,\"U2,P2,view_product,2025-12-15T10:00:00\n"
    write(incoming, "events/2025-12-15/events.csv", text)
    manifest = landing.land_events(D)
    assert manifest["rows"] == 1 and manifest["rejected_count"] == 1
    (rejected,) = duckdb.sql("select line_number, error from read_parquet($p)", params={
        "p": lake.partition_file("audit", "rejected_lines", D, source_table="events")}).fetchall()
    assert rejected[0] == 3 and "unterminated quote" in rejected[1]


def test_missing_required_column_fails_clearly(lake_root, incoming):
    path = write(incoming, "events/2025-12-15/events.csv", "event_id,user_id,product_id,event_ts\nE1,U1,P1,x\n")
    with pytest.raises(landing.SourceFileInvalid, match="lacks required column.*event_type") as info:
        landing.land_events(D)
    assert str(path) in str(info.value)
    assert not os.path.exists(lake.partition_dir("raw", "events", D))


@pytest.mark.parametrize(("separator", "said"), [(";", "semicolon-delimited (its 5 names are separated by ';'"),
                                                 ("\t", "tab-delimited (its 5 names are separated by tabs"),
                                                 ("|", "vertical-bar-delimited (its 5 names are separated by '|'")])
def test_a_header_with_another_delimiter_is_named_as_such(lake_root, incoming, separator, said):
    text = HEADER.replace(",", separator) + "\n" + separator.join(["E1", "U1", "P1", "view_product", "x"]) + "\n"
    write(incoming, "events/2025-12-15/events.csv", text)
    with pytest.raises(landing.SourceFileInvalid) as info:
        landing.land_events(D)
    assert f"line 1 (header) looks {said}, so it reads as 1 column(s)): the events file must be comma-delimited" in str(
        info.value)
    assert "lacks required column" not in str(info.value)
    assert not os.path.exists(lake.partition_dir("raw", "events", D))


def test_a_renamed_header_column_is_named_beside_the_one_it_lacks(lake_root, incoming):
    write(incoming, "events/2025-12-15/events.csv", "Event ID,user_id,product_id,eventType,event_ts\nE1,U1,P1,v,x\n")
    with pytest.raises(landing.SourceFileInvalid) as info:
        landing.land_events(D)
    assert ("line 1 (header) lacks required column(s) event_id, event_type (5 column(s) found, among them"
            ' "Event ID" for event_id, eventType for event_type: a renamed column; the header must name') \
        in str(info.value), str(info.value)


@pytest.mark.parametrize(("separator", "said"), [(";", "semicolon-delimited (its 4 names are separated by ';'"),
                                                 ("|", "vertical-bar-delimited (its 4 names are separated by '|'")])
def test_a_header_with_another_delimiter_that_also_lacks_a_column_says_both(lake_root, incoming, separator, said):
    header = separator.join(["event_id", "user_id", "product_id", "event_ts"])  # no event_type
    write(incoming, "events/2025-12-15/events.csv", header + "\n" + separator.join(["E1", "U1", "P1", "x"]) + "\n")
    with pytest.raises(landing.SourceFileInvalid) as info:
        landing.land_events(D)
    assert (f"line 1 (header) looks {said}, so it reads as 1 column(s)) and lacks required column(s) event_type even"
            " so: the events file must be comma-delimited and name event_id, user_id, product_id, event_type,"
            " event_ts") in str(info.value)
    assert "column(s) found" not in str(info.value)


def test_a_file_without_a_header_line_is_named_as_such(lake_root, incoming):
    write(incoming, "events/2025-12-15/events.csv", "E1,U1,P1,view_product,2025-12-15T10:00:00\n"
                                                    "E2,U1,P1,view_product,2025-12-15T10:00:01\n")
    with pytest.raises(landing.SourceFileInvalid) as info:
        landing.land_events(D)
    assert ("line 1 (header) looks like an event, not a header (it holds a timestamp and none of the column names): the"
            f" file has no header line; add the line {HEADER} at its top") in str(info.value)
    assert "U1" not in str(info.value)  # names no value of the file


@pytest.mark.parametrize("content", [b"", b"\n \n"], ids=["empty", "blank-lines-only"])
def test_empty_events_file_fails(lake_root, incoming, content):
    write(incoming, "events/2025-12-15/events.csv", content)
    with pytest.raises(landing.SourceFileInvalid, match="events.csv"):
        landing.land_events(D)


def test_landed_partition_is_immutable_and_changes_are_refused(lake_root, incoming):
    path = write(incoming, "orders/2025-12-15/orders.json", orders_json(ORDER))
    first = landing.land_orders(D)
    before = os.stat(lake_file("orders")).st_mtime_ns
    assert landing.source_unchanged(landing.read_manifest("orders", D))
    path.write_text(orders_json(ORDER, {**ORDER, "order_id": "ORD_2"}))
    assert not landing.source_unchanged(landing.read_manifest("orders", D))
    with pytest.raises(landing.SourceChanged, match=r"changed since it was landed.*pipeline restate --date 2025-12-15"):
        landing.land_orders(D)
    assert os.stat(lake_file("orders")).st_mtime_ns == before
    assert landing.read_manifest("orders", D)["sha256"] == first["sha256"]


def test_a_date_landed_from_another_data_folder_is_not_called_changed(lake_root, incoming, tmp_path, monkeypatch):
    """Two deployments on one lake: the second's file is not "changed", and restating it is not the first advice."""
    write(incoming, "orders/2025-12-15/orders.json", orders_json(ORDER))
    landing.land_orders(D)
    other = tmp_path / "other-deployment"
    write(other, "orders/2025-12-15/orders.json", orders_json({**ORDER, "order_id": "ORD_B"}))
    monkeypatch.setenv("ECOMM_DATA_DIR", str(other))
    with pytest.raises(landing.SourceChanged) as info:
        landing.land_orders(D)
    message = str(info.value)
    assert f"is not the file landed, {incoming / 'orders/2025-12-15/orders.json'}" in message
    assert "changed since" not in message
    assert message.index("its own ECOMM_LAKE_DIR") < message.index("pipeline restate --date 2025-12-15 --source orders")
    assert message.endswith("or put the original file back.")
    assert landing.changed_sources(D) == {"orders": landing.source_drift("orders", D)}
    from pipeline.tasks import runbook  # what luigid and the e-mail say first: not the restate

    assert "What to do (changed source file): give each deployment its own ECOMM_LAKE_DIR, as the error says" in \
        runbook.explain("LandOrders", D, info.value)


def test_the_same_folder_through_a_link_is_the_same_folder(lake_root, incoming, tmp_path, monkeypatch):
    path = write(incoming, "orders/2025-12-15/orders.json", orders_json(ORDER))
    (tmp_path / "link").symlink_to(incoming)
    monkeypatch.setenv("ECOMM_DATA_DIR", str(tmp_path / "link"))
    landing.land_orders(D)
    monkeypatch.setenv("ECOMM_DATA_DIR", str(incoming))
    path.write_text(orders_json(ORDER, {**ORDER, "order_id": "ORD_2"}))
    with pytest.raises(landing.SourceChanged, match="changed since it was landed"):
        landing.land_orders(D)


def test_a_catalog_snapshot_landed_from_another_data_folder_is_refused(lake_root, incoming, tmp_path, monkeypatch):
    """A second deployment's different snapshot of the same day was taken for the one landed, without a word."""
    products = [{"product_id": "PROD_0001", "product_name": "A", "current_price": 1}]
    write(incoming, "products/products_2025-12-15.json", json.dumps(products))
    landing.land_catalog("products", D)
    other = tmp_path / "other-deployment"
    write(other, "products/products_2025-12-15.json", json.dumps([{**products[0], "product_name": "B"}]))
    monkeypatch.setenv("ECOMM_DATA_DIR", str(other))
    with pytest.raises(landing.SourceChanged, match="the date was landed from another folder") as info:
        landing.land_catalog("products", D)
    assert "its own ECOMM_LAKE_DIR" in str(info.value)
    monkeypatch.setenv("ECOMM_DATA_DIR", str(incoming))
    assert landing.land_catalog("products", D)["load_date"] == "2025-12-15", "its own folder's file lands as before"


def test_products_file_fallback_takes_latest_snapshot_on_or_before(lake_root, incoming):
    for day in ("2025-12-01", "2025-12-08", "2025-12-22"):
        write(incoming, f"products/products_{day}.json",
              json.dumps([{"product_id": "PROD_0001", "product_name": day, "current_price": 1}]))
    manifest = landing.land_catalog("products", D)
    assert manifest["load_date"] == "2025-12-08"
    assert landing.land_catalog("products", dt.date(2025, 11, 30)) is None


def test_products_api_is_paginated_and_landed_once_per_week(lake_root, incoming, monkeypatch):
    with DummyJsonServer() as server:
        monkeypatch.setenv("ECOMM_PRODUCTS_URL", server.url)
        manifest = landing.land_catalog("products", D)  # a Monday
        assert manifest["rows"] == 194 and manifest["load_date"] == "2025-12-15"
        pages = [p for p in server.requests if p.startswith("/products")]
        assert len(pages) >= 2
        landing.land_catalog("products", dt.date(2025, 12, 17))  # same week: nothing fetched
        assert [p for p in server.requests if p.startswith("/products")] == pages
    records = duckdb.sql("select record from read_parquet($p)", params={"p": lake_file("products")}).fetchall()
    assert json.loads(records[0][0])["dimensions"]  # nested fields preserved


def test_products_api_html_fails_clearly_and_lands_nothing(lake_root, incoming, monkeypatch):
    monkeypatch.setenv("ECOMM_PRODUCTS_URL", "")
    with DummyJsonServer() as server:
        monkeypatch.setenv("ECOMM_PRODUCTS_URL", server.url)
        server.fail_next("html", times=10)
        from pipeline.ingest.catalog_api import CatalogApiBadResponse

        with pytest.raises(CatalogApiBadResponse, match="JSON"):
            landing.land_catalog("products", D)
    assert not os.path.exists(lake.partition_dir("raw", "products", D))


def luigi_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "luigi", "--module", "pipeline.tasks", *args, "--local-scheduler", "--no-lock"],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )


def test_luigi_lands_a_seed_day_and_second_run_does_nothing(tmp_path):
    env = {"ECOMM_DATA_DIR": str(SEED_INCOMING), "ECOMM_LAKE_DIR": str(tmp_path / "lake")}
    first = luigi_run("LandDaily", "--date", "2025-12-15", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "LandOrders" in first.stderr and "ran successfully" in first.stderr
    stamp = os.stat(tmp_path / "lake/raw/orders/load_date=2025-12-15/data.parquet").st_mtime_ns
    second = luigi_run("LandDaily", "--date", "2025-12-15", env=env)
    assert second.returncode == 0 and "Did not run any tasks" in second.stderr
    assert os.stat(tmp_path / "lake/raw/orders/load_date=2025-12-15/data.parquet").st_mtime_ns == stamp


def test_luigi_missing_input_exits_non_zero_naming_the_file(tmp_path):
    env = {"ECOMM_DATA_DIR": str(tmp_path / "nothing"), "ECOMM_LAKE_DIR": str(tmp_path / "lake")}
    result = luigi_run("LandDaily", "--date", "2025-12-15", env=env)
    assert result.returncode == 30, result.stderr[-2000:]
    assert "SourceFileMissing" in result.stderr and "orders/2025-12-15/orders.json" in result.stderr


def test_a_compressed_catalog_snapshot_is_landed_and_a_misnamed_one_is_named(lake_root, incoming, caplog):
    products = json.dumps([{"product_id": "PROD_0001", "product_name": "x", "current_price": 1}])
    write(incoming, "products/products_2025-12-01.json", products)
    (incoming / "products" / "products_2025-12-08.json.gz").write_bytes(gzip.compress(products.encode()))
    write(incoming, "products/products-2025-12-09.json", products)  # not a snapshot's name: never read
    landed = landing.land_catalog("products", D)
    assert (landed["load_date"], landed["rows"], landed["compression"]) == ("2025-12-08", 1, "gzip")
    assert "ignoring " in caplog.text and "products-2025-12-09.json: not a products snapshot name" in caplog.text
    write(incoming, "products/products_2025-12-08.json", products)  # the same snapshot twice
    with pytest.raises(landing.incoming.UnexpectedSourceFiles, match=r"products snapshot 2025-12-08: 2 files"
                       r" \(products_2025-12-08.json, products_2025-12-08.json.gz\)"):
        landing.catalog_file("products", D)


def test_catalog_file_with_an_impossible_date_is_ignored_with_a_warning(lake_root, incoming, caplog):
    write(incoming, "products/products_2025-13-45.json", "[]")
    write(incoming, "products/products_2025-12-08.json",
          json.dumps([{"product_id": "PROD_0001", "product_name": "x", "current_price": 1}]))
    assert landing.land_catalog("products", D)["load_date"] == "2025-12-08"
    assert "products_2025-13-45.json" in caplog.text


def test_a_catalog_file_saved_as_an_api_answer_says_what_a_snapshot_file_holds(lake_root, incoming):
    """The DummyJSON answer saved as the weekly file (an object around the list) was refused as "not a JSON array",
    which did not say what to do with it."""
    write(incoming, "products/products_2025-12-15.json", json.dumps({"products": [{"id": 1}], "total": 1}))
    with pytest.raises(landing.SourceFileInvalid) as refused:
        landing.land_catalog("products", D)
    assert "is not a JSON array" in str(refused.value)
    assert ('not an API answer such as {"products": [...], "total": ...}: save that list, or read the API ([catalog]'
            " products_url)") in str(refused.value)
