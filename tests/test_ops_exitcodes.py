"""Exit codes, retries, timeouts and the run audit of real `luigi` command-line runs (luigi.cfg [retcode]).

Each test runs the documented command in a subprocess against its own lake and database.
"""
from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline.tasks import runbook
from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO
from tests.support.processes import free_port
from tests.support.tmpfs import read_only

_cfg = configparser.ConfigParser()
_cfg.read(REPO / "luigi.cfg")
RETCODE = {name: int(value) for name, value in _cfg["retcode"].items()}
DATE = ["--date", str(SEED_DAY)]
LOCAL = "--local-scheduler"


def test_retcodes_are_configured_distinct_and_non_zero() -> None:
    assert set(RETCODE) == {"already_running", "missing_data", "not_run", "task_failed", "scheduling_error",
                            "unhandled_exception"}
    assert all(code > 0 for code in RETCODE.values()) and len(set(RETCODE.values())) == len(RETCODE)


@pytest.mark.slow
def test_a_date_exits_0_records_every_task_and_a_rerun_changes_nothing(ops: Ops) -> None:
    first = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "2025-12-15" in first.stdout and "published" in first.stdout  # the run summary at exit
    runs = ops.query("select run_id, task, status, duration_seconds, rows_out, started_at, ended_at, cpu_seconds,"
                     " peak_rss_mib from audit.pipeline_runs where run_date = %s", [SEED_DAY])
    assert len({r[0] for r in runs}) == 1, "one run id for the whole run, across worker processes"
    families = sorted(r[1].split("_")[0] for r in runs)
    assert families == sorted(["LandOrders", "LandEvents", "LandProducts", "StageOrders", "StageEvents",
                               "StageProducts", "BuildFactOrders", "BuildFactEvents", "BuildDimDate",
                               "BuildDimProductHistory", "BuildDimProduct", "BuildDimUser", "BuildDailyMetrics",
                               "BuildProductSalesDaily", "BuildCustomerOrdersDaily", "BuildUserActivityDaily",
                               "BuildCompleteDays", "PreloadFactOrders", "PreloadFactEvents", "QualityGate", "Publish"]), \
        "no users snapshot: LandUsers, StageUsers have nothing to do"
    assert {r[2] for r in runs} == {"done"} and all(r[3] >= 0 and r[5] <= r[6] for r in runs)
    # what each task cost the process Luigi forked for it (every task imports, reads or writes something)
    assert all(r[7] > 0 and r[8] > 0 for r in runs), [(r[1], r[7], r[8]) for r in runs]
    rows_out = {r[1].split("_")[0]: r[4] for r in runs}
    assert rows_out["LandOrders"] == 20 and rows_out["LandEvents"] == 60 and rows_out["Publish"] == 80
    twin = ops.executions()
    assert sorted((r["task_id"], r["status"], r["cpu_seconds"], r["peak_rss_mib"]) for r in twin) == \
        sorted((r[1], r[2], r[7], r[8]) for r in runs)
    assert all(r["in_postgres"] for r in twin)
    # runtime_seconds: the sum of the date's task durations (publish counted until its commit)
    (runtime,) = ops.query("select runtime_seconds from warehouse.daily_metrics where run_date = %s", [SEED_DAY])[0]
    others = sum(r[3] for r in runs if not r[1].startswith("Publish"))
    publish_time = next(r[3] for r in runs if r[1].startswith("Publish"))
    assert others < runtime <= others + publish_time + 0.01

    summary = ops.pipeline("summary", "--date", str(SEED_DAY))
    assert summary.returncode == 0 and "20>20>20>20" in summary.stdout and "published" in summary.stdout

    published_at = ops.query("select published_at from audit.publish_log")
    second = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert second.returncode == 0 and "Did not run any tasks" in second.stderr
    assert ops.query("select published_at from audit.publish_log") == published_at
    assert ops.query("select count(*) from audit.pipeline_runs") == [(len(runs),)]
    assert " -     published" in second.stdout, "the summary shows the date published, no time spent in this run"


@pytest.mark.slow
def test_a_failed_task_exits_30_at_once_and_bad_data_is_not_retried(ops: Ops) -> None:
    orders = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    orders.write_bytes(orders.read_bytes()[:300])  # truncated JSON
    result = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert result.returncode == RETCODE["task_failed"] == 30, result.stderr[-3000:]
    assert "SourceFileInvalid" in result.stderr and "FAILED" in result.stdout
    attempts = [r for r in ops.executions() if r["task_family"] == "LandOrders"]
    assert [(r["attempt"], r["status"]) for r in attempts] == [(1, "failed")], "bad data is tried once"
    assert "SourceFileInvalid" in attempts[0]["error_message"] and "orders.json" in attempts[0]["error_message"]
    assert ops.query("select status, error_message like 'SourceFileInvalid:%%' from audit.pipeline_runs"
                     " where task like 'LandOrders%%'") == [("failed", True)]
    assert ops.query("select to_regclass('audit.publish_log') is null"
                     " or not exists (select 1 from audit.publish_log)") == [(True,)]


def test_a_too_small_duckdb_memory_limit_is_named_as_the_setting_not_the_file(ops: Ops) -> None:
    # DuckDB's out-of-memory error while reading a file used to become "events.csv: cannot be read as CSV"
    config_file = Path(ops.extra_env["LUIGI_CONFIG_PATH"])
    settings = config_file.read_text()
    config_file.write_text(settings + "[duckdb]\nmemory_limit = 2MB\n")
    result = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert result.returncode == RETCODE["task_failed"], result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "SourceFileInvalid" not in result.stderr + result.stdout, result.stdout[-3000:]
    assert re.search(r"failed +LandEvents\(date=2025-12-15\): DuckDBOutOfMemory: DuckDB ran out of memory under"
                     r" \[duckdb\] memory_limit = 2MB \([^)]*\b(allocate|pin)\b.*\): raise it(, or set \[duckdb\] threads"
                     r" = 1)? \(docs/performance\.md#bigger-days\)\n", result.stderr), result.stderr[-3000:]
    assert "what to do (DuckDB out of memory): raise `[duckdb] memory_limit`" in result.stdout, result.stdout[-3000:]
    assert "what to do (invalid file)" not in result.stdout
    landed = [r for r in ops.executions() if r["task_family"] == "LandEvents"]
    assert [r["status"] for r in landed] == ["failed"]
    assert landed[0]["error_message"].startswith("DuckDBOutOfMemory: DuckDB ran out of memory under [duckdb]"
                                                 " memory_limit = 2MB")
    config_file.write_text(settings)
    assert ops.luigi("DailyPipeline", *DATE, LOCAL).returncode == 0, "given the memory, the date runs"


@pytest.mark.slow
def test_missing_input_exits_30_naming_the_expected_file(ops: Ops) -> None:
    (ops.incoming / "events" / str(SEED_DAY) / "events.csv").unlink()
    result = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert result.returncode == RETCODE["task_failed"], result.stderr[-3000:]
    assert "SourceFileMissing" in result.stderr and f"events/{SEED_DAY}/events.csv" in result.stderr
    assert [(r["attempt"], r["status"]) for r in ops.executions() if r["task_family"] == "LandEvents"] == [(1, "failed")]
    # the orders' side was built, but a date without its events completes no day on the lake (the
    # lake's reporting window ends at the latest complete day: a failed date would empty it)
    assert ops.lake_rows("warehouse", "fact_orders") > 0
    assert not (ops.lake / "marts" / "complete_days").exists()


@pytest.mark.slow
def test_a_blocked_quality_gate_exits_30_is_recorded_and_not_retried(ops: Ops) -> None:
    path = ops.incoming / "orders" / str(SEED_DAY) / "orders.json"
    orders = json.loads(path.read_text())
    for record in orders:
        record["quantity"] = 0  # every order is quarantined: the day has no valid orders
    path.write_text(json.dumps(orders))
    result = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert result.returncode == RETCODE["task_failed"], result.stderr[-3000:]
    assert "QualityGateFailed" in result.stderr
    assert "BLOCKED by the quality gate" in result.stdout and "orders volume" in result.stdout
    gates = [r for r in ops.executions() if r["task_family"] == "QualityGate"]
    assert [(r["attempt"], r["status"]) for r in gates] == [(1, "failed")]
    assert ops.query("select count(*) > 0 from audit.dq_failures where run_date = %s and outcome = 'fail'",
                     [SEED_DAY]) == [(True,)]
    assert ops.query("select count(*) from audit.publish_log") == [(0,)]
    assert not [r for r in ops.executions() if r["task_family"] == "Publish"]
    summary = ops.pipeline("summary", "--start", str(SEED_DAY), "--stop", "2025-12-16")
    assert summary.returncode == 1 and "BLOCKED" in summary.stdout, "not every date is published"
    # the date's own summary, which the "what to do" line points to, says why each check failed and what
    # to do, the option of its threshold included; the range's keeps one line per check
    lost = "share of orders thrown away (quarantined or rejected)"
    assert f"FAIL source_loss: {lost}" in summary.stdout and "rerun it with --checks-lost" not in summary.stdout
    one = ops.pipeline("summary", "--date", str(SEED_DAY)).stdout.splitlines()
    line = next(number for number, text in enumerate(one) if text.strip().startswith(f"FAIL source_loss: {lost}"))
    assert one[line + 1].startswith("      stg_orders: ")
    assert "rerun it with --checks-lost-fail-pct 100" in one[line + 1]
    assert "`python -m pipeline summary --date 2025-12-15` prints each failing check's message" in one[-2]


@pytest.mark.slow
def test_scheduling_errors_exit_35(ops: Ops) -> None:
    assert RETCODE["scheduling_error"] == 35
    assert ops.luigi("LandDaily", *DATE, LOCAL).returncode == 0
    manifest = ops.lake / "raw" / "orders" / f"load_date={SEED_DAY}" / "_manifest.json"
    manifest.write_text('{"rows": 2')  # a completion marker someone broke
    broken = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert broken.returncode == RETCODE["scheduling_error"], broken.stderr[-3000:]
    assert "ManifestUnreadable" in broken.stderr and "run the date again" in broken.stderr
    # the run summary says why the date did not run, not only "not published"
    assert f"{SEED_DAY}  " in broken.stdout and "FAILED" in broken.stdout
    assert "LandOrders could not be scheduled: ManifestUnreadable:" in broken.stdout

    manifest.unlink()
    ops.extra_env["ECOMM_PG_DSN"] = ops.server.dsn("no_such_database")  # a wrong setting is not retried
    attempts = lambda: sorted((r["task_id"], r["attempt"], r["status"]) for r in ops.executions())  # noqa: E731
    before = attempts()
    misconfigured = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert misconfigured.returncode == RETCODE["scheduling_error"], misconfigured.stderr[-3000:]
    assert 'database "no_such_database" does not exist' in misconfigured.stderr
    # one line, as the runbook promises for what it knows: not Luigi's 30-line traceback of complete()
    assert "Traceback" not in misconfigured.stderr, misconfigured.stderr[-3000:]
    assert (f"WARNING: Will not run DailyPipeline(date={SEED_DAY}) or any dependencies due to error in complete()"
            " method: OperationalError: connection failed: ") in misconfigured.stderr
    assert "DailyPipeline could not be scheduled: OperationalError:" in misconfigured.stdout
    assert "what to do (Postgres refuses):" in misconfigured.stdout
    # the worker gives up on what can never be scheduled instead of keeping alive for it (a worker
    # that waited would be stopped by ops.luigi's timeout and fail this test)
    assert "scheduling DailyPipeline(date=2025-12-15) failed: the worker will exit once nothing is running" in (
        misconfigured.stderr)
    assert "Did not run any tasks" in misconfigured.stderr and attempts() == before


def _what_to_do(stdout: str) -> str:
    """The command the run summary's what-to-do line gives (the first in backticks)."""
    line = next(line for line in stdout.splitlines() if line.strip().startswith("what to do ("))
    return re.search(r"`([^`]+)`", line).group(1)


@pytest.mark.slow
def test_a_published_date_found_broken_is_named_with_a_fix_that_works_as_printed(ops: Ops) -> None:
    assert ops.luigi("DailyPipeline", *DATE, LOCAL).returncode == 0

    # a file added beside the landed one: the folder changed (not the landed file); move it out
    stray = ops.incoming / "orders" / str(SEED_DAY) / "orders.ndjson"
    stray.write_text('{"order_id": "X"}\n')
    changed = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert changed.returncode == RETCODE["task_failed"], changed.stderr[-3000:]
    assert f"published, source CHANGED" in changed.stdout
    assert f"SourceChanged: orders for {SEED_DAY}: " in changed.stdout
    assert f"orders for {SEED_DAY}: orders for" not in changed.stdout, "the source is named once"
    assert "or put the original file back (a file added beside it: move that out), then `luigi" in changed.stdout
    stray.unlink()
    assert ops.luigi("DailyPipeline", *DATE, LOCAL).returncode == 0

    # the serving tables changed behind the pipeline's back: not counted as published until republished
    assert ops.query("delete from warehouse.fact_orders_all where load_date = %s and order_id in (select order_id"
                     " from warehouse.fact_orders_all where load_date = %s limit 3) returning 1", [SEED_DAY] * 2)
    assert ops.query("update audit.publish_log set reconciled_at = null where load_date = %s returning 1", [SEED_DAY])
    mismatch = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert mismatch.returncode == RETCODE["task_failed"], mismatch.stderr[-3000:]
    assert "Publish: ServingMismatch: " in mismatch.stdout and "published, NOT RECONCILED" in mismatch.stdout
    assert "0 of 1 date(s) published" in mismatch.stdout
    assert ops.pipeline("summary", *DATE).returncode == 1
    fix = _what_to_do(mismatch.stdout)
    assert fix == f"luigi --module pipeline.tasks DailyPipeline --date {SEED_DAY} --local-scheduler --force"
    assert ops.luigi(*fix.split()[3:]).returncode == 0
    assert ops.pipeline("summary", *DATE).returncode == 0

    # a raw partition's manifest damaged by something else: named, and the folder to remove is said
    manifest = ops.lake / "raw" / "orders" / f"load_date={SEED_DAY}" / "_manifest.json"
    manifest.write_text('{"rows": 2')
    broken = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert broken.returncode == RETCODE["scheduling_error"], broken.stderr[-3000:]
    assert f"could not be scheduled: ManifestUnreadable: {manifest} cannot be read" in broken.stdout, broken.stdout
    assert "what to do (broken manifest): remove the partition folder the message names" in broken.stdout
    # the date stays published in Postgres, but neither its run nor the summary counts it so (it said published, exit 0)
    assert f"{SEED_DAY}" in broken.stdout and "published, raw manifest BROKEN" in broken.stdout, broken.stdout
    assert broken.stdout.count("ManifestUnreadable: ") == 1 and "0 of 1 date(s) published" in broken.stdout
    summary = ops.pipeline("summary", *DATE)
    assert summary.returncode == 1 and "published, raw manifest BROKEN" in summary.stdout, summary.stdout
    assert f"ManifestUnreadable: {manifest} cannot be read" in summary.stdout, summary.stdout
    assert "what to do (broken manifest): remove the partition folder the message names" in summary.stdout
    # a `python -m pipeline` command meeting it: the runbook's one line too, its fix rerunning that command
    restate = ops.pipeline("restate", *DATE)
    assert restate.returncode == int(runbook.by_kind("broken manifest").exit_code), restate.stderr[-3000:]
    assert "Traceback" not in restate.stderr and len(restate.stderr.strip().splitlines()) == 1, restate.stderr
    assert restate.stderr.startswith(f"python -m pipeline restate: error: ManifestUnreadable: {manifest} cannot be read")
    assert (f"What to do: remove the partition folder the message names, then `python -m pipeline restate --date"
            f" {SEED_DAY}`") in restate.stderr and "(docs/operations.md#runbook: broken manifest)" in restate.stderr
    shutil.rmtree(manifest.parent)
    # the date was built from that partition: not published as it stands until the file is landed again
    lost = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert lost.returncode == RETCODE["task_failed"], lost.stderr[-3000:]
    assert "published, raw MISSING" in lost.stdout and "0 of 1 date(s) published" in lost.stdout, lost.stdout
    assert ops.pipeline("summary", *DATE).returncode == 1
    fix = _what_to_do(lost.stdout)
    assert fix == f"python -m pipeline restate --date {SEED_DAY} --source orders", lost.stdout
    assert ops.pipeline(*fix.split()[3:]).returncode == 0
    assert manifest.exists()
    assert ops.pipeline("summary", *DATE).returncode == 0
    assert ops.luigi("DailyPipeline", *DATE, LOCAL).returncode == 0


@contextlib.contextmanager
def refused_to_this_user(folder: Path) -> Iterator[None]:
    """`folder` not writable by this process: its mode for a user; as root, whom modes do not stop (CI runs as
    root), the immutable attribute, which refuses root too (what a read-only mount or another owner would)."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)
        return
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.slow
def test_a_lake_folder_the_user_may_not_write_is_one_line_with_what_to_do(ops: Ops) -> None:
    # cron running as another user than the lake's owner: refused while scheduling, before any task
    ops.lake.mkdir(parents=True)
    with refused_to_this_user(ops.lake):
        refused = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert refused.returncode == RETCODE["scheduling_error"], refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr, refused.stderr[-3000:]
    lake_folder = re.escape(str(ops.lake))
    assert re.search(rf"due to error in complete\(\) method: LakeNotWritable: the lake folder {lake_folder}"
                     r" cannot be written by user \S+: run as the lake's owner, or give this user write access to it"
                     r" \(ECOMM_LAKE_DIR or \[paths\] lake_dir names it\), then run the date again; nothing was written\n",
                     refused.stderr), refused.stderr[-3000:]
    assert "DailyPipeline could not be scheduled: LakeNotWritable: the lake folder" in refused.stdout
    assert "what to do (lake not writable): run as the lake's owner, give this user write access" in refused.stdout
    assert not any(ops.lake.iterdir())

    # one folder inside it (left by a run as another user): the tasks that write there fail in one line each
    assert ops.luigi("LandDaily", *DATE, LOCAL).returncode == 0
    (ops.lake / "staging").mkdir()
    with refused_to_this_user(ops.lake / "staging"):
        failed = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert failed.returncode == RETCODE["task_failed"], failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr, failed.stderr[-3000:]
    assert re.search(r"failed +StageEvents\(date=2025-12-15\): LakeNotWritable: \S+/staging/stg_events/"
                     r"load_date=2025-12-15/data.parquet cannot be written: \[Errno \d+\] [^;]+; the lake is a"
                     r" folder user \S+ may not write", failed.stderr), failed.stderr[-3000:]
    assert "what to do (lake not writable):" in failed.stdout and "FAILED" in failed.stdout
    assert ops.luigi("DailyPipeline", *DATE, LOCAL).returncode == 0, "given access, the date runs"


def test_a_lake_on_a_read_only_mount_is_said_to_be_one(tmp_path: Path) -> None:
    # a real read-only tmpfs, mounted in a mount namespace of this command only (as a user: its own user namespace)
    lake_dir = tmp_path / "ro"
    lake_dir.mkdir()
    script = ("from pipeline import lake\ntry:\n    lake.check_writable()\nexcept lake.LakeNotWritable as err:\n"
              "    print(err)")
    result = subprocess.run(read_only(lake_dir, [sys.executable, "-c", script]), cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "ECOMM_LAKE_DIR": str(lake_dir)}, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == (
        f"the lake folder {lake_dir} is on a read-only file system ({lake_dir}): remount it read-write, or name a"
        " writable folder (ECOMM_LAKE_DIR or [paths] lake_dir), then run the date again; nothing was written")


READ_ONLY_MID_TASK = """
import sys
from pipeline import lake
from pipeline.tasks import runbook
manifest = lake.partition_dir("raw", "orders", "2025-12-15") + "/_manifest.json"
for write in (lambda: lake.write_atomic(manifest, b"{}"), lambda: lake.write_atomic(
        lake.partition_dir("raw", "events", "2025-12-15") + "/_manifest.json", b"{}")):
    try:
        write()
    except lake.LakeNotWritable as err:
        print(err)
try:
    open(manifest, "wb")  # a write the lake's functions do not wrap (os.replace, a library's): a bare OSError
except OSError as err:
    print(type(err).__name__, err.errno, runbook.remedy_for(err).kind)
"""


def test_a_lake_turned_read_only_mid_task_fails_as_not_writable_saying_to_remount_it(tmp_path: Path) -> None:
    """A mount turned read-only after the run was scheduled (a disk error remounting it, an operator): the writes
    failed with a bare OSError (`[Errno 30] Read-only file system`) and no what-to-do."""
    lake_dir = tmp_path / "lake"
    (lake_dir / "raw" / "orders" / "load_date=2025-12-15").mkdir(parents=True)  # a folder there, and one to make
    namespace = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--user", "--map-root-user"])
    bind = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" -c "$3"'
    result = subprocess.run([*namespace, "sh", "-c", bind, "sh", str(lake_dir), sys.executable, READ_ONLY_MID_TASK],
                            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "ECOMM_LAKE_DIR": str(lake_dir)})
    assert result.returncode == 0, result.stderr[-2000:]
    said = ("; the lake folder is on a read-only file system: remount it read-write, or name a writable folder"
            " (ECOMM_LAKE_DIR or [paths] lake_dir), then run the date again; the landed data is not at fault")
    written, made, bare = result.stdout.strip().splitlines()
    manifest = lake_dir / "raw" / "orders" / "load_date=2025-12-15" / "_manifest.json"
    assert re.fullmatch(rf"{re.escape(str(manifest))} cannot be written: \[Errno 30\] Read-only file system: \S+"
                        + re.escape(said), written), written
    assert made.startswith(f"{lake_dir / 'raw' / 'events'}/load_date=2025-12-15/_manifest.json cannot be written:"
                           " [Errno 30] Read-only file system") and made.endswith(said), made
    assert bare == "OSError 30 lake not writable"  # its what-to-do: remount it, not the store's access


@pytest.mark.slow
def test_a_lake_folder_that_is_not_there_while_postgres_publishes_dates_is_one_line(ops: Ops) -> None:
    # a typo in ECOMM_LAKE_DIR (or a disk not mounted) on a server that publishes: not "published" from no lake,
    # and no second lake started beside the real one
    assert ops.luigi("DailyPipeline", *DATE, LOCAL).returncode == 0
    typo = ops.lake.with_name(ops.lake.name + "-typo")
    ops.extra_env["ECOMM_LAKE_DIR"] = str(typo)
    said = (f"LakeFolderMissing: the lake folder {typo} does not exist, but the serving Postgres publishes 1 date(s)"
            " built from a lake (the latest 2025-12-15): ECOMM_LAKE_DIR or [paths] lake_dir names the wrong folder")
    runs = (ops.luigi("DailyPipeline", *DATE, LOCAL),
            ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", "2025-12-15", "--stop", "2025-12-16", LOCAL),
            ops.luigi("DailyPipeline", "--date", "2025-12-16", LOCAL))  # the next date: no second lake started
    for run in runs:
        assert run.returncode == RETCODE["scheduling_error"], run.stdout[-2000:] + run.stderr[-3000:]
        assert "Traceback" not in run.stderr and said in run.stderr, run.stderr[-3000:]
    for summary in (ops.pipeline("summary", *DATE), ops.pipeline("summary", "--date", "2025-12-16")):
        # the same line as the runs', also for a range whose dates are not published
        assert summary.returncode == 35 and said in summary.stderr and "Traceback" not in summary.stderr, \
            summary.stdout[-2000:] + summary.stderr[-2000:]
        assert "What to do: name the lake's folder (or mount its disk)" in summary.stderr, summary.stderr
    assert not typo.exists()
    typo.mkdir()  # a new lake there on purpose: the date is published, and stays so
    assert ops.luigi("DailyPipeline", *DATE, LOCAL).returncode == 0


@pytest.mark.slow
def test_a_bad_command_is_rejected(ops: Ops) -> None:
    bad_date = ops.luigi("DailyPipeline", "--date", "2025-13-45", LOCAL)
    assert bad_date.returncode == RETCODE["unhandled_exception"] == 40
    assert "'2025-13-45' is not a valid date: expected YYYY-MM-DD" in bad_date.stderr
    no_such_day = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", "2025-02-01", "--stop", "2025-02-29",
                            LOCAL)  # Luigi's own date parameter: strptime said "--stop day is out of range for month"
    assert no_such_day.returncode == 40 and no_such_day.stderr == (
        "ERROR: the command was rejected: --stop '2025-02-29' is not a valid date: expected YYYY-MM-DD, e.g."
        " 2025-12-15 (day is out of range for month) (luigi --help-all lists the options)\n"), no_such_day.stderr
    assert ops.luigi("DailyPipeline", LOCAL).returncode == RETCODE["unhandled_exception"]  # no --date
    unknown = ops.luigi("NoSuchTask", *DATE, LOCAL)  # Luigi fails before [retcode]: exit 1, one line all the same
    assert unknown.returncode == 1 and unknown.stderr == (
        "ERROR: the command was rejected: NoSuchTask: no such task (luigi --help-all lists the options)\n")
    option = ops.luigi("DailyPipeline", *DATE, "--no-such-option", "1", LOCAL)
    assert option.returncode == 2 and "unrecognized arguments" in option.stderr  # argparse usage error
    assert not ops.lake.exists(), "nothing ran"


@pytest.mark.slow
def test_postgres_down_is_retried_recorded_in_the_lake_and_synced_later(ops: Ops) -> None:
    ops.extra_env["ECOMM_PG_DSN"] = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    down = ops.luigi("DailyPipeline", *DATE, LOCAL, "--publish-retry-backoff-seconds", "0.2")
    assert down.returncode == RETCODE["task_failed"], down.stderr[-3000:]
    # the first tasks that need Postgres are the facts' preloads; Publish waits for them, so never runs.
    # Each tries [publish] attempts = 4 times inside one Luigi attempt, logging each retry.
    preloads = sorted((r["task_family"], r["attempt"], r["status"], r["in_postgres"]) for r in ops.executions()
                      if r["task_family"].startswith("Preload"))
    assert preloads == [(family, 1, "failed", False) for family in ("PreloadFactEvents", "PreloadFactOrders")]
    for family in ("fact_orders", "fact_events"):
        for attempt, wait in ((2, "0.2"), (3, "0.4"), (4, "0.8")):  # the configured backoff, doubling
            assert re.search(rf"preloading {family} of {SEED_DAY} failed: [^\n]*Connection refused[^\n]*;"
                             rf" this can heal, will retry: attempt {attempt} of 4 at [0-9:]+ \S+ \(in {wait}s\)",
                             down.stderr), down.stderr[-3000:]
    assert all("Connection refused" in r["error_message"] for r in ops.executions()
               if r["task_family"].startswith("Preload"))
    assert not [r for r in ops.executions() if r["task_family"] == "Publish"]
    assert "OperationalError" in down.stderr and "FAILED" in down.stdout
    # issue 17: said once, at the start, what failed and the retry plan; the summary says what to do
    assert down.stderr.count("The lake steps (land, stage, model, gate) go on") == 1, down.stderr[-3000:]
    assert "will try 4 time(s), 0.2s, 0.4s, 0.8s apart" in down.stderr
    assert "what to do (Postgres down):" in down.stdout, down.stdout

    del ops.extra_env["ECOMM_PG_DSN"]
    up = ops.luigi("DailyPipeline", *DATE, LOCAL)
    assert up.returncode == 0, up.stderr[-3000:]
    failed = ops.query("select task, status from audit.pipeline_runs where status = 'failed' order by task")
    assert [t.split("_")[0] for t, _ in failed] == ["PreloadFactEvents", "PreloadFactOrders"], \
        "the attempts made while Postgres was down were synced"
    assert all(r["in_postgres"] for r in ops.executions())


@pytest.mark.slow
def test_a_task_over_its_timeout_is_killed_and_recorded(ops: Ops) -> None:
    from pipeline.serving import locks, migrations

    with psycopg.connect(ops.server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'create database "{ops.database}"')
    with psycopg.connect(ops.dsn) as holder:
        migrations.apply_schema(holder)
        # another run holds the date's publish lock for longer than [task_timeouts] publish allows
        locks.hold(holder, locks.date_key(SEED_DAY))
        result = ops.luigi("DailyPipeline", *DATE, LOCAL, "--task-timeouts-publish", "2",
                           "--scheduler-retry-count", "1")
    assert result.returncode == RETCODE["task_failed"], result.stderr[-3000:]
    assert "timed out after 2 seconds" in result.stderr
    (publish,) = [r for r in ops.executions() if r["task_family"] == "Publish"]  # one attempt, killed
    assert publish["status"] == "failed" and "timed out after 2 seconds" in publish["error_message"]
    assert publish["duration_seconds"] is not None and publish["in_postgres"]
    assert publish["cpu_seconds"] is None and publish["peak_rss_mib"] is None, "measured by the process killed"
    assert ops.query("select count(*) from audit.publish_log") == [(0,)], "the killed publish committed nothing"


def test_each_kind_has_its_configured_timeout_and_retry_policy() -> None:
    from pipeline import tasks
    from pipeline.tasks.base import task_timeouts

    limits = task_timeouts()
    day = SEED_DAY
    assert tasks.LandOrders(date=day).worker_timeout == limits.land
    assert tasks.LandProducts(date=day).worker_timeout == limits.catalog
    assert tasks.StageEvents(date=day).worker_timeout == limits.stage
    assert tasks.BuildFactOrders(date=day).worker_timeout == limits.model
    assert tasks.QualityGate(date=day).worker_timeout == limits.check
    assert tasks.Publish(date=day).worker_timeout == tasks.PreloadFactEvents(date=day).worker_timeout == limits.publish
    # bad data is not retried; the catalog landing retries a transiently failing API inside the task
    # ([catalog] attempts), Publish and the preloads transient Postgres failures ([publish] attempts)
    for task in (tasks.LandOrders, tasks.LandProducts, tasks.StageOrders, tasks.BuildFactOrders, tasks.QualityGate,
                 tasks.Publish, tasks.PreloadFactOrders, tasks.PreloadFactEvents):
        assert task(date=day).retry_count == 1


@pytest.mark.parametrize("flag", [("--checks-lost-fail-pct", "60"), ("--checks-volume-fail-low-ratio", "0")])
def test_the_gate_thresholds_are_command_line_flags(flag: tuple[str, str]) -> None:
    """The README, the runbook and docs/quality-gate.md give a blocked gate's fix as a flag of the
    daily command: luigi's parser knows only the sections imported with `--module pipeline.tasks`,
    so a fresh interpreter (this test process has imported everything) parses it the way luigi does."""
    import subprocess
    import sys

    name = flag[0].removeprefix("--checks-").replace("-", "_")
    script = ("import pipeline.tasks\n"
              "from luigi.cmdline_parser import CmdlineParser\n"
              f"with CmdlineParser.global_instance(['DailyPipeline', '--date', '{SEED_DAY}', *{list(flag)!r}]):\n"
              "    from pipeline.quality.gate import checks\n"
              f"    print(checks().{name})\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) == float(flag[1])


def _connection_error(dsn: str) -> psycopg.OperationalError:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(dsn, connect_timeout=5)
    return caught.value


def test_a_connection_setting_that_cannot_work_is_not_an_outage(embedded_server, tmp_path) -> None:
    """libpq reports some wrong settings without the server's FATAL: they are settings (runbook: Postgres
    refuses), while a closed port or a missing socket is an outage that can heal (Postgres down)."""
    from pipeline.serving import retry
    from pipeline.tasks import runbook

    tcp = f"postgresql://postgres@127.0.0.1:{embedded_server.port}/postgres"  # the embedded server has no SSL
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    settings = [_connection_error(f"{tcp}?sslmode=require"), _connection_error(f"{tcp}?sslmode=verify-full"),
                _connection_error(f"{tcp}?sslmode=bogus")]
    outages = [_connection_error(closed), _connection_error(f"{closed}?sslmode=require"),
               _connection_error(f"postgresql://postgres@/postgres?host={tmp_path}")]  # no server's socket there
    assert "server does not support SSL, but SSL was required" in str(settings[0])
    for err in settings:
        assert not retry.postgres_unreachable(err) and not retry.transient(err), err
        assert runbook.remedy_for(err).kind == "Postgres refuses", err
        assert runbook.remedy_for_text(f"OperationalError: {err}").kind == "Postgres refuses", err
    for err in outages:
        assert retry.postgres_unreachable(err) and retry.transient(err), err
        assert runbook.remedy_for(err).kind == "Postgres down", err
        assert runbook.remedy_for_text(f"OperationalError: {err}").kind == "Postgres down", err


@pytest.mark.slow
def test_sslmode_require_against_a_server_without_ssl_exits_35_at_once(ops: Ops) -> None:
    """A DSN asking for SSL that the server does not offer is a wrong setting: exit 35 while scheduling,
    with libpq's reason, and not retried as if Postgres were down (which would end in exit 30)."""
    ops.extra_env["ECOMM_PG_DSN"] = f"postgresql://postgres@127.0.0.1:{ops.server.port}/{ops.database}?sslmode=require"
    # short retries: without the fix the run would end quickly too, in exit 30 after retry lines;
    # --no-lock: the same command run by anyone else on the machine would make this one exit 10
    result = ops.luigi("DailyPipeline", *DATE, LOCAL, "--no-lock", "--publish-retry-backoff-seconds", "0.1")
    output = result.stdout + result.stderr
    assert result.returncode == RETCODE["scheduling_error"], output[-3000:]
    assert "server does not support SSL, but SSL was required" in result.stderr
    assert "will retry" not in output and "Postgres is unreachable" not in output
    assert "Did not run any tasks" in result.stderr and not ops.lake.exists(), "nothing ran"
