"""pipeline.lake.views: the whole lake as DuckDB views, read-only and safe while the pipeline writes.

A real lake from the real pipeline (2 generated days with dirty rows, run to the quality gate),
plus hand-written partitions for the cases a pipeline run does not produce on demand (a writer's
temporary file, a partition replaced mid-query, an empty lake, a lake path with a quote in it).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import config, lake
from pipeline.ingest.manifests import MANIFEST
from pipeline.lake import sqlrun, views
from pipeline.transform import marts, warehouse
from tests.support import analytics_dataset, opens
from tests.support.paths import REPO

LAYER_TABLES = {
    "raw": {"orders", "events", "products", "users"},
    "staging": {"stg_orders", "stg_events", "stg_products", "stg_users"},
    "warehouse": set(warehouse.TABLES) | {f"{t}_all" for t in warehouse.TABLES},
    "marts": {*marts.TABLES, *(f"{t}_all" for t in marts.CONTRIBUTIONS)},
    "audit": {"rejected_lines", "bad_records", "reconciliation", "dq_results", "dq_failures", "pipeline_runs",
              "restatements"},
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, embedded_server):
    root = tmp_path_factory.mktemp("lakeview")
    with analytics_dataset.pipeline_dataset(root, embedded_server, publish=False, days=2) as data:
        yield data


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _file_rows(layer: str, table: str) -> int:
    with duckdb.connect() as con:
        return con.execute("select count(*) from read_parquet($f)", {"f": lake.table_files(layer, table)}).fetchone()[0]


@pytest.mark.slow
def test_every_table_of_every_layer_is_a_named_relation(built) -> None:
    con = views.open_lake()  # the configured lake: ECOMM_LAKE_DIR
    found: dict[str, set[str]] = {}
    for schema, view in views.relations(con):
        found.setdefault(schema, set()).add(view)
    assert found == LAYER_TABLES
    for layer, tables in LAYER_TABLES.items():
        current = warehouse.TABLES if layer == "warehouse" else marts.TABLES if layer == "marts" else ()
        for table in tables - {"dq_failures", "restatements"} - set(current) | ({"complete_days"} if layer == "marts" else set()):
            folder = table.removesuffix("_all") if layer in ("warehouse", "marts") else table
            rows = con.execute(f"select count(*) from {layer}.{table}").fetchone()[0]
            assert rows == _file_rows(layer, folder), f"{layer}.{table}"
            assert rows > 0 or table == "rejected_lines", f"{layer}.{table} is empty"  # no unparseable line here
    # partition keys are columns, typed
    assert con.execute("select typeof(load_date), typeof(source_table) from audit.bad_records limit 1").fetchone() == (
        "DATE", "VARCHAR")
    assert con.execute("select count(distinct load_date) from raw.orders").fetchone() == (2,)
    # no date was restated (JSON records, not Parquet): no rows, typed columns (test_restate.py has one)
    assert con.execute("select count(*), typeof(any_value(requested_at)) from audit.restatements").fetchone() == (
        0, "TIMESTAMP WITH TIME ZONE")


@pytest.mark.slow
def test_warehouse_views_are_the_pipeline_s_current_views(built) -> None:
    con = views.open_lake(built.lake)
    reference = sqlrun.connect()
    assert warehouse.create_current_views(reference) == list(warehouse.TABLES)
    for table in warehouse.TABLES:
        if table == "daily_metrics":
            continue  # its dq_failed_count comes from the gate, below
        expected = sorted(reference.execute(f"select * from {table}").fetchall(), key=repr)
        assert sorted(con.execute(f"select * from warehouse.{table}").fetchall(), key=repr) == expected, table
    assert con.execute("select count(*) from warehouse.fact_orders").fetchone()[0] < con.execute(
        "select count(*) from warehouse.fact_orders_all").fetchone()[0], "restated orders: the view keeps one version"


@pytest.mark.slow
def test_audit_dq_failures_and_dq_failed_count_are_shaped_like_postgres(built) -> None:
    con = views.open_lake(built.lake)
    outcomes = dict(con.execute("select outcome, count(*) from audit.dq_results group by outcome").fetchall())
    assert outcomes.get("pass", 0) > 0 and outcomes.get("warn", 0) > 0
    failures = con.execute("select run_date, check_name, table_name, check_type, outcome, value, message,"
                           " recorded_at from audit.dq_failures").fetchall()
    assert len(failures) == sum(n for outcome, n in outcomes.items() if outcome != "pass")
    assert {row[4] for row in failures} <= {"warn", "fail", "error"}
    # the lake's model writes 0; publish puts the gate's failed + errored count: so does the view
    rows = con.execute("select run_date, dq_failed_count from warehouse.daily_metrics order by run_date").fetchall()
    assert rows == [(day, 0) for day in built.dates]
    path = lake.partition_file("audit", "dq_results", built.dates[0])
    original = pq.read_table(path)
    try:
        failed = original.set_column(original.schema.get_field_index("outcome"), "outcome",
                                     pa.array(["fail"] * original.num_rows))
        pq.write_table(failed, path)
        assert con.execute("select dq_failed_count from warehouse.daily_metrics where run_date = $d",
                           {"d": built.dates[0]}).fetchone() == (original.num_rows,)
    finally:
        pq.write_table(original, path)


@pytest.mark.slow
def test_read_only_views_leave_the_lake_untouched(built) -> None:
    before = _digest(built.lake)
    con = views.open_lake(built.lake)
    for schema, view in views.relations(con):
        con.execute(f"select * from {schema}.{view}").fetchall()
    for statement in ("insert into warehouse.fact_orders_all select * from warehouse.fact_orders_all",
                      "delete from raw.orders", "update audit.bad_records set reason_code = 'x'"):
        with pytest.raises(duckdb.Error):
            con.execute(statement)
    con.close()
    assert _digest(built.lake) == before


@pytest.mark.slow
def test_only_whole_partitions_are_read_while_the_pipeline_writes(built) -> None:
    con = views.open_lake(built.lake)
    day = built.dates[-1]
    final = lake.partition_file("warehouse", "fact_events", day)
    counted = "select count(*), count(distinct event_id) from warehouse.fact_events_all"
    expected = con.execute(counted).fetchone()
    # a writer's half-written temporary file beside the partition is never read
    half = lake.temp_path(final)
    Path(half).write_bytes(Path(final).read_bytes()[: 200])
    try:
        assert con.execute(counted).fetchone() == expected
    finally:
        os.remove(half)
    # the partition rewritten over and over (temp file + rename, as the pipeline does) while reading
    stop = threading.Event()
    errors: list[BaseException] = []

    def rewrite() -> None:
        try:
            with sqlrun.connect() as writer:
                while not stop.is_set():
                    sqlrun.copy_to_partition(writer, "select * from read_parquet($src)",
                                             {"src": final}, final)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    thread = threading.Thread(target=rewrite)
    thread.start()
    try:
        seen = {con.execute(counted).fetchone() for _ in range(40)}
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors
    assert seen == {expected}


@pytest.mark.slow
def test_new_partitions_show_up_without_reopening(built, tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "lake"
    shutil.copytree(built.lake, copy)
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(copy))
    con = views.open_lake(copy)
    before = con.execute("select count(*) from raw.orders").fetchone()[0]
    source = lake.partition_file("raw", "orders", built.dates[0])
    target = lake.partition_file("raw", "orders", dt.date(2026, 1, 5))
    os.makedirs(os.path.dirname(target))
    shutil.copy(source, target)
    assert con.execute("select count(*) from raw.orders").fetchone()[0] == before, "not landed until its manifest"
    shutil.copy(os.path.join(os.path.dirname(source), MANIFEST), os.path.join(os.path.dirname(target), MANIFEST))
    assert con.execute("select count(*) from raw.orders").fetchone()[0] == before + _rows(source)
    assert con.execute("select max(load_date) from raw.orders").fetchone() == (dt.date(2026, 1, 5),)


def _rows(path: str) -> int:
    return pq.read_metadata(path).num_rows


def test_a_raw_partition_shows_only_once_its_manifest_is_written(tmp_path: Path) -> None:
    # a landing killed after its data.parquet and before its _manifest.json (the completion marker, written
    # last) left 600 rows that no run had landed: analysts must not see them until the landing completes
    def land(day: str, rows: int, manifest: bool) -> Path:
        folder = tmp_path / "raw" / "orders" / f"load_date={day}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"order_id": [f"O{day}-{i}" for i in range(rows)]}), folder / "data.parquet")
        if manifest:
            (folder / MANIFEST).write_text("{}")
        return folder

    land("2025-12-15", 3, manifest=False)
    con = views.open_lake(tmp_path)
    with pytest.raises(duckdb.Error, match="lake table raw/orders has no partitions yet"):
        con.execute("select count(*) from raw.orders").fetchall()
    land("2025-12-14", 2, manifest=True)
    con = views.open_lake(tmp_path)
    counted = "select load_date, count(*) from raw.orders group by all order by 1"
    assert con.execute(counted).fetchall() == [(dt.date(2025, 12, 14), 2)]
    plan = con.execute("explain analyze select count(*) from raw.orders").fetchall()[0][1]
    assert "Total Files Read: 1" in plan, "the date not landed is listed, never read"
    (tmp_path / "raw" / "orders" / "load_date=2025-12-15" / MANIFEST).write_text("{}")
    assert con.execute(counted).fetchall() == [(dt.date(2025, 12, 14), 2), (dt.date(2025, 12, 15), 3)]


def test_an_empty_lake_has_every_name_and_refuses_to_answer(tmp_path: Path) -> None:
    con = views.open_lake(tmp_path)
    assert {f"{s}.{v}" for s, v in views.relations(con)} == {
        f"{layer}.{table}" for layer, tables in LAYER_TABLES.items() for table in tables}
    with pytest.raises(duckdb.Error, match="lake table warehouse/fact_orders has no partitions yet"):
        con.execute("select count(*) from warehouse.fact_orders").fetchall()
    with pytest.raises(duckdb.Error, match="lake table raw/orders has no partitions yet"):
        con.execute("select * from raw.orders").fetchall()
    assert con.execute("select count(*) from audit.restatements").fetchone() == (0,), "none restated: the answer"
    with pytest.raises(FileNotFoundError, match="no lake at"):
        views.open_lake(tmp_path / "missing")


def test_a_table_the_pipeline_adds_later_appears_and_a_quote_in_the_path_is_safe(tmp_path: Path) -> None:
    root = tmp_path / "it's a lake"
    path = root / "audit" / "late_arrivals" / "load_date=2025-12-14" / "data.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"order_id": ["O1", "O2"]}), path)
    con = views.open_lake(root)
    assert con.execute("select order_id, load_date from audit.late_arrivals order by 1").fetchall() == [
        ("O1", dt.date(2025, 12, 14)), ("O2", dt.date(2025, 12, 14))]


@pytest.mark.slow
def test_the_duckdb_cli_init_script_builds_the_same_relations(built, tmp_path: Path) -> None:
    # what a user runs: `python -m pipeline.lake.views --sql > lake.sql; duckdb -init lake.sql`
    done = subprocess.run([sys.executable, "-m", "pipeline.lake.views", "--sql"], cwd=REPO, check=True,
                          capture_output=True, text=True, env={**os.environ, "ECOMM_LAKE_DIR": str(built.lake)})
    script = tmp_path / "lake.sql"
    script.write_text(done.stdout)
    cli = duckdb.connect()  # the CLI runs the init file's statements in order; so does execute()
    cli.execute(script.read_text())
    opened = views.open_lake(built.lake)
    assert views.relations(cli) == views.relations(opened)
    for name in views.queries():
        sql = views.query_text(name)
        assert cli.execute(sql).fetchall() == opened.execute(sql).fetchall(), name
    assert str(built.lake) in done.stdout and "set TimeZone = 'UTC';" in done.stdout


@pytest.mark.slow
def test_the_command_lists_every_relation_with_its_rows(built) -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline.lake.views", "--lake", str(built.lake)], cwd=REPO,
                          check=True, capture_output=True, text=True)
    assert f"lake {built.lake}" in done.stdout
    assert "warehouse.fact_orders:" in done.stdout and "audit.dq_failures:" in done.stdout
    assert config.lake_dir() == str(built.lake)


def _land(root: Path, dates: int) -> None:
    """`dates` landed days of raw/orders (3 rows each) and of an audit table one level deeper."""
    for i in range(dates):
        day = dt.date(2025, 12, 1) + dt.timedelta(days=i)
        folder = root / "raw" / "orders" / f"load_date={day}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"order_id": [f"O{day}-{n}" for n in range(3)]}), folder / lake.DATA_FILE)
        (folder / MANIFEST).write_text("{}")
        folder = root / "audit" / "bad_records" / f"load_date={day}" / "source_table=stg_orders"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"reason_code": ["bad_status"]}), folder / lake.DATA_FILE)


def _opened_at_open(root: Path) -> list[str]:
    """The partition files open_lake opens, relative to the lake (one entry per open)."""
    with opens.opened(root) as seen:
        views.open_lake(root)
    return sorted(os.path.relpath(path, root) for path in seen.paths(lake.DATA_FILE))


def _opens_alike(many: list[str], few: list[str]) -> bool:
    """As many distinct files, and opens within a quarter: DuckDB may open a small file once more or less (CI saw
    99, 101 and 102 for the same lake); binding over every partition opened ~4 times as many."""
    return len(set(many)) == len(set(few)) and len(many) <= 1.25 * len(few)


def test_opening_reads_the_oldest_and_newest_partition_whatever_the_number_of_dates(tmp_path: Path) -> None:
    # binding a view over `**/data.parquet` read every partition's footer: an analyst's open_lake() took
    # seconds on a long history; now at most two partitions per table, and every partition at each query
    _land(tmp_path / "two", 2)
    _land(tmp_path / "many", 12)
    two, many = _opened_at_open(tmp_path / "two"), _opened_at_open(tmp_path / "many")
    assert _opens_alike(many, two), (many, two)
    for table in ("raw/orders", "audit/bad_records"):
        assert 0 < len({path for path in many if path.startswith(f"{table}/")}) <= 2, table
    con = views.open_lake(tmp_path / "many")
    assert con.execute("select count(*), count(distinct load_date) from raw.orders").fetchone() == (36, 12)
    assert con.execute("select count(*) from audit.bad_records").fetchone() == (12,)


def test_the_views_bind_over_two_partitions_only_where_duckdb_rebinds_them_to_every_partition() -> None:
    # before DuckDB 1.5 a view keeps the columns it was created with: over two partitions it would drop a column
    # only a middle partition has, or refuse the view ("Contents of view were altered")
    assert [views.binds_edges(version) for version in ("1.1.0", "1.4.3", "1.5.0", "1.10.1", "2.0.1")] == [
        False, False, True, True, True]
    assert views.binds_edges() == (tuple(map(int, duckdb.__version__.split(".")[:2])) >= (1, 5))


def test_the_cli_script_lists_the_partitions_at_each_query_so_a_restatement_cannot_break_it(tmp_path: Path) -> None:
    # the script named the newest partitions as of its generation: a restatement that removed one made
    # `duckdb -init lake.sql` fail at startup; the script is the analyst's, for whichever DuckDB CLI they have
    _land(tmp_path, 3)
    done = subprocess.run([sys.executable, "-m", "pipeline.lake.views", "--lake", str(tmp_path), "--sql"], cwd=REPO,
                          check=True, capture_output=True, text=True)
    for folder in (tmp_path / "raw" / "orders").glob("load_date=2025-12-03"):
        shutil.rmtree(folder)
    shutil.rmtree(tmp_path / "audit" / "bad_records" / "load_date=2025-12-03")
    cli = duckdb.connect()
    cli.execute(done.stdout)
    assert cli.execute("select count(*), max(load_date) from raw.orders").fetchone() == (6, dt.date(2025, 12, 2))
    assert cli.execute("select count(*) from audit.bad_records").fetchone() == (2,)


def test_a_partition_removed_while_opening_is_listed_again(tmp_path: Path, monkeypatch) -> None:
    # a restatement removed the newest partition between the listing and the views: `No files found`, and the
    # command showed a raw IOException traceback; the opening now lists again, once
    _land(tmp_path, 3)
    listed = views.edges.tables

    def then_restated(root: str, layer: str, known) -> dict[str, list[str]]:
        found = listed(root, layer, known)
        if layer == "raw" and (newest := tmp_path / "raw" / "orders" / "load_date=2025-12-03").exists():
            shutil.rmtree(newest)
        return found

    monkeypatch.setattr(views.edges, "tables", then_restated)
    con = views.open_lake(tmp_path)
    assert con.execute("select count(*), max(load_date) from raw.orders").fetchone() == (6, dt.date(2025, 12, 2))


def test_the_command_says_no_partitions_yet_only_for_an_empty_table_and_other_errors_as_they_are(
        tmp_path: Path) -> None:
    _land(tmp_path, 3)
    (tmp_path / "raw" / "orders" / "load_date=2025-12-02" / lake.DATA_FILE).write_bytes(b"not parquet at all")
    done = subprocess.run([sys.executable, "-m", "pipeline.lake.views", "--lake", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True)
    lines = dict(line.strip().split(": ", 1) for line in done.stdout.splitlines()[1:])
    assert lines["raw.events"] == "no partitions yet" and lines["audit.bad_records"] == "3 rows"
    assert lines["raw.orders"].startswith("error: ") and "load_date=2025-12-02" in lines["raw.orders"], lines
    assert done.returncode == 1, done.stderr


@pytest.mark.slow
def test_a_long_history_opens_the_same_files_as_two_dates(built, tmp_path: Path) -> None:
    # the current views and the marts are built on the `_all` views: creating each one bound them again,
    # reading every footer each time (warehouse/fact_orders ten times); now the same two files each time
    def history(name: str, more: int) -> Path:  # the built lake with `more` dates before the built ones
        copy = tmp_path / name
        shutil.copytree(built.lake, copy)
        for folder in copy.glob(f"*/*/load_date={built.dates[0]}"):
            for days in range(1, more + 1):
                shutil.copytree(folder, folder.parent / f"load_date={built.dates[0] - dt.timedelta(days=days)}")
        return copy

    long = history("long", 10)
    opened = _opened_at_open(long)
    short = _opened_at_open(history("short", 1))
    assert _opens_alike(opened, short), (len(opened), len(short))
    for table in long.glob("*/*"):  # its oldest and newest partition, however often
        assert len({path for path in opened if path.startswith(f"{table.relative_to(long)}/")}) <= 2, table
    con = views.open_lake(long)
    assert con.execute("select count(distinct load_date) from warehouse.fact_orders_all").fetchone() == (12,)
    assert con.execute("select count(*) from warehouse.fact_orders").fetchone() == views.open_lake(
        built.lake).execute("select count(*) from warehouse.fact_orders").fetchone(), "the same orders, restated"


@pytest.mark.slow
def test_a_column_only_a_middle_partition_has_is_seen_as_over_every_partition(built, tmp_path: Path) -> None:
    # the views are created over the oldest and newest partition: a column added in between must still be there
    copy = tmp_path / "lake"
    shutil.copytree(built.lake, copy)
    first = copy / "warehouse" / "fact_orders" / f"load_date={built.dates[0]}"
    middle = first.parent / f"load_date={built.dates[0] - dt.timedelta(days=1)}"
    shutil.copytree(first, first.parent / f"load_date={built.dates[0] - dt.timedelta(days=2)}")
    table = pq.read_table(first / lake.DATA_FILE)
    middle.mkdir()
    pq.write_table(table.append_column("promo_code", pa.array(["SPRING"] * table.num_rows)), middle / lake.DATA_FILE)
    opened = views.open_lake(copy)
    everything = duckdb.connect()  # every view bound over the globs
    sqlrun.apply_settings(everything)
    everything.execute(views.init_sql(copy))
    for view in ("warehouse.fact_orders_all", "warehouse.fact_orders", "marts.daily_kpis"):
        columns = f"select * from (describe {view})"
        assert opened.execute(columns).fetchall() == everything.execute(columns).fetchall(), view
        rows = f"select * from {view} order by all"
        assert opened.execute(rows).fetchall() == everything.execute(rows).fetchall(), view
    assert opened.execute("select count(promo_code) from warehouse.fact_orders_all").fetchone() == (table.num_rows,)


@pytest.mark.parametrize("options", [[], ["--sql"]], ids=["list", "sql"])
def test_the_command_on_a_lake_that_is_not_there_says_so_in_one_line(tmp_path: Path, options: list[str]) -> None:
    # --sql printed a script of placeholders for a mistyped folder, exit 0: a lake with nothing in it
    missing = tmp_path / "no-such-lake"
    done = subprocess.run([sys.executable, "-m", "pipeline.lake.views", "--lake", str(missing), *options], cwd=REPO,
                          capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"python -m pipeline.lake.views: error: no lake at {missing}; set ECOMM_LAKE_DIR or"
                           " [paths] lake_dir, or run the pipeline\n")
    with pytest.raises(FileNotFoundError, match=f"^no lake at {re.escape(str(missing))}; set ECOMM_LAKE_DIR"):
        views.open_lake(missing)  # the notebook's error
