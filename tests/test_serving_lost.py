"""A serving database lost and re-created empty: the daily run refuses to publish one date into it, and
`rebuild-serving` (what the refusal names) brings every date back; a new deployment's first publishes go on.

Real `luigi` and `python -m pipeline` runs on generated days, the session's embedded Postgres.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pipeline.serving import marts, publish
from pipeline.tasks import rebuild
from tests.support.ops import Ops
from tests.support.paths import REPO
from tests.support.processes import free_port

# Monday 2025-12-08: the generator's first day (its catalog snapshot is that Monday's)
D1, D2, D3 = (dt.date(2025, 12, 8) + dt.timedelta(days=i) for i in range(3))


def _daily(ops: Ops, day: dt.date):
    return ops.luigi("DailyPipeline", "--date", str(day), "--local-scheduler")


def _drop(ops: Ops) -> None:
    """The database lost, as when the embedded server's data folder goes: the next run re-creates it empty."""
    with psycopg.connect(ops.server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(ops.database)))


def _customers(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("select * from marts.customers order by 1").fetchall()


@pytest.mark.slow
def test_a_lost_database_is_refused_and_rebuild_serving_brings_every_date_back(ops: Ops) -> None:
    ops.generate(D1, 3, orders=200, events=1200)
    for day in (D1, D2):
        done = _daily(ops, day)
        assert done.returncode == 0, done.stderr[-3000:]
    _drop(ops)

    refused = _daily(ops, D3)
    assert refused.returncode == 30, refused.stderr[-3000:]
    (said,) = [line for line in refused.stderr.splitlines() if "ServingDatabaseLost: the serving database" in line]
    assert (f"records 2 published date(s) ({D1}..{D2})" in said and ops.database in said and str(ops.lake) in said
            and "`python -m pipeline rebuild-serving`" in said), said
    assert "Traceback" not in refused.stderr
    assert "Publish: ServingDatabaseLost: the serving database" in refused.stdout  # the run summary names it
    assert "what to do (serving database lost): if the message says" in refused.stdout
    assert "; otherwise `python -m pipeline rebuild-serving`" in refused.stdout
    assert ops.query("select count(*) from audit.publish_log") == [(0,)]
    assert ops.query("select count(*) from warehouse.daily_metrics") == [(0,)]

    rebuilt = ops.pipeline("rebuild-serving")
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:] + rebuilt.stderr[-3000:]
    assert ops.query("select load_date from audit.publish_log order by 1") == [(D1,), (D2,), (D3,)]
    with psycopg.connect(ops.dsn) as conn:  # the marts equal the models over every published date's facts
        kept = _customers(conn)
        assert {row[0] for row in kept} >= {row[0] for row in conn.execute(
            "select distinct user_id from warehouse.fact_orders_all where user_id is not null").fetchall()}
        marts.rebuild(conn)
        assert _customers(conn) == kept
        conn.rollback()
    # the refused Publish is history now: the date was published (by the rebuild) after it failed
    summary = ops.pipeline("summary", "--date", str(D3))
    assert summary.returncode == 0, summary.stdout + summary.stderr[-3000:]
    (row,) = [line for line in summary.stdout.splitlines() if line.startswith(f"{D3}  ")]
    assert row.endswith("  published") and "1 of 1 date(s) published" in summary.stdout, summary.stdout
    assert "ServingDatabaseLost" not in summary.stdout and "what to do" not in summary.stdout, summary.stdout
    again = _daily(ops, D3)  # rebuilt and reconciled: the daily run takes it as done
    assert again.returncode == 0, again.stderr[-3000:]

    # a failure after the publish is the date's state still
    path = ops.incoming / "orders" / str(D3) / "orders.json"
    path.write_text(json.dumps(json.loads(path.read_text())[:-1]))  # a corrected file: one order fewer
    changed = _daily(ops, D3)
    assert changed.returncode == 30 and "SourcesUnchanged: SourceChanged" in changed.stdout, changed.stdout
    standing = ops.pipeline("summary", "--date", str(D3))
    assert standing.returncode == 1 and "SourcesUnchanged: SourceChanged" in standing.stdout, standing.stdout


def test_a_failure_is_history_only_when_another_run_published_the_date_after_it() -> None:
    from pipeline.tasks.summary_inputs import published_since

    utc, ended = dt.timezone.utc, dt.datetime(2025, 12, 10, 6, 0)  # run audit: naive UTC
    failed = {"run_id": "20251210T055900_abcd1234", "ended_at": ended}
    cet = dt.timezone(dt.timedelta(hours=2))
    pub = {"run_id": "rebuild_x", "published_at": dt.datetime(2025, 12, 10, 7, 30, tzinfo=cet)}
    assert not published_since(failed, pub)  # 05:30 UTC: before the failure
    assert published_since(failed, {**pub, "published_at": dt.datetime(2025, 12, 10, 6, 1, tzinfo=utc)})
    later = ended.replace(hour=7, tzinfo=utc)
    assert not published_since(failed, {**pub, "run_id": failed["run_id"], "published_at": later})  # the same run
    assert not published_since(failed, None) and not published_since({**failed, "ended_at": None}, pub)


@pytest.mark.slow
def test_a_new_deployment_publishes_and_only_a_rebuild_fills_a_replaced_database(ops: Ops, monkeypatch) -> None:
    """A backfill into an empty database with two workers: several dates wait on the first commit, none refused.
    Then a new empty database: a publish of another caller than the rebuild (run id `rebuild_...`) is refused."""
    ops.generate(D1, 3, orders=200, events=1200)
    backfill = ops.luigi("RangeDaily", "--of", "DailyPipeline", "--start", str(D1), "--stop",
                         str(D3 + dt.timedelta(days=1)), "--workers", "2", "--local-scheduler")
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    assert ops.query("select load_date from audit.publish_log order by 1") == [(D1,), (D2,), (D3,)]

    new = f"ops_{uuid.uuid4().hex[:10]}"
    ops.server.env(monkeypatch, new)
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(ops.lake))
    monkeypatch.setenv("ECOMM_DATA_DIR", str(ops.incoming))
    with psycopg.connect(ops.server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(new)))
    with pytest.raises(publish.PublishError, match=rf"records 3 published date\(s\) \({D1}..{D3}\)") as refused:
        publish.publish(D2, run_id="restate_like")
    assert type(refused.value).__name__ == "ServingDatabaseLost"
    assert publish.published_dates([D1, D2, D3]) == set()
    publish.publish(D2, run_id=rebuild.new_run_id())  # what rebuild-serving does
    publish.publish(D3, run_id="restate_like")  # the database serves a date now: the next publish goes on
    assert publish.published_dates([D1, D2, D3]) == {D2, D3}


@pytest.mark.slow
def test_a_relative_ecomm_pg_data_run_from_another_folder_is_refused_naming_the_new_data_folder(
        ops: Ops, tmp_path: Path) -> None:
    """A relative ECOMM_PG_DATA resolves against the current folder: run from another one (a cron job's $HOME), a new
    empty server started there and the guard refused the publish, but its line said to run rebuild-serving, which
    would fill the new folder. It names the folder, the setting and the current folder, and says to check them first."""
    first = ops.luigi("DailyPipeline", "--date", "2025-12-14", "--local-scheduler")
    assert first.returncode == 0, first.stderr[-3000:]
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o711)  # as root, the server's user must traverse it
    pgdata = home / "pgdata"
    env = {**ops.env, "ECOMM_PG_DATA": "pgdata", "ECOMM_PG_PORT": str(free_port()),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    try:
        refused = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline",
                                  "--date", "2025-12-15", "--local-scheduler"], cwd=home, env=env, capture_output=True,
                                 text=True, timeout=300, check=False)
        assert refused.returncode == 30, refused.stderr[-3000:]
        (said,) = [line for line in refused.stderr.splitlines() if "ServingDatabaseLost: " in line]
        assert (f"ServingDatabaseLost: the embedded Postgres's data folder {pgdata} (ECOMM_PG_DATA='pgdata', relative:"
                f" resolved against the current folder {home}) was initialised empty by this run (database"
                f" {ops.database} holds no published date), but the lake at {ops.lake} records 1 published date(s)"
                " (2025-12-14..2025-12-14): check ECOMM_PG_DATA and the current folder first; if the dates were served"
                " from another data folder, stop this server") in said, said
        assert said.index("check ECOMM_PG_DATA") < said.index("rebuild-serving"), said
        (summary,) = [line for line in refused.stdout.splitlines() if "Publish: ServingDatabaseLost: " in line]
        assert "was initialised empty by this run" in summary, summary  # within the 300 characters it shows
        assert "what to do (serving database lost): if the message says" in refused.stdout, refused.stdout[-3000:]
        assert ops.query("select count(*) from audit.publish_log") == [(1,)]  # the meant database, untouched

        # run again there, the server up: not new to this run, so said as re-created or replaced, naming the folder
        again = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline",
                                "--date", "2025-12-15", "--local-scheduler"], cwd=home, env=env, capture_output=True,
                               text=True, timeout=300, check=False)
        assert again.returncode == 30, again.stderr[-3000:]
        (said,) = [line for line in again.stderr.splitlines() if "ServingDatabaseLost: the serving database" in line]
        assert (f": it was re-created or replaced (the embedded Postgres's data folder {pgdata}"
                f" (ECOMM_PG_DATA='pgdata', relative: resolved against the current folder {home})); run `python -m"
                " pipeline rebuild-serving`" in said), said
    finally:
        stop = {**env, "ECOMM_PG_DATA": str(pgdata)}
        stopped = subprocess.run([sys.executable, "-m", "pipeline.serving.pg", "stop"], cwd=REPO, env=stop,
                                 capture_output=True, text=True, timeout=120, check=False)
    assert stopped.stdout.strip() == "stopped", stopped.stderr

