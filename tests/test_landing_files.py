"""The incoming-files contract: one file per source and date, the ready marker, regular files only, compression.

Real folders and files, real landings; the Luigi runs are real `luigi` command lines.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
import lzma
import os
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from pipeline import lake, tasks
from pipeline.ingest import landing, readers
from pipeline.ingest.incoming import is_ready
from tests.support.files import write
from tests.support.paths import REPO

D = dt.date(2025, 12, 15)
HEADER = "event_id,user_id,product_id,event_type,event_ts"
EVENTS = f"{HEADER}\nE1,U1,P1,view_product,2025-12-15T10:00:00\nE2,U2,P2,view_product,2025-12-15T10:00:01\n"
ORDER = {"order_id": "ORD_1", "user_id": "USER_0001", "product_id": "PROD_0001", "quantity": 2,
         "price": 9.99, "timestamp": "2025-12-15T10:00:00", "status": "paid"}
ORDERS = json.dumps([ORDER, {**ORDER, "order_id": "ORD_2"}])
# assembled at run time, so that the repository's secret scan (tests/test_security.py) does not find it here
LEAKED = "hunter" + "2"
SECRET = ":".join(["localhost", "5432", "*", "postgres", LEAKED])



def test_a_manifest_write_removes_the_temporary_files_killed_writers_left_beside_it(lake_root) -> None:
    """A landing killed while writing its manifest left `_manifest.json.tmp-<pid>`; no partition write of that
    folder ever cleaned it (small files are written by write_atomic). The next write does; a live writer's stays."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    final = landing.manifest_path("orders", D)
    os.makedirs(os.path.dirname(final))
    left, live = f"{final}.tmp-{gone.pid}", f"{final}.tmp-{os.getppid()}"
    for path in (left, live):
        Path(path).write_text("{")
    landing.write_manifest("orders", D, {"rows": 0})
    assert (os.path.exists(left), os.path.exists(live)) == (False, True)
    assert landing.read_manifest("orders", D) == {"rows": 0}


def nothing_landed(source: str) -> bool:
    return not os.path.exists(lake.partition_dir("raw", source, D))


# ---------------------------------------------------------------------------- one file per date
@pytest.mark.parametrize(("extra", "named"), [
    ({"orders.ndjson": json.dumps(ORDER)}, ("orders.json", "orders.ndjson")),
    ({"orders_part2.json": ORDERS}, ("orders_part2.json",)),
    ({"orders.json.gz": gzip.compress(ORDERS.encode())}, ("orders.json.gz",)),
    ({".orders.json.swp": "x", "README": "x"}, (".orders.json.swp", "README")),
    ({"_SUCCESS": ""}, ("_SUCCESS",)),  # a marker the configuration does not name is an extra file
], ids=["json-and-ndjson", "second-part", "plain-and-gzip", "leftovers", "unconfigured-marker"])
def test_files_beside_the_orders_file_fail_naming_them(lake_root, incoming, extra, named):
    write(incoming, f"orders/{D}/orders.json", ORDERS)
    for name, content in extra.items():
        write(incoming, f"orders/{D}/{name}", content)
    with pytest.raises(landing.UnexpectedSourceFiles, match="Multi-part delivery is not supported") as info:
        landing.land_orders(D)
    assert all(name in str(info.value) for name in named)
    assert nothing_landed("orders")


def test_a_subfolder_beside_the_events_file_fails(lake_root, incoming):
    write(incoming, f"events/{D}/events.csv", EVENTS)
    (incoming / "events" / str(D) / "part2").mkdir()
    with pytest.raises(landing.UnexpectedSourceFiles, match="part2"):
        landing.land_events(D)


def test_an_empty_date_folder_names_the_file_and_the_names_accepted(lake_root, incoming):
    (incoming / "orders" / str(D)).mkdir(parents=True)
    with pytest.raises(landing.SourceFileMissing) as info:
        landing.land_orders(D)
    assert str(info.value) == (
        f"orders for {D}: expected {incoming / 'orders' / str(D) / 'orders.json'}; its folder holds no orders file"
        " (accepted names: orders.json or orders.ndjson, optionally ending in .gz or .zst)")
    write(incoming, f"orders/{D}/orders.csv", "x")
    with pytest.raises(landing.UnexpectedSourceFiles, match=r"^orders for 2025-12-15: no file named orders.json or"
                       r" orders.ndjson, optionally ending in .gz or .zst \(names are case-sensitive\); .* holds 1 file"
                       r" \(orders.csv\): rename the orders file to one of those names"):
        landing.land_orders(D)
    assert nothing_landed("orders")


@pytest.mark.parametrize("name", ["orders.JSON", "Orders.json", "orders (1).json", "orders.json.GZ"])
def test_a_misnamed_orders_file_alone_is_named_with_the_names_read_first_not_as_a_second_part(lake_root, incoming,
                                                                                                name):
    """The message led with the folder's path and ended on multi-part delivery; the summary's cut (and a cron mail)
    kept neither the names the pipeline reads nor that a rename is the fix."""
    write(incoming, f"orders/{D}/{name}", ORDERS)
    with pytest.raises(landing.UnexpectedSourceFiles) as info:
        landing.land_orders(D)
    assert str(info.value).startswith(f"orders for {D}: no file named orders.json or orders.ndjson"), info.value
    assert f"({name}): rename the orders file" in str(info.value) and "Multi-part" not in str(info.value)
    assert nothing_landed("orders")


def test_files_added_after_landing_make_the_land_task_fail_again(lake_root, incoming):
    write(incoming, f"orders/{D}/orders.json", ORDERS)
    task = tasks.LandOrders(date=D)
    task.run()
    assert task.complete()
    write(incoming, f"orders/{D}/orders_part2.json", ORDERS)
    assert not tasks.LandOrders(date=D).complete(), "a second part delivered later must not be ignored"
    assert "orders_part2.json" in landing.source_drift("orders", D)
    with pytest.raises(landing.UnexpectedSourceFiles):
        task.run()
    os.remove(incoming / "orders" / str(D) / "orders_part2.json")
    assert tasks.LandOrders(date=D).complete()


def test_an_archived_source_does_not_invalidate_what_was_landed(lake_root, incoming):
    path = write(incoming, f"events/{D}/events.csv", EVENTS)
    landing.land_events(D)
    os.remove(path)
    assert landing.source_drift("events", D) is None and tasks.LandEvents(date=D).complete()


# ---------------------------------------------------------------------------------- ready marker
def test_the_ready_marker_gates_landing(lake_root, incoming, monkeypatch):
    monkeypatch.setenv("ECOMM_READY_MARKER", "_SUCCESS")
    write(incoming, f"orders/{D}/orders.json", ORDERS)
    with pytest.raises(landing.SourceNotReady, match=r"orders for 2025-12-15 is not ready: .*_SUCCESS is missing"):
        landing.land_orders(D)
    assert nothing_landed("orders")
    assert not tasks.SourceReady(date=D, source="orders").complete()
    assert tasks.LandOrders(date=D).requires() == [tasks.SourceReady(date=D, source="orders")]
    write(incoming, f"orders/{D}/_SUCCESS", "")
    assert landing.land_orders(D)["rows"] == 2
    os.remove(incoming / "orders" / str(D) / "_SUCCESS")  # archived by the sender after landing: still landed
    assert tasks.LandOrders(date=D).complete()


def test_no_marker_configured_means_no_requirement(lake_root, incoming, monkeypatch):
    monkeypatch.delenv("ECOMM_READY_MARKER", raising=False)
    assert tasks.LandOrders(date=D).requires() == []
    assert is_ready("orders", D)


@pytest.mark.parametrize("name", ["../_SUCCESS", "a/b", ".."])
def test_a_marker_that_is_not_a_file_name_is_refused_naming_the_variable(lake_root, incoming, monkeypatch, name):
    from pipeline.config import BadSetting

    monkeypatch.setenv("ECOMM_READY_MARKER", name)
    with pytest.raises(BadSetting) as refused:
        is_ready("orders", D)
    assert str(refused.value) == (f"ECOMM_READY_MARKER={name!r} is not a plain file name (e.g. _SUCCESS): name the"
                                  " file the sender writes")


def test_a_marker_in_luigi_cfg_that_is_not_a_file_name_is_refused_naming_the_option(monkeypatch, luigi_settings):
    from pipeline.config import BadSetting, ready_marker

    monkeypatch.delenv("ECOMM_READY_MARKER", raising=False)
    luigi_settings("landing", ready_marker="a/b")
    with pytest.raises(BadSetting, match=r"^\[landing\] ready_marker = 'a/b' is not a plain file name"):
        ready_marker()


def luigi_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "luigi", "--module", "pipeline.tasks", *args, "--local-scheduler", "--no-lock"],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=180,
    )


@pytest.mark.parametrize("given", ["environment", "command line"])
def test_luigi_waits_for_the_marker_with_exit_20_then_lands(tmp_path, given):
    data = tmp_path / "incoming"
    write(data, f"orders/{D}/orders.json", ORDERS)
    write(data, f"events/{D}/events.csv", EVENTS)
    write(data, f"events/{D}/_SUCCESS", "")  # events are ready, orders are not
    env = {"ECOMM_DATA_DIR": str(data), "ECOMM_LAKE_DIR": str(tmp_path / "lake")}
    # on the command line, the summary at exit said "not published" without why: it read luigi.cfg alone
    marker = ["--landing-ready-marker", "_SUCCESS"] if given == "command line" else []
    env.update({"ECOMM_READY_MARKER": "_SUCCESS"} if not marker else {})
    first = luigi_run("LandDaily", "--date", str(D), *marker, env=env)
    assert first.returncode == 20, first.stderr[-3000:]
    assert f"orders for {D} is not ready" in first.stderr and "SourceReady" in first.stderr
    assert "NOT READY (orders: no ready marker)" in first.stdout, "the run summary says why the date waits"
    assert "what to do (not ready): nothing to fix: run the date again once the marker is there" in first.stdout, \
        first.stdout
    assert not (tmp_path / "lake" / "raw" / "orders").exists()
    assert (tmp_path / "lake" / "raw" / "events" / f"load_date={D}" / "_manifest.json").exists()
    write(data, f"orders/{D}/_SUCCESS", "")
    second = luigi_run("LandDaily", "--date", str(D), *marker, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (tmp_path / "lake" / "raw" / "orders" / f"load_date={D}" / "_manifest.json").exists()


# -------------------------------------------------------------------------- regular files only
@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "pgpass").write_text(SECRET + "\n")
    return folder


def test_a_linked_events_file_is_refused_without_quoting_it(lake_root, incoming, outside):
    link = incoming / "events" / str(D) / "events.csv"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside / "pgpass")
    with pytest.raises(landing.UnsafeSourcePath, match="symbolic link") as info:
        landing.land_events(D)
    assert LEAKED not in str(info.value) and nothing_landed("events")


def test_a_link_inside_the_data_folder_is_refused_too(lake_root, incoming):
    real = write(incoming, "elsewhere/orders.json", ORDERS)
    link = incoming / "orders" / str(D) / "orders.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    with pytest.raises(landing.UnsafeSourcePath, match="symbolic link"):
        landing.land_orders(D)


def test_a_date_folder_linked_outside_is_refused(lake_root, incoming, outside):
    (outside / "events.csv").write_text(EVENTS)
    (incoming / "events").mkdir()
    (incoming / "events" / str(D)).symlink_to(outside, target_is_directory=True)
    with pytest.raises(landing.UnsafeSourcePath, match="outside the data folder"):
        landing.land_events(D)


def test_a_linked_catalog_snapshot_is_refused(lake_root, incoming, outside):
    (incoming / "products").mkdir()
    (incoming / "products" / "products_2025-12-15.json").symlink_to(outside / "pgpass")
    with pytest.raises(landing.UnsafeSourcePath, match="symbolic link") as info:
        landing.land_catalog("products", D)
    assert LEAKED not in str(info.value)


def test_a_fifo_is_refused_without_blocking(lake_root, incoming):
    folder = incoming / "events" / str(D)
    folder.mkdir(parents=True)
    os.mkfifo(folder / "events.csv")
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: _capture(outcome, landing.land_events, D), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "landing a FIFO blocked"
    assert isinstance(outcome[0], landing.UnsafeSourcePath) and "not a regular file" in str(outcome[0])


def _capture(into: list, call, *args) -> None:
    try:
        call(*args)
    except BaseException as err:  # noqa: BLE001 - the test inspects it
        into.append(err)


# ------------------------------------------------------------------------- messages keep secrets
@pytest.mark.parametrize(("rel", "content", "error"), [
    (f"events/{D}/events.csv", f"{SECRET}\nE1,U1\n", "lacks required column"),
    (f"events/{D}/events.csv", f"{HEADER},{SECRET}\nE1,U1\n", "could be landed"),
    (f"events/{D}/events.csv", f"event_id,event_id,{HEADER}\n", "repeat an earlier one"),
    (f"orders/{D}/orders.json", SECRET, "is not a JSON array"),
    (f"orders/{D}/orders.json", f'[{{"order_id": "{SECRET}"}} {{"x": 1}}]', "malformed JSON in array element"),
    (f"orders/{D}/orders.json", f'[{{"order_id": "{SECRET}\\u00', "malformed JSON in array element"),
], ids=["csv-first-line", "csv-header-name", "csv-repeated-names", "json-not-array", "json-malformed",
        "json-truncated"])
def test_error_messages_name_positions_not_content(lake_root, incoming, rel, content, error):
    """Messages reach audit.pipeline_runs.error_message, which BI can read: no file content in them."""
    write(incoming, rel, content)
    land = landing.land_events if rel.startswith("events") else landing.land_orders
    with pytest.raises(landing.SourceFileInvalid, match=error) as info:
        land(D)
    assert LEAKED not in str(info.value) and "5432" not in str(info.value)


def test_reader_details_drop_quoted_content():
    err = duckdb.InvalidInputException(f'Could not convert string "{LEAKED}" to INT64 at line 5: \'secret\' value')
    detail = readers.reader_detail(err)
    assert LEAKED not in detail and "secret" not in detail and "line 5" in detail


# ---------------------------------------------------------------------------------- compression
def zstd(data: bytes) -> bytes:
    import pyarrow as pa

    return pa.compress(data, codec="zstd", asbytes=True)


@pytest.mark.parametrize(("name", "compress", "expected"), [
    ("events.csv.gz", gzip.compress, "gzip"),
    ("events.csv.zst", zstd, "zstd"),
    ("events.csv", gzip.compress, "gzip"),
    ("events.csv", zstd, "zstd"),
    ("events.csv.gz", lambda b: b, "none"),
], ids=["csv-gz", "csv-zst", "gzip-as-csv", "zstd-as-csv", "plain-as-gz"])
def test_compressed_events_are_read_by_their_content(lake_root, incoming, name, compress, expected):
    write(incoming, f"events/{D}/{name}", compress(EVENTS.encode()))
    manifest = landing.land_events(D)
    assert (manifest["rows"], manifest["source_records"], manifest["compression"]) == (2, 2, expected)
    assert manifest["sha256"] == landing.file_fingerprint(str(incoming / "events" / str(D) / name))["sha256"]


@pytest.mark.parametrize(("name", "data", "records"), [
    ("orders.json.gz", gzip.compress(ORDERS.encode()), 2),
    ("orders.ndjson.gz", gzip.compress(b"\n".join(json.dumps(ORDER).encode() for _ in range(3)) + b"\n"), 3),
    ("orders.json", gzip.compress(ORDERS.encode()), 2),
    ("orders.ndjson", zstd(json.dumps(ORDER).encode() + b"\n{bad\n"), 2),
], ids=["json-gz", "ndjson-gz", "gzip-as-json", "zstd-as-ndjson"])
def test_compressed_orders_are_read_by_their_content(lake_root, incoming, name, data, records):
    write(incoming, f"orders/{D}/{name}", data)
    manifest = landing.land_orders(D)
    assert manifest["source_records"] == records == manifest["rows"] + manifest["rejected_count"]


@pytest.mark.parametrize(("data", "codec"), [
    (b"BZh91AY&SY" + b"\0" * 30, "bzip2"),
    (lzma.compress(EVENTS.encode()), "xz"),
    (b"PK\x03\x04" + b"\0" * 30, "zip"),
    (b"7z\xbc\xaf\x27\x1c" + b"\0" * 30, "7z"),
], ids=["bzip2", "xz", "zip", "7z"])
def test_other_compressions_are_named_and_refused(lake_root, incoming, data, codec):
    write(incoming, f"events/{D}/events.csv", data)
    with pytest.raises(landing.SourceFileCompressed, match=f"is a {codec}-compressed file"):
        landing.land_events(D)
    assert nothing_landed("events")


@pytest.mark.parametrize(("name", "data", "codec"), [
    ("orders/{D}/orders.json.gz", gzip.compress(ORDERS.encode() * 50)[:-10], "gzip"),  # cut off: no end marker
    ("events/{D}/events.csv.gz", gzip.compress(EVENTS.encode() * 50)[:40], "gzip"),
    ("orders/{D}/orders.json.zst", zstd(ORDERS.encode() * 50)[:-20], "zstd"),
    ("events/{D}/events.csv", gzip.compress(EVENTS.encode())[:10] + b"\xff" * 40, "gzip"),  # damaged data
], ids=["json-gz-cut", "csv-gz-cut", "json-zst-cut", "csv-gz-damaged"])
def test_a_cut_off_or_damaged_compressed_file_is_named_and_refused(lake_root, incoming, name, data, codec):
    path = write(incoming, name.format(D=D), data)
    source = name.split("/")[0]
    with pytest.raises(landing.SourceFileInvalid) as refused:
        getattr(landing, f"land_{source}")(D)
    assert str(refused.value).startswith(f"{path}: cannot be decompressed as {codec} (")
    assert "cut off or damaged" in str(refused.value) and str(refused.value).endswith("nothing was landed")
    assert nothing_landed(source)


@pytest.mark.parametrize(("name", "data", "says"), [
    ("events.csv", EVENTS.replace("\n", "\r").encode(), "line 1 (header) ends its lines with CR alone; lines must"
                                                          " end with LF or CRLF"),
    ("events.csv.gz", gzip.compress(b""), "the file is empty (gzip, 0 bytes once decompressed)"),
], ids=["cr-line-ends", "empty-gzip"])
def test_events_files_refused_for_what_they_are(lake_root, incoming, name, data, says):
    path = write(incoming, f"events/{D}/{name}", data)
    with pytest.raises(landing.SourceFileInvalid) as refused:
        landing.land_events(D)
    assert str(refused.value).startswith(f"{path}: {says}") and nothing_landed("events")


def test_ndjson_with_cr_line_ends_is_refused_for_them(lake_root, incoming):
    path = write(incoming, f"orders/{D}/orders.ndjson", "\r".join(json.dumps({**ORDER, "order_id": f"ORD_{n}"})
                                                                 for n in range(3)).encode() + b"\r")
    with pytest.raises(landing.SourceFileInvalid) as refused:
        landing.land_orders(D)
    assert str(refused.value).startswith(f"{path}: none of its 1 record(s) could be landed (1 rejected; its lines end"
                                         " with a carriage return alone"), refused.value
    assert nothing_landed("orders")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])  # with a byte order mark, then without
def test_utf16_text_is_refused_clearly(lake_root, incoming, encoding):
    events = write(incoming, f"events/{D}/events.csv", EVENTS.encode(encoding))
    with pytest.raises(landing.SourceFileInvalid, match=f"^events for {D}: {events} is UTF-16 text"):
        landing.land_events(D)
    events.unlink()
    orders = write(incoming, f"orders/{D}/orders.json", ORDERS.encode(encoding))
    with pytest.raises(landing.SourceFileInvalid, match=f"^orders for {D}: {orders} is UTF-16 text"):
        landing.land_orders(D)
    assert nothing_landed("events") and nothing_landed("orders")


# --------------------------------------------------------------------- lineage-named CSV columns
def test_csv_columns_named_like_lineage_or_partitions_are_kept_under_a_safe_name(lake_root, incoming):
    from pipeline.transform import staging

    extra = ["_row_number", "_source_file", "_ingested_at", "_note", "load_date", "source_table", "csv__note"]
    lines = [",".join([HEADER, *extra])] + [
        f"E{i},U{i},P1,view_product,2025-12-15T10:00:00,{1 + i % 3},x.csv,1999-01-01,n,2000-01-01,t,c"
        for i in range(1, 61)]
    write(incoming, f"events/{D}/events.csv", "\n".join(lines) + "\n")
    manifest = landing.land_events(D)
    counts = staging.stage("events", D)
    assert (counts["staged_count"], counts["quarantined_count"]) == (60, 0), "every valid event is staged"
    staged = duckdb.sql("select _row_number from read_parquet($p) order by event_id[2:]::int",
                        params={"p": lake.partition_file("staging", "stg_events", D)}).fetchall()
    assert [r[0] for r in staged] == list(range(1, 61)), "lineage: the line's place in the file, not the file's column"
    assert manifest["renamed_columns"] == {
        "_row_number": "csv__row_number", "_source_file": "csv__source_file", "_ingested_at": "csv__ingested_at",
        "_note": "csv__note_2", "load_date": "csv_load_date", "source_table": "csv_source_table"}
    raw = duckdb.sql("select * from read_parquet($p, hive_partitioning = false) order by _row_number",
                     params={"p": lake.partition_file("raw", "events", D)})
    got = [dict(zip(raw.columns, row)) for row in raw.fetchall()]
    assert [r["_row_number"] for r in got] == list(range(1, 61))
    assert [r["csv__row_number"] for r in got] == [str(1 + i % 3) for i in range(1, 61)]
    assert all(r["_source_file"].endswith("events.csv") and r["csv__note"] == "c" for r in got)
