"""`python -m pipeline rebuild-serving`: the serving layer recreated from the lake equals the one the pipeline built.

One dataset, built once for the module: four generated days with dirty rows (late orders and
events, orders re-delivered on a later day, quarantined rows) run through the real Luigi pipeline
into a fresh database of the session's embedded server. Each test then compares per-table
checksums (`checksums`) of the original with a rebuild.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pipeline.serving.facts import FACTS
from pipeline.serving import lost_database, migrations, pg, publish, serving_target
from pipeline.tasks import rebuild
from tests.support.analytics_dataset import Dataset, pipeline_dataset
from tests.support.ops import Ops
from tests.support.paths import REPO
from tests.support.processes import free_port
from tests.support.serving import VOLATILE as SERVING_VOLATILE
from tests.support.serving import checksums as relation_checksums

# Columns left out of the checksums, and why each legitimately differs between the original and a rebuild:
# serving.VOLATILE: when and by which run a row was written, surrogate ids (they differ between any two runs);
# runtime_seconds: the original counts its publish task up to the commit, a rebuild its recorded duration
VOLATILE = SERVING_VOLATILE | {"runtime_seconds"}
INTERNAL_SCHEMAS = ("preload", "pipeline_lock")  # transient preloads and lock rows: not served
NEW_TARGET = "--into-new-target"  # each test rebuilds into a new database: the dataset was published to another


def checksums(dsn: str) -> dict[str, tuple[int, str]]:
    """(rows, md5 of the ordered rows) of every served table and view, volatile columns left out."""
    with psycopg.connect(dsn) as conn:
        return relation_checksums(conn, exclude=INTERNAL_SCHEMAS, volatile=VOLATILE)


@pytest.fixture(scope="module")
def original(embedded_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dataset, dict]]:
    """The dataset, published by the pipeline, and its checksums."""
    # a Saturday two days before a month's end: two ISO weeks (cohorts) and a closed month to compact
    with pipeline_dataset(tmp_path_factory.mktemp("rebuild"), embedded_server, start=dt.date(2025, 11, 29)) as data:
        yield data, checksums(data.dsn)


def _empty_database(server, name: str) -> str:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return server.dsn(name)


def test_dataset_has_redeliveries_late_data_and_every_table(original) -> None:
    """What the rebuild must reproduce is not trivial: re-deliveries, late rows, quarantine, all tables filled."""
    data, sums = original
    with psycopg.connect(data.dsn) as conn:
        assert conn.execute("select count(*) from warehouse.fact_orders_superseded").fetchone()[0] > 0
        assert conn.execute("select count(*) from warehouse.fact_events_all"
                            " where date_id < to_char(load_date, 'YYYYMMDD')::int").fetchone()[0] > 0
        assert conn.execute("select count(*) from audit.publish_log").fetchone()[0] == len(data.dates)
    assert sums["audit.pipeline_runs"][0] > 0 and sums["audit.bad_records"][0] > 0


def test_rebuild_after_dropping_the_database_gives_the_same_tables(original, embedded_server, monkeypatch,
                                                                   capsys) -> None:
    data, sums = original
    target = f"{data.database}_dr"
    dsn = _empty_database(embedded_server, target)
    embedded_server.env(monkeypatch, target)
    assert rebuild.main([NEW_TARGET]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines if " published " in line] == [d.isoformat() for d in data.dates]
    assert "days per minute" in lines[-1]
    assert checksums(dsn) == sums
    with psycopg.connect(dsn) as conn:  # reconciled like a daily publish, so the daily run takes the dates as done
        assert conn.execute("select count(*) from audit.publish_log where reconciled_at is null").fetchone()[0] == 0
    # a second run finds everything rebuilt, verifies it and writes nothing
    assert rebuild.main([]) == 0
    assert sum("  already rebuilt (row counts match" in line for line in capsys.readouterr().out.splitlines()) == len(data.dates)
    assert checksums(dsn) == sums


def test_a_rebuild_compacts_the_closed_months_on_its_way(original, embedded_server, monkeypatch, luigi_settings,
                                                         capsys) -> None:
    """As the Publish task does: a month compacted once a later date is published, no answer changed."""
    data, sums = original
    luigi_settings("compaction", after_days=1)  # November closes with the first December date
    target = f"{data.database}_compacted"
    dsn = _empty_database(embedded_server, target)
    embedded_server.env(monkeypatch, target)
    assert rebuild.main([NEW_TARGET]) == 0
    assert checksums(dsn) == sums
    december = [day for day in data.dates if day.month == 12]
    assert len(december) < len(data.dates) and december, data.dates
    with psycopg.connect(dsn) as conn:
        for spec in FACTS:
            attached = [row[0] for row in conn.execute(
                "select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid"
                " where i.inhparent = %s::regclass order by 1", [f"warehouse.{spec.parent}"]).fetchall()]
            assert attached == sorted([spec.month_partition(data.dates[0]),
                                       *(spec.partition(day) for day in december)]), attached


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else proc.returncode
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.05)


def test_rebuild_killed_inside_a_date_resumes_to_the_same_tables(original, embedded_server, tmp_path) -> None:
    data, sums = original
    target = f"{data.database}_kill"
    dsn = _empty_database(embedded_server, target)
    env = {**os.environ, "ECOMM_PG_DATA": str(embedded_server.data_dir), "ECOMM_PG_PORT": str(embedded_server.port),
           "ECOMM_PG_DATABASE": target, "ECOMM_LAKE_DIR": str(data.lake), "ECOMM_DATA_DIR": str(data.incoming)}
    for name in ("ECOMM_PG_DSN", "PGHOST", "PGDATABASE", "PGSERVICE"):
        env.pop(name, None)
    command = [sys.executable, "-m", "pipeline", "rebuild-serving", NEW_TARGET]
    # the second date's publish holds its transaction open (facts copied, nothing committed) until killed
    faults = {"ECOMM_FAULT": "publish.merge:pause@2", "ECOMM_FAULT_DIR": str(tmp_path)}
    proc = subprocess.Popen(command, env={**env, **faults}, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(tmp_path / "publish.merge.paused", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with psycopg.connect(dsn) as conn:
        assert [row[0] for row in conn.execute("select load_date from audit.publish_log")] == data.dates[:1]
        # no half date: the killed transaction left no partition of the second date behind
        attached = {row[0] for row in conn.execute("select distinct load_date from warehouse.fact_events_all")}
        assert attached == set(data.dates[:1])
    resumed = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{data.dates[0]}  already rebuilt" in resumed.stdout
    assert checksums(dsn) == sums


def test_refuses_a_database_the_pipeline_published(original, embedded_server, monkeypatch, capsys) -> None:
    data, sums = original
    embedded_server.env(monkeypatch, data.database)
    assert rebuild.main([]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already serves 4 load date(s)" in err and "empty database" in err
    assert checksums(data.dsn) == sums


def test_refuses_another_target_than_the_lake_was_published_to_unless_told(original, embedded_server, monkeypatch,
                                                                             capsys) -> None:
    """The run audit records where the dataset's dates went: a rebuild into another (empty) database names both in
    one line and touches neither, until --into-new-target says it is meant."""
    data, sums = original
    target = f"{data.database}_other"
    dsn = _empty_database(embedded_server, target)
    embedded_server.env(monkeypatch, target)
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(data.lake))
    last = serving_target.lake_published().target["database"]  # the dataset's, or an earlier test's rebuild's
    assert rebuild.main([]) == 3
    (err,) = capsys.readouterr().err.strip().splitlines()
    folder = embedded_server.data_dir.resolve()
    assert err.startswith(f"rebuild-serving: the lake at {data.lake} was last published to the embedded Postgres in"
                          f" {folder} (port {embedded_server.port}, database {last}), but this rebuild would"
                          f" fill the embedded Postgres in {folder} (port {embedded_server.port}, database {target})"
                          f" (ECOMM_PG_DATA="), err
    assert (f"rerun with {NEW_TARGET}; to use that one, set `ECOMM_PG_DATA={folder} ECOMM_PG_PORT="
            f"{embedded_server.port} ECOMM_PG_DATABASE={last}`") in err, err
    with psycopg.connect(dsn) as conn:  # not even migrated
        assert conn.execute("select to_regclass('audit.publish_log')").fetchone()[0] is None
    assert checksums(data.dsn) == sums
    assert rebuild.main(["--to", data.dates[0].isoformat(), NEW_TARGET]) == 0
    assert f"into the embedded Postgres in {folder} (port {embedded_server.port}, database {target})" \
        in capsys.readouterr().out
    assert rebuild.main([]) == 0  # a rebuild of this lake begun there: the rest goes on without the flag
    with psycopg.connect(dsn) as conn:
        assert [row[0] for row in conn.execute("select load_date from audit.publish_log order by 1")] == data.dates
    # the lake records the rebuild's target: that database lost, the guard names it, not the one published before
    assert serving_target.lake_published().target == {
        "server": "embedded", "data_folder": str(folder), "port": embedded_server.port, "database": target}
    _empty_database(embedded_server, target)
    with pg.connect() as conn:  # this process applied them there once: publish's ensure_schema would not again
        migrations.apply_schema(conn)
    with pytest.raises(lost_database.ServingDatabaseLost) as refused:
        publish.publish(data.dates[-1], run_id="after_the_rebuild")
    assert f"records {len(data.dates)} published date(s)" in str(refused.value)
    assert "not to this one" not in str(refused.value)  # the same database re-created: a plain rebuild
    elsewhere = f"{data.database}_elsewhere"
    _empty_database(embedded_server, elsewhere)
    embedded_server.env(monkeypatch, elsewhere)
    with pytest.raises(lost_database.ServingDatabaseLost,
                       match=rf"last published to the embedded Postgres in .* database {target}\), not to this one"):
        publish.publish(data.dates[-1], run_id="after_the_rebuild")


def test_refuses_an_empty_lake_and_an_unreachable_postgres(original, embedded_server, tmp_path, monkeypatch,
                                                           capsys) -> None:
    data, _ = original
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / "no-lake"))
    assert rebuild.main([]) == 3
    assert "has no load dates: nothing to rebuild" in capsys.readouterr().err
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(data.lake))
    monkeypatch.setenv("ECOMM_PG_DSN", f"postgresql://postgres@/x?host={tmp_path}&port=1")
    assert rebuild.main([]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach the serving Postgres" in err


def test_a_range_then_refuses_a_rebuild_of_other_data(original, embedded_server, monkeypatch, capsys) -> None:
    """--to rebuilds a prefix; a rebuilt date whose row counts differ from the lake's is another lake's: refused."""
    data, _ = original
    target = f"{data.database}_range"
    dsn = _empty_database(embedded_server, target)
    embedded_server.env(monkeypatch, target)
    assert rebuild.main(["--to", data.dates[1].isoformat(), NEW_TARGET]) == 0
    with psycopg.connect(dsn) as conn:
        assert [row[0] for row in conn.execute("select load_date from audit.publish_log order by 1")] == data.dates[:2]
        conn.execute("update audit.publish_log set fact_orders_rows = fact_orders_rows + 1 where load_date = %s",
                     [data.dates[1]])
    capsys.readouterr()
    assert rebuild.main([]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"not a rebuild of this lake: it holds {data.dates[1]}" in err


def test_blocked_and_unchecked_dates_are_treated_as_the_daily_run_treats_them(original, embedded_server, tmp_path,
                                                                              monkeypatch, capsys) -> None:
    """A date its gate blocked gets its outcomes only; a date never checked is not published."""
    import datetime as dt
    import shutil

    from pipeline import lake
    from pipeline.quality import gate
    from pipeline.quality.results import CheckResult
    from pipeline.tasks import restatements

    data, _ = original
    copy = tmp_path / "lake"
    shutil.copytree(data.lake, copy)
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(copy))
    blocked, unchecked = data.dates[-1] + dt.timedelta(days=1), data.dates[-1] + dt.timedelta(days=2)
    restating = data.dates[-1] + dt.timedelta(days=3)  # restated, its new file blocked: the database being replaced
    for day in (blocked, restating):                    # served the version before; the lake holds only the new one
        gate.write_results(gate.GateResult(day, [CheckResult("row_count > 100", "stg_orders", "row_count", "fail",
                                                             "0", "no orders")], dt.datetime(2025, 12, 18, 6)))
    restatements.write_record(restating, {"load_date": str(restating), "status": "pending", "sources": ["orders"]})
    for table in ("fact_orders", "fact_events"):
        target = Path(lake.partition_file("warehouse", table, unchecked))
        target.parent.mkdir(parents=True)
        shutil.copy(lake.partition_file("warehouse", table, data.dates[-1]), target)
    target = f"{data.database}_gates"
    dsn = _empty_database(embedded_server, target)
    embedded_server.env(monkeypatch, target)
    assert rebuild.main([NEW_TARGET]) == 0
    out = capsys.readouterr().out
    assert f"{blocked}  not published: its quality gate blocked it; 1 outcome(s) recorded" in out
    assert f"{unchecked}  skipped: no quality gate results in the lake" in out
    assert (f"{restating}  not published: its quality gate blocked it (a restatement of it is pending: the lake holds"
            " only its new, blocked files, so the date a database being replaced still served goes;"
            f" `python -m pipeline summary --date {restating}` says what to fix); 1 outcome(s) recorded") in out
    with psycopg.connect(dsn) as conn:
        assert [row[0] for row in conn.execute("select load_date from audit.publish_log order by 1")] == data.dates
        assert conn.execute("select check_name, outcome from audit.dq_failures where run_date = %s",
                            [blocked]).fetchall() == [("row_count > 100", "fail")]
        # the gate's history holds the one gate run the lake keeps, as the rebuild recorded it
        (logged,) = conn.execute("select check_name, outcome, checked_at, run_id from audit.dq_failure_log"
                                 " where run_date = %s", [blocked]).fetchall()
        assert logged[:3] == ("row_count > 100", "fail", dt.datetime(2025, 12, 18, 6, tzinfo=dt.timezone.utc))
        assert logged[3].startswith(rebuild.RUN_PREFIX)


def _ops_on_copy(data: Dataset, server, tmp_path: Path, target: str) -> Ops:
    """`luigi` and `python -m pipeline` runs on a copy of the dataset's lake, into the (empty) database `target`."""
    import shutil

    shutil.copytree(data.lake, tmp_path / "lake")
    cfg = tmp_path / "luigi-test.cfg"  # never the developer's luigid
    cfg.write_text(f"[core]\nscheduler_port = {free_port()}\n")
    _empty_database(server, target)
    return Ops(incoming=data.incoming, lake=tmp_path / "lake", server=server, database=target,
               extra_env={"LUIGI_CONFIG_PATH": str(cfg)})


@pytest.mark.slow
def test_a_built_date_whose_gate_results_are_lost_is_named_with_its_command_and_fails_the_rebuild(
        original, embedded_server, tmp_path) -> None:
    """Its warehouse partitions are in the lake, so it may have been published: left out loudly (exit 4), and the
    command the line names gates and publishes it, after which the database equals the original."""
    import shutil

    data, sums = original
    lost = data.dates[1]
    ops = _ops_on_copy(data, embedded_server, tmp_path, f"{data.database}_lost")
    shutil.move(ops.lake / "audit" / "dq_results" / f"load_date={lost}", tmp_path / "elsewhere")
    done = ops.pipeline("rebuild-serving", NEW_TARGET)
    command = f"luigi --module pipeline.tasks DailyPipeline --date {lost} --local-scheduler"
    assert done.returncode == 4, done.stdout + done.stderr
    assert (f"{lost}  NOT REBUILT: built but its gate results are missing (lake/audit/dq_results)" in done.stdout
            and f"`{command}`" in done.stdout), done.stdout
    assert "skipped: no quality gate results" not in done.stdout
    assert "1 built date(s) left out" in done.stderr, done.stderr
    assert [row[0] for row in ops.query("select load_date from audit.publish_log order by 1")] == [
        day for day in data.dates if day != lost]
    gated = ops.luigi(*command.split()[3:])
    assert gated.returncode == 0, gated.stderr[-3000:]
    assert [row[0] for row in ops.query("select load_date from audit.publish_log order by 1")] == data.dates
    rebuilt = checksums(ops.dsn)
    for relation in ("warehouse.fact_orders_all", "warehouse.fact_events_all", "warehouse.daily_metrics",
                     "audit.bad_records", "marts.product_sales_daily"):
        assert rebuilt[relation] == sums[relation], relation


@pytest.mark.slow
def test_a_missing_warehouse_partition_names_a_command_that_lets_the_rebuild_resume(original, embedded_server,
                                                                                    tmp_path) -> None:
    """Not the daily pipeline (the rebuild then refuses the database it published to): BuildWarehouse, then the
    same rebuild command again, which ends with the original's tables."""
    data, sums = original
    gone = data.dates[2]
    ops = _ops_on_copy(data, embedded_server, tmp_path, f"{data.database}_gone")
    (ops.lake / "warehouse" / "fact_orders" / f"load_date={gone}" / "data.parquet").unlink()
    stopped = ops.pipeline("rebuild-serving", NEW_TARGET)
    command = f"luigi --module pipeline.tasks BuildWarehouse --date {gone} --local-scheduler"
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    (line,) = stopped.stderr.strip().splitlines()
    assert f"{gone} passed its quality gate but warehouse/fact_orders for it is missing" in line, line
    assert f"`{command}`, then rerun the same rebuild-serving command to resume" in line, line
    built = ops.luigi(*command.split()[3:])
    assert built.returncode == 0, built.stderr[-3000:]
    resumed = ops.pipeline("rebuild-serving")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rebuilt = checksums(ops.dsn)
    # the run audit gained the execution that rebuilt the partition, as any run of a task adds one
    assert rebuilt.pop("audit.pipeline_runs")[0] == sums["audit.pipeline_runs"][0] + 1
    assert rebuilt == {name: value for name, value in sums.items() if name != "audit.pipeline_runs"}
