"""The lake's object store going down in the middle of a daily run (an `s3://` lake on a real S3 server, moto's).

The run is held as a task starts (`ECOMM_FAULT=task.start:<Task>:pause`), the store is stopped, the run goes
on: the task that meets the dead store fails with the store's error in one line, and the run ends with the
failed task's exit code, not Luigi's "Uncaught exception" traceback and exit 40 (a rejected command line).
Moto keeps its objects in memory: a store started again is empty, so no rerun here converges (not tested).
"""
from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest

from pipeline import lake
from pipeline.lake import s3
from pipeline.tasks import cli_errors, runbook
from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO
from tests.support.processes import free_port
from tests.support.s3_server import BUCKET, s3_server
from tests.test_restate_races import wait_for


def run_until_the_store_dies(ops: Ops, tmp_path: Path, task: str) -> tuple[int, str]:
    """`luigi ... DailyPipeline --date D --local-scheduler` on a fresh s3:// lake, the store stopped as `task` starts:
    the run's exit code and its output (stderr and stdout)."""
    faults = tmp_path / "faults"
    faults.mkdir()
    with contextlib.ExitStack() as store:
        env = store.enter_context(s3_server())
        world = Ops(incoming=ops.incoming, lake=ops.lake, server=ops.server, database=ops.database,
                    extra_env={**ops.extra_env, **env, "ECOMM_LAKE_DIR": f"s3://{BUCKET}/outage-{uuid.uuid4().hex[:8]}",
                               "ECOMM_FAULT": f"task.start:{task}:pause@1", "ECOMM_FAULT_DIR": str(faults),
                               "ECOMM_FAULT_PAUSE_SECONDS": "120"})
        run = subprocess.Popen([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline",
                                "--date", str(SEED_DAY), "--local-scheduler"], cwd=REPO, env=world.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for((faults / "task.start.paused").exists, run, f"the run holding at {task}'s start")
            store.close()  # the store goes down while the run waits
            (faults / "task.start.resume").write_text("")
            output, _ = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
    return run.returncode, output


def summary_lines(output: str) -> str:
    """The run's own lines after its tasks ran: from the first failed task's line to the end."""
    return output[output.index("failed "):] if "failed " in output else output


@pytest.mark.slow
def test_the_store_dying_mid_run_fails_the_task_in_one_line_and_exits_30_not_40(ops: Ops, tmp_path: Path) -> None:
    """StageOrders starts with the store gone: it fails, naming the store's error, and the run exits 30 ([retcode]
    task_failed: the runbook's "lake unreadable" row for a task failing). Luigi's summary of the tasks still pending
    asks their requires() again after the run; a model task's lists the lake's catalog snapshots, and the store's
    OSError escaped Luigi there: exit 40 ([retcode] unhandled_exception, a rejected command line) and a traceback."""
    code, output = run_until_the_store_dies(ops, tmp_path, "StageOrders")
    tail = summary_lines(output)
    assert "Uncaught exception in luigi" not in tail and "Traceback (most recent call last)" not in tail, tail[-4000:]
    assert code == 30, output[-4000:]
    failed = [line for line in output.splitlines() if " failed " in line and "StageOrders(" in line]
    assert failed and "AWS Error NETWORK_CONNECTION" in failed[0], failed or output[-4000:]
    assert "===== Luigi Execution Summary =====" in output, output[-4000:]


def test_a_task_failing_on_duckdb_s_copy_of_the_store_s_error_names_the_store_s_error(
        s3_lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB reads the lake through the store's client and raises its error inside a Python traceback: a task that
    meets it (the quality gate, when the store dies under it) is one line naming the store's error, in Luigi's
    "failed" line and in what luigid and the failure e-mail show, not "Error: Traceback (most recent call last)"."""
    glob = lake.table_glob("staging", "stg_orders")  # the lake's root, asked while the store answers
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # then the store down
    s3._client.cache_clear()  # built from the environment on first use
    con = duckdb.connect()
    s3.register_duckdb(con)
    with pytest.raises(duckdb.Error) as caught:
        con.execute("select count(*) from read_parquet($p)", {"p": glob}).fetchall()
    error = caught.value
    assert lake.store_error(error) and str(error).startswith("Traceback"), str(error)[:300]  # the case at hand

    try:
        raise error
    except duckdb.Error:
        record = logging.getLogger("luigi-interface").makeRecord(
            "luigi-interface", logging.ERROR, __file__, 0, "[pid %s] Worker %s failed    %s",
            (123, "Worker(...)", f"QualityGate(date={SEED_DAY})"), sys.exc_info())
    assert cli_errors._KnownTaskFailure().filter(record) and record.exc_info is None
    line = record.getMessage()
    assert "AWS Error NETWORK_CONNECTION" in line and "Traceback" not in line, line
    assert line.endswith(f"failed    QualityGate(date={SEED_DAY}): {type(error).__name__}: {lake.store_words(error)}"), line

    head = runbook.explain("QualityGate", SEED_DAY, error, local_scheduler=True).splitlines()
    assert head[0] == f"QualityGate for {SEED_DAY} failed: {type(error).__name__}: {lake.store_words(error)}", head
    assert "(lake unreadable)" in head[1], head
