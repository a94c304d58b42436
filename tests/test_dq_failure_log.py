"""audit.dq_failure_log: every quality-gate run's warn/fail/error outcomes, kept in Postgres, while
audit.dq_failures holds the date's latest gate run only.

The publish functions on a real Postgres (the same gate run recorded twice, a later run, the roles), and
end to end: a date the gate blocks, run again with the fix and published, through the real `luigi` command.
"""
from __future__ import annotations

import datetime as dt
import shutil

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from devtools.bench.fixtures import write_day
from pipeline import lake
from pipeline.quality import gate
from pipeline.quality.results import CheckResult
from pipeline.serving import publish

D = dt.date(2025, 12, 14)
FIRST, SECOND = dt.datetime(2025, 12, 15, 2, 0), dt.datetime(2025, 12, 15, 9, 30)
LOG = ("select run_id, checked_at, check_name, table_name, outcome, value from audit.dq_failure_log"
       " where run_date = %s order by checked_at, entry")
LATEST = "select check_name, table_name, outcome, value from audit.dq_failures where run_date = %s order by 2, 1"


def _check(name: str, outcome: str, value: str = "1") -> CheckResult:
    return CheckResult(check_name=name, table_name="fact_orders", check_type="row_count", outcome=outcome,
                       value=value, message=f"{outcome} on purpose")


def _rows(checked_at: dt.datetime, *checks: CheckResult) -> list[dict]:
    return gate.dq_failure_rows(gate.GateResult(load_date=D, checked_at=checked_at, results=list(checks)))


def _query(db, statement: str, day: dt.date = D) -> list[tuple]:
    with db.connect() as conn:
        return conn.execute(statement, [day]).fetchall()


def test_each_gate_run_is_kept_once_and_dq_failures_holds_the_latest(fresh_db, serving_lake) -> None:
    write_day(D, 10, 20, users=5, products=3, known_products=3)
    blocked = _rows(FIRST, _check("a", "pass"), _check("b", "fail", "0"), _check("c", "warn"))
    publish.publish_audit_only(D, blocked, run_id="run_blocked")
    publish.publish_audit_only(D, blocked, run_id="run_blocked_retry")  # the same gate run: nothing new
    first = [("run_blocked", FIRST.replace(tzinfo=dt.timezone.utc), "b", "fact_orders", "fail", "0"),
             ("run_blocked", FIRST.replace(tzinfo=dt.timezone.utc), "c", "fact_orders", "warn", "1")]
    assert _query(fresh_db, LOG) == first

    fixed = _rows(SECOND, _check("a", "pass"), _check("b", "pass"), _check("c", "warn", "2"))
    publish.publish(D, audit_rows=fixed, run_id="run_fixed")
    publish.publish(D, audit_rows=fixed, run_id="run_republished")  # republished from the same gate results
    second = [("run_fixed", SECOND.replace(tzinfo=dt.timezone.utc), "c", "fact_orders", "warn", "2")]
    assert _query(fresh_db, LOG) == first + second
    assert _query(fresh_db, LATEST) == [("c", "fact_orders", "warn", "2")]
    assert _query(fresh_db, "select dq_failed_count from warehouse.daily_metrics where run_date = %s") == [(0,)]

    # a publish without the gate's rows leaves both as they are
    publish.publish(D)
    assert _query(fresh_db, LOG) == first + second
    assert _query(fresh_db, LATEST) == [("c", "fact_orders", "warn", "2")]


def test_an_upgraded_database_s_log_starts_with_the_gate_runs_dq_failures_held(fresh_db, tmp_path) -> None:
    """A database the release before the log built: its dq_failures (each date's latest gate run) seed the log, so
    its latest gate run of a date is what dq_failures holds from the upgrade on, as in a new database."""
    from pipeline.serving import migrations

    before = tmp_path / "serving"
    before.mkdir()
    log = next(m.version for m in migrations.migrations() if m.name == "dq_failure_log")
    for migration in migrations.migrations():
        if migration.version < log:  # the release before the log: none of the migrations from it on
            shutil.copy(migration.path, before)
    with psycopg.connect(fresh_db.dsn) as conn:
        migrations.apply_schema(conn, before)
        conn.execute("insert into audit.dq_failures (run_date, check_name, table_name, check_type, outcome, value,"
                     " message) values (%s, 'b', 'fact_orders', 'row_count', 'fail', '0', 'blocked'),"
                     " (%s, 'c', 'fact_orders', 'row_count', 'warn', '1', 'warned')", [D, D])
        conn.commit()
        migrations.apply_schema(conn)
    log = _query(fresh_db, "select run_id, check_name, outcome, value from audit.dq_failure_log where run_date = %s"
                           " order by entry")
    assert log == [("before_dq_failure_log", "b", "fail", "0"), ("before_dq_failure_log", "c", "warn", "1")]
    assert _query(fresh_db, "select count(distinct checked_at) from audit.dq_failure_log where run_date = %s") == [(1,)]


def test_the_log_names_the_run_whose_gate_produced_the_outcomes(fresh_db, serving_lake) -> None:
    """A restate run killed after its gate left the date's dq_results to the next run, which published them: the
    log named that next run (its checked_at 11 s before the run began). The lake's results keep their gate's run."""
    write_day(D, 10, 20, users=5, products=3, known_products=3)
    gate.write_results(gate.GateResult(load_date=D, checked_at=FIRST, run_id="restate_killed_after_gate",
                                       results=[_check("a", "pass"), _check("c", "warn")]))
    publish.publish(D, audit_rows=gate.dq_failure_rows(gate.load_results(D)), run_id="next_run")
    assert [row[:2] for row in _query(fresh_db, LOG)] == [("restate_killed_after_gate", FIRST.replace(tzinfo=dt.timezone.utc))]

    # results written before dq_results kept the gate's run: the run that records them, as before
    path = lake.partition_file("audit", "dq_results", D)
    pq.write_table(pq.read_table(path).drop_columns(["run_id"]).set_column(
        7, "checked_at", pa.array([SECOND] * 2, pa.timestamp("us"))), path)
    assert gate.load_results(D).run_id is None
    publish.publish(D, audit_rows=gate.dq_failure_rows(gate.load_results(D)), run_id="later_run")
    assert [row[0] for row in _query(fresh_db, LOG)] == ["restate_killed_after_gate", "later_run"]


def test_rows_of_two_gate_runs_are_refused_and_nothing_is_written(fresh_db, serving_lake) -> None:
    mixed = _rows(FIRST, _check("b", "fail")) + _rows(SECOND, _check("c", "warn"))
    with pytest.raises(ValueError, match="2 gate runs"):
        publish.publish_audit_only(D, mixed, run_id="run_mixed")
    assert _query(fresh_db, LOG) == [] and _query(fresh_db, LATEST) == []


def test_bi_reads_the_log_and_the_writer_only_appends(fresh_db, serving_lake) -> None:
    publish.publish_audit_only(D, _rows(FIRST, _check("b", "fail")), run_id="run_blocked")
    with psycopg.connect(fresh_db.as_user("bi_reader")) as conn:
        assert conn.execute("select count(*) from audit.dq_failure_log").fetchone() == (1,)
        conn.commit()
        conn.execute("set transaction read write")  # its sessions start read-only; privileges refuse all the same
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into audit.dq_failure_log (run_date, checked_at, entry, run_id, check_name, outcome)"
                         " values ('2020-01-01', now(), 1, 'x', 'x', 'warn')")
    for statement in ("delete from audit.dq_failure_log", "update audit.dq_failure_log set outcome = 'warn'",
                      "truncate audit.dq_failure_log"):
        with fresh_db.connect() as conn:
            conn.execute("set role ecomm_writer")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


# ---------------------------------------------------------------------------------------- end to end
DAY = dt.date(2025, 12, 10)
HISTORY = ("select run_id, checked_at, outcome, check_name from audit.dq_failure_log where run_date = %s"
           " order by checked_at, entry")


@pytest.mark.slow
def test_a_blocked_date_fixed_and_rerun_keeps_both_gate_runs(ops) -> None:
    shutil.rmtree(ops.incoming)
    ops.generate(DAY, 1, orders=60, events=200, dirty=0.0)
    (ops.incoming / "orders" / str(DAY) / "orders.json").write_text("[]\n")  # an export that lost its orders

    ops.extra_env["ECOMM_RUN_ID"] = "blocked_run"
    blocked = ops.luigi("DailyPipeline", "--date", str(DAY), "--local-scheduler")
    assert blocked.returncode == 30, blocked.stdout[-3000:] + blocked.stderr[-3000:]
    first = ops.query(HISTORY, [DAY])
    assert {run for run, *_ in first} == {"blocked_run"} and len({at for _, at, *_ in first}) == 1
    failed = {name for _, _, outcome, name in first if outcome == "fail"}
    assert "orders received against the median of earlier load dates" in failed
    assert ops.query(LATEST, [DAY]) == ops.query(LATEST.replace("dq_failures", "dq_failure_log"), [DAY])

    # the day really had no orders: the rerun that accepts it publishes it
    ops.extra_env["ECOMM_RUN_ID"] = "fixed_run"
    fixed = ops.luigi("DailyPipeline", "--date", str(DAY), "--local-scheduler", "--checks-volume-fail-low-ratio", "0")
    assert fixed.returncode == 0, fixed.stdout[-3000:] + fixed.stderr[-3000:]
    history = ops.query(HISTORY, [DAY])
    assert history[:len(first)] == first, "the blocked run's outcomes are kept"
    second = history[len(first):]
    assert second and {run for run, *_ in second} == {"fixed_run"} and {o for _, _, o, _ in second} == {"warn"}
    assert len({at for _, at, *_ in second}) == 1 and second[0][1] > first[0][1]
    # dq_failures (and the figures read from it) hold the latest gate run only
    latest = ops.query("select check_name, table_name, outcome, value, message from audit.dq_failures"
                       " where run_date = %s order by table_name, check_name", [DAY])
    assert latest == ops.query("select check_name, table_name, outcome, value, message from audit.dq_failure_log"
                               " where run_date = %s and run_id = 'fixed_run' order by entry", [DAY])
    assert ops.query("select dq_failed_count from warehouse.daily_metrics where run_date = %s", [DAY]) == [(0,)]

    # nothing left to do: the log does not change
    ops.extra_env["ECOMM_RUN_ID"] = "idle_run"
    again = ops.luigi("DailyPipeline", "--date", str(DAY), "--local-scheduler", "--checks-volume-fail-low-ratio", "0")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert ops.query(HISTORY, [DAY]) == history
