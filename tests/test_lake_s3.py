"""The lake on S3-compatible object storage: an `s3://` root is a configuration change.

A real S3 server runs on 127.0.0.1 (tests/support/s3_server.py); the pipeline reaches it with the standard
AWS environment variables only. The end-to-end test runs the same `luigi` command once with a local
lake and once with `ECOMM_LAKE_DIR=s3://...`, and compares what each published.
"""
from __future__ import annotations

import datetime as dt
import json
import shlex
import socket
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import duckdb
import psycopg
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipeline import config, lake
from pipeline.ingest import landing
from pipeline.lake import s3, sqlrun, views
from pipeline.tasks import land, restatements, run_audit, runbook
from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO
from tests.support.processes import free_port
from tests.support.s3_server import BUCKET, s3_server
from tests.support.serving import dump

D = dt.date(2025, 12, 8)


def keys(env: dict[str, str], prefix: str) -> list[str]:
    """Every object under an s3:// prefix, relative to it."""
    filesystem = pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], access_key="test", secret_key="test",
                                   region="us-east-1")
    base = prefix.removeprefix("s3://")
    found = filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return sorted(info.path[len(base) + 1:] for info in found if info.type == pafs.FileType.File)


def test_the_lake_primitives_work_on_object_storage(s3_lake, s3_env) -> None:
    path = lake.partition_file("raw", "orders", D)
    assert path == f"{s3_lake}/raw/orders/load_date={D}/data.parquet"
    assert not lake.exists(path) and lake.file_version(path) is None
    with sqlrun.connect() as con:  # DuckDB writes and reads the objects itself
        rows = sqlrun.copy_to_partition(con, "select range as id from range(5)", {}, path)
        assert rows == 5
        assert con.execute("select sum(id) from read_parquet($p)", {"p": lake.table_glob("raw", "orders")}).fetchone() == (10,)
    assert lake.exists(path) and lake.file_version(path)
    assert keys(s3_env, s3_lake) == [f"raw/orders/load_date={D}/data.parquet"], "the temporary object is gone"
    first = lake.file_version(path)
    with sqlrun.connect() as con:
        sqlrun.copy_to_partition(con, "select range as id from range(7)", {}, path)
    assert lake.file_version(path) != first, "a rebuild is a new version"

    manifest = f"{lake.partition_dir('raw', 'orders', D)}/_manifest.json"
    lake.write_atomic(manifest, json.dumps({"rows": 7}).encode())
    with lake.open_input(manifest) as handle:
        assert json.loads(handle.read()) == {"rows": 7}
    assert lake.table_files("raw", "orders") == [path], "`**` matches partition files only"
    filesystem, where = lake.arrow_location(path)
    assert pq.read_table(where, filesystem=filesystem).num_rows == 7

    with views.open_lake() as con:  # the notebook/CLI view of the lake: DuckDB globs the bucket itself
        assert con.execute("select count(*) from raw.orders").fetchone() == (7,)
        assert con.execute("select count(*) from audit.restatements").fetchone() == (0,)
    record = {"load_date": str(D), "status": "pending", "sources": ["orders"]}  # restate's JSON record
    lake.write_atomic(restatements.marker_path(D), json.dumps(record).encode())
    with views.open_lake() as con:
        assert con.execute("select load_date, status, sources from audit.restatements").fetchall() == [
            (D, "pending", ["orders"])]

    assert lake.temp_path(path) != lake.temp_path(path), "writers on other hosts may share a pid"
    fresh = lake.temp_path(path)  # a live writer's temporary object (maybe on another host) stays
    s3.write(fresh, b"partial")
    lake.clean_temp_files(lake.partition_dir("raw", "orders", D))
    assert lake.exists(fresh)
    lake.remove(fresh)
    lake.remove(fresh)  # removing what is gone is fine
    assert not lake.exists(fresh)


class SilentStore:
    """A store that accepts connections on 127.0.0.1 and never answers (hung, or behind a dead proxy): counts them."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.connections.append(self.listener.accept()[0])
            except OSError:
                return

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.mark.parametrize("setting, attempts", [(None, 3), ("2", 2)])
def test_a_store_that_never_answers_is_asked_aws_max_attempts_times_then_is_the_lake_s_error(
        setting, attempts, monkeypatch: pytest.MonkeyPatch) -> None:
    """The AWS SDKs' standard retries, `AWS_MAX_ATTEMPTS` sends in all (3 by default): the SDK's own default sent
    a request to a store that never answers 31 times, 99 s, and a task asks the store dozens of things."""
    store = SilentStore()
    for name, value in {"AWS_ENDPOINT_URL": store.endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY":
                        "test", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    if setting:
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", setting)
    s3._client.cache_clear()  # built from the environment on first use
    try:
        with pytest.raises(OSError, match="AWS Error NETWORK_CONNECTION") as caught:
            s3.exists(f"s3://{BUCKET}/lake/raw/orders/load_date={D}/data.parquet")
    finally:
        s3._client.cache_clear()
        store.close()
    assert lake.store_error(caught.value), caught.value
    assert len(store.connections) == attempts, f"{len(store.connections)} requests sent: {caught.value}"


@pytest.mark.parametrize(("mode", "attempts"), [("legacy", 2), ("adaptive", 2)])
def test_aws_retry_mode_is_taken_with_aws_max_attempts(mode, attempts, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SilentStore()
    for name, value in {"AWS_ENDPOINT_URL": store.endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY":
                        "test", "AWS_REGION": "us-east-1", "AWS_RETRY_MODE": mode, "AWS_MAX_ATTEMPTS": "2"}.items():
        monkeypatch.setenv(name, value)
    s3._client.cache_clear()
    try:
        with pytest.raises(OSError, match="AWS Error NETWORK_CONNECTION"):
            s3.exists(f"s3://{BUCKET}/lake/x")
    finally:
        s3._client.cache_clear()
        store.close()
    assert len(store.connections) == attempts
    monkeypatch.setenv("AWS_RETRY_MODE", "eager")
    with pytest.raises(config.BadSetting, match="AWS_RETRY_MODE='eager' is not one of standard, adaptive, legacy"):
        s3.exists(f"s3://{BUCKET}/lake/x")
    s3._client.cache_clear()


@pytest.mark.parametrize("value", ["0", "three", "-1"])
def test_an_aws_max_attempts_the_client_cannot_use_is_a_bad_setting(value, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", value)
    s3._client.cache_clear()
    try:
        with pytest.raises(config.BadSetting, match=f"AWS_MAX_ATTEMPTS='{value}' is not a whole number of at least 1"):
            s3.exists(f"s3://{BUCKET}/lake/x")
    finally:
        s3._client.cache_clear()


@pytest.mark.slow
def test_a_day_runs_on_object_storage_and_publishes_what_a_local_lake_does(ops: Ops, s3_env) -> None:  # noqa: F811
    local = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert local.returncode == 0, local.stderr[-3000:]
    with psycopg.connect(ops.dsn) as conn:
        expected = dump(conn)

    root = f"s3://{BUCKET}/e2e-{uuid.uuid4().hex[:8]}"
    remote = Ops(incoming=ops.incoming, lake=ops.lake.parent / "unused-lake", server=ops.server,
                 database=f"{ops.database}_s3", extra_env={**s3_env, "ECOMM_LAKE_DIR": root})
    with psycopg.connect(ops.server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'create database "{remote.database}"')
    run = remote.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert run.returncode == 0, run.stderr[-3000:]
    assert not remote.lake.exists(), "nothing was written to a local lake"

    objects = keys(s3_env, root)
    for layer_table in ("raw/orders", "raw/events", "staging/stg_orders", "warehouse/fact_orders",
                        "warehouse/fact_events", "audit/dq_results", "audit/pipeline_runs"):
        assert any(k.startswith(f"{layer_table}/load_date={SEED_DAY}/") and k.endswith("data.parquet")
                   for k in objects), f"{layer_table} was not written to the bucket"
    assert f"raw/orders/load_date={SEED_DAY}/_manifest.json" in objects
    assert not [k for k in objects if ".tmp-" in k], "no temporary object left behind"
    with psycopg.connect(remote.dsn) as conn:
        published = dump(conn)
    differing = sorted(t for t in expected if published.get(t) != expected[t] and t != "audit.pipeline_runs")
    assert differing in ([], ["warehouse.daily_metrics"]), differing  # daily_metrics: checked below
    for database in (ops, remote):
        metrics = database.query("select raw_orders_count, fact_orders_count, fact_events_count, gross_revenue"
                                 " from warehouse.daily_metrics where run_date = %s", [SEED_DAY])
        assert metrics == ops.query("select raw_orders_count, fact_orders_count, fact_events_count, gross_revenue"
                                    " from warehouse.daily_metrics where run_date = %s", [SEED_DAY])

    again = remote.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Did not run any tasks" in again.stderr, again.stderr[-3000:]
    assert keys(s3_env, root) == objects, "a rerun of a complete date writes nothing"


def test_duckdb_threads_reading_one_object_each_read_their_own_offset(s3_lake, s3_env) -> None:
    """DuckDB reads at an offset as seek + read on one handle shared by its threads: a thread's
    seek must not move another thread's read (it did: corrupt Parquet reads on 1M-row days)."""
    path = f"{s3_lake}/raw/bytes.bin"
    s3.write(path, bytes(range(256)) * 4)
    with s3._duckdb_filesystem().open(path, "rb") as handle, \
            ThreadPoolExecutor(1) as first, ThreadPoolExecutor(1) as second:
        first.submit(handle.seek, 10).result()
        second.submit(handle.seek, 700).result()  # another thread seeks between first's seek and read
        assert first.submit(handle.read, 4).result() == bytes([10, 11, 12, 13])
        assert second.submit(handle.read, 2).result() == bytes([700 % 256, 701 % 256])
        assert first.submit(handle.read, 2).result() == bytes([14, 15])
    with sqlrun.connect() as con:  # and DuckDB, on both threads, reads a many-row-group object whole
        con.execute("set threads = 2")
        target = f"{s3_lake}/raw/many.parquet"
        con.execute("copy (select range as id from range(300000)) to $t (format parquet, row_group_size 10000)",
                    {"t": target})
        for _ in range(3):
            assert con.execute("select count(*), sum(id) from read_parquet($t)", {"t": target}).fetchone() == (
                300000, 300000 * 299999 // 2)


@pytest.mark.slow
def test_a_lake_store_that_does_not_answer_is_one_line_and_blames_no_partition(
        ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store down (nothing listens on its port): each task Luigi cannot schedule is one line with the store's
    error, the run summary says why it is missing, and nothing tells the operator to delete landed data (an
    unreadable manifest used to say "remove the partition and re-land it")."""
    down = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "ECOMM_LAKE_DIR": f"s3://{BUCKET}/lake"}
    world = Ops(incoming=ops.incoming, lake=ops.lake, server=ops.server, database=ops.database,
                extra_env={**ops.extra_env, **down})
    run = world.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert run.returncode == 35 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert f"due to error in complete() method: LakeUnreadable: s3://{BUCKET}/lake cannot be read: When getting" \
        f" information for bucket '{BUCKET}': AWS Error NETWORK_CONNECTION" in run.stderr, run.stderr[-2000:]
    assert f"no run summary: s3://{BUCKET}/lake cannot be read: When getting" in run.stderr, run.stderr[-2000:]
    assert "remove" not in run.stderr

    for name, value in down.items():
        monkeypatch.setenv(name, value)
    s3._client.cache_clear()  # built from the environment on first use
    lake._bucket_exists.cache_clear()  # asked once per process
    try:
        with pytest.raises(lake.LakeUnreadable) as caught:  # what LandOrders.complete() reads
            landing.read_manifest("orders", SEED_DAY)
    finally:
        s3._client.cache_clear()
    assert "the lake's store refused or did not answer" in str(caught.value) and "remove" not in str(caught.value)
    assert runbook.remedy_for(caught.value).kind == runbook.remedy_for(caught.value.__cause__).kind == "lake unreadable"


# Every command that reads the lake, as a user types it (`python -m pipeline ...`, or the analysts' view of the lake)
LAKE_COMMANDS = {
    "summary": ["pipeline", "summary", "--start", str(SEED_DAY), "--stop", str(SEED_DAY + dt.timedelta(days=1))],
    "restate": ["pipeline", "restate", "--date", str(SEED_DAY)],
    "rebuild-serving": ["pipeline", "rebuild-serving"],
    "views": ["pipeline.lake.views"],
    "views --sql": ["pipeline.lake.views", "--sql"],
}


def refused(ops: Ops, store: dict[str, str], command: list[str], bucket: str = BUCKET) -> str:
    """The one line a command prints when the lake's store refuses it or does not answer (it exits 35)."""
    env = {**ops.env, "ECOMM_LAKE_DIR": f"s3://{BUCKET}/lake", **store}
    run = subprocess.run([sys.executable, "-m", *command], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    remedy = runbook.BY_ERROR["LakeUnreadable"]
    assert run.returncode == 35 == int(remedy.exit_code), run.stderr[-3000:]
    assert "Traceback" not in run.stderr + run.stdout and len(run.stderr.strip().splitlines()) == 1, run.stderr
    prog = f"python -m pipeline {command[1]}" if command[0] == "pipeline" else f"python -m {command[0]}"
    rerun = shlex.join(["python", "-m", *command])
    line = run.stderr.strip()
    assert line.startswith(f"{prog}: error: the lake's store refused or did not answer: "), line
    assert f"bucket '{bucket}'" in line, line  # the object it asked for
    assert ("What to do: fix the access (a folder: run as its owner, e.g. cron's user, or give that user read access;"
            f" an s3:// lake: docs/scaling-out.md; remove nothing), then `{rerun}`") in line, line
    assert "The lake's data is not at fault" in line and f"{runbook.RUNBOOK}: lake unreadable" in line, line
    return line


@pytest.mark.parametrize("command", LAKE_COMMANDS.values(), ids=LAKE_COMMANDS.keys())
def test_a_command_whose_lake_store_does_not_answer_says_so_in_one_line_and_exits_35(ops: Ops, command) -> None:
    """Nothing listens on the store's port: not a traceback of pyarrow's and exit 1, but the runbook's one line."""
    down = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    line = refused(ops, down, command)
    assert "AWS Error NETWORK_CONNECTION" in line and down["AWS_ENDPOINT_URL"].removeprefix("http://") in line, line


def test_a_command_with_wrong_credentials_says_the_store_refused_in_one_line_and_exits_35(ops: Ops) -> None:
    """A store that checks credentials and knows none of these keys: each command says so, and what to do."""
    with s3_server(checks_credentials=True) as wrong_keys:
        for name in ("summary", "restate", "views"):
            line = refused(ops, wrong_keys, LAKE_COMMANDS[name])
            assert "AWS Error INVALID_ACCESS_KEY_ID" in line or "AWS Error ACCESS_DENIED" in line, line


def test_duckdb_reading_a_lake_store_that_does_not_answer_raises_the_store_error(
        s3_lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """A glob DuckDB expands through the store's client: the store down is its error, not "No files found" (an
    empty table), and `lake.store_error` knows DuckDB's copy of it; a table without objects still has no files."""
    con = duckdb.connect()
    s3.register_duckdb(con)
    with pytest.raises(duckdb.Error, match="No files found"):  # the store answers: nothing there
        con.execute("select count(*) from read_parquet($p)", {"p": lake.table_glob("raw", "orders")}).fetchall()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    s3._client.cache_clear()  # built from the environment on first use
    con = duckdb.connect()
    s3.register_duckdb(con)
    with pytest.raises(duckdb.Error) as caught:
        con.execute("select count(*) from read_parquet($p)", {"p": lake.table_glob("raw", "orders")}).fetchall()
    assert lake.store_error(caught.value) and "No files found" not in str(caught.value)
    recorded = run_audit._error_text(caught.value)  # what the run audit keeps of a task that failed with it
    assert runbook.remedy_for_text(recorded).kind == "lake unreadable", recorded  # what the run summary says to do
    assert lake.store_words(caught.value).startswith("When listing objects under key ")
    assert "AWS Error NETWORK_CONNECTION" in lake.store_words(caught.value)


@pytest.mark.slow
def test_a_lake_bucket_that_does_not_exist_is_the_lake_s_error_not_the_incoming_file_s(ops: Ops, s3_env) -> None:
    """A typo in the bucket's name: the daily run says so before it lands anything (it said "cannot be read as CSV"
    of a good incoming file, and printed a traceback per task), and so does a command."""
    bucket = f"no-such-{uuid.uuid4().hex[:8]}"
    world = Ops(incoming=ops.incoming, lake=ops.lake, server=ops.server, database=ops.database,
                extra_env={**ops.extra_env, **s3_env, "ECOMM_LAKE_DIR": f"s3://{bucket}/lake"})
    run = world.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert run.returncode == 35, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and "cannot be read as" not in run.stderr, run.stderr[-3000:]
    told = f"LakeUnreadable: the lake's bucket '{bucket}' does not exist (the lake is s3://{bucket}/lake"
    assert told in run.stderr and "create it, or fix the lake's address" in run.stderr, run.stderr[-3000:]
    assert f"no run summary: the lake's bucket '{bucket}' does not exist" in run.stderr, run.stderr[-3000:]
    assert "Did not run any tasks" in run.stderr

    for name in ("summary", "views"):  # the analysts' view too: not a lake of empty tables
        line = refused(ops, {**s3_env, "ECOMM_LAKE_DIR": f"s3://{bucket}/lake"}, LAKE_COMMANDS[name], bucket)
        assert f"the lake's bucket '{bucket}' does not exist" in line, line


def test_a_write_the_store_refuses_is_the_lake_s_error_and_the_run_audit_says_so_in_one_line(
        s3_lake, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A partition the store will not take (its bucket gone mid-run) is a LakeUnreadable naming the partition,
    not a failure of the query (the landing turned DuckDB's error into "cannot be read as CSV" of its input);
    the run audit, which cannot record the task then either, logs one line, not a traceback per task."""
    target = lake.partition_file("raw", "events", D).replace(f"s3://{BUCKET}/", "s3://no-such-bucket/")
    with sqlrun.connect() as con, pytest.raises(lake.LakeUnreadable) as caught:
        sqlrun.copy_to_partition(con, "select range as id from range(5)", {}, target)
    assert str(caught.value).startswith(f"{target} cannot be written: ") and "AWS Error NO_SUCH_BUCKET" in str(caught.value)
    assert runbook.remedy_for(caught.value).kind == "lake unreadable" and "remove" not in str(caught.value)

    monkeypatch.setenv("ECOMM_LAKE_DIR", "s3://no-such-bucket/lake")
    task = land.LandOrders(date=D)
    with caplog.at_level("ERROR", logger="pipeline.tasks.run_audit"):
        run_audit._record(task, "running")
    [record] = caplog.records
    assert record.exc_info is None and f"could not record {task.task_id} running: the lake's bucket" in record.getMessage()


def test_the_duckdb_cli_script_of_an_object_store_lake_sets_up_duckdbs_own_s3_client(s3_lake, s3_env, capsys) -> None:
    assert views.main(["--sql"]) == 0
    script = capsys.readouterr().out
    endpoint = s3_env["AWS_ENDPOINT_URL"].removeprefix("http://")
    secret = next(line for line in script.splitlines() if not line.startswith("--"))
    assert secret == ("create or replace secret ecomm_lake (TYPE s3, PROVIDER credential_chain,"
                      f" ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false, REGION '{s3_env['AWS_REGION']}');"), \
        "before the first view"
    assert "KEY_ID" not in script and s3_env["AWS_SECRET_ACCESS_KEY"] + "'" not in script, "no credential in the file"
    assert f"nothing under {s3_lake}/raw/orders)" in script, "the views follow"
    assert "secret" not in views.init_sql(s3_lake), "open_lake reads through pyarrow's client: nothing to download"


def test_the_views_of_an_object_store_lake_list_each_layer_once(s3_lake, monkeypatch) -> None:
    # the raw manifests were listed for every layer, a second listing of the whole layer each time
    for day in (D, D + dt.timedelta(days=1), D + dt.timedelta(days=2)):
        for layer, table in (("raw", "orders"), ("staging", "stg_orders")):
            with sqlrun.connect() as con:
                sqlrun.copy_to_partition(con, "select 1 as id", {}, lake.partition_file(layer, table, day))
        if day != D + dt.timedelta(days=2):  # the newest raw partition is not landed yet: no manifest
            lake.write_atomic(f"{lake.partition_dir('raw', 'orders', day)}/_manifest.json", b"{}")
    listings = []
    listing = s3._listing
    monkeypatch.setattr(s3, "_listing", lambda prefix: listings.append(prefix) or listing(prefix))
    for layer in ("raw", "warehouse", "staging"):
        found = views.edges.tables(s3_lake, layer, views.KNOWN_TABLES[layer])
        assert listings == [f"{s3_lake}/{layer}"], layer
        listings.clear()
        assert [name for name, files in found.items() if files] == {"raw": ["orders"], "staging": ["stg_orders"],
                                                                   "warehouse": []}[layer]
    with views.open_lake() as con:
        assert con.execute("select count(*) from raw.orders").fetchone() == (2,), "landed partitions only"
        assert con.execute("select count(*) from staging.stg_orders").fetchone() == (3,)


@pytest.mark.parametrize("prefix", ["lake[1]", "a*b", "x//lake", "x/./lake", "x/../lake"])
def test_an_s3_lake_prefix_its_readers_would_take_as_a_pattern_or_the_store_refuses_is_one_line(
        ops: Ops, s3_env, prefix: str) -> None:
    """A bracket made every landing fail with "No files found that match the pattern" (blamed on the incoming file,
    `cannot be read as CSV`): DuckDB reads a partition's path as a glob. An empty, `.` or `..` part printed a pyarrow
    traceback per task. Both are refused as the setting they are, before anything is read or written."""
    root = f"s3://{BUCKET}/{prefix}"
    world = Ops(incoming=ops.incoming, lake=ops.lake, server=ops.server, database=ops.database,
                extra_env={**ops.extra_env, **s3_env, "ECOMM_LAKE_DIR": root})
    run = world.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert run.returncode == 35 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert (f"ECOMM_LAKE_DIR={root!r}: the lake's readers take its keys as glob patterns and S3 keys as they are, so"
            " its prefix may not hold * ? [ ] nor an empty, . or .. part") in run.stderr, run.stderr[-3000:]
    assert "cannot be read as" not in run.stderr and not keys(s3_env, f"s3://{BUCKET}/x"), "nothing was written"


def test_an_s3_lake_root_with_a_trailing_slash_or_odd_but_plain_characters_is_taken(monkeypatch) -> None:
    from pipeline import config

    for root in (f"s3://{BUCKET}/lake/", f"s3://{BUCKET}/odd dir/a+b=c%20x", f"s3://{BUCKET}"):
        monkeypatch.setenv("ECOMM_LAKE_DIR", root)
        assert config.lake_dir() == root.rstrip("/")


@pytest.mark.slow
def test_a_mistyped_s3_prefix_beside_a_serving_postgres_that_publishes_is_refused_like_a_missing_folder(
        ops: Ops, s3_env) -> None:
    """A typo in the lake's prefix started a second, empty lake there and published the date from it (exit 0), while
    a typo in a lake folder's name is refused (LakeFolderMissing): a prefix holding no object is that lake's missing
    folder."""
    root = f"s3://{BUCKET}/typo-{uuid.uuid4().hex[:8]}"
    world = Ops(incoming=ops.incoming, lake=ops.lake, server=ops.server, database=ops.database,
                extra_env={**ops.extra_env, **s3_env, "ECOMM_LAKE_DIR": root})
    assert world.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0
    typo = root + "x"
    world.extra_env["ECOMM_LAKE_DIR"] = typo
    run = world.luigi("DailyPipeline", "--date", str(SEED_DAY + dt.timedelta(days=1)), "--local-scheduler")
    assert run.returncode == 35 and "Traceback" not in run.stderr, run.stderr[-3000:]
    said = (f"LakeFolderMissing: the lake prefix {typo} holds no object, but the serving Postgres publishes 1 date(s)"
            f" built from a lake (the latest {SEED_DAY}): ECOMM_LAKE_DIR or [paths] lake_dir names the wrong prefix")
    assert said in run.stderr, run.stderr[-3000:]
    assert keys(s3_env, typo) == [], "no second lake was started"
    assert ops.query("select load_date from audit.publish_log") == [(SEED_DAY,)]
    summary = world.pipeline("summary", "--date", str(SEED_DAY))
    assert summary.returncode == 35 and said.removeprefix("LakeFolderMissing: ") in summary.stderr, summary.stderr


# A retry setting of the lake's client (the AWS SDKs' own variables) that it cannot use: BadSetting, when the client is
# built, before the store is asked anything
BAD_RETRY_SETTINGS = {
    "AWS_MAX_ATTEMPTS": ("zero", "AWS_MAX_ATTEMPTS='zero' is not a whole number of at least 1: how many times the"
                                 " lake's S3 client sends a request (default 3)"),
    "AWS_RETRY_MODE": ("bogus", "AWS_RETRY_MODE='bogus' is not one of standard, adaptive, legacy: how the lake's S3"
                                " client retries a request (default standard)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", BAD_RETRY_SETTINGS)
def test_a_retry_setting_the_lake_s_client_cannot_use_stops_the_daily_run_as_a_setting_in_one_line(
        ops: Ops, s3_env, name: str) -> None:
    value, said = BAD_RETRY_SETTINGS[name]
    world = Ops(incoming=ops.incoming, lake=ops.lake, server=ops.server, database=ops.database,
                extra_env={**ops.extra_env, **s3_env, "ECOMM_LAKE_DIR": f"s3://{BUCKET}/lake", name: value})
    run = world.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert run.returncode == 35 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert f"due to error in complete() method: {said}" in run.stderr, run.stderr[-3000:]
    assert run.stderr.strip().splitlines()[-1] == f"no run summary: {said}", run.stderr[-3000:]


@pytest.mark.parametrize("command", LAKE_COMMANDS.values(), ids=LAKE_COMMANDS.keys())
def test_a_command_given_a_retry_setting_the_lake_s_client_cannot_use_says_so_in_one_line_and_exits_35(
        ops: Ops, s3_env, command: list[str]) -> None:
    prog = f"python -m pipeline {command[1]}" if command[0] == "pipeline" else f"python -m {command[0]}"
    for name, (value, said) in BAD_RETRY_SETTINGS.items():
        env = {**ops.env, **s3_env, "ECOMM_LAKE_DIR": f"s3://{BUCKET}/lake", name: value}
        run = subprocess.run([sys.executable, "-m", *command], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300, check=False)
        assert "Traceback" not in run.stderr and run.stderr.strip() == f"{prog}: error: {said}", run.stderr[-3000:]
        assert run.returncode == 35, run.stderr  # a setting that cannot work, as the daily run says it
