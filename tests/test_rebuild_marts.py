"""`python -m pipeline rebuild-marts`: the fix a `MartsInconsistent` publish names, run as an operator runs it.

Two dates published for real, then a mart row corrupted in Postgres (as a hand edit does): a publish that
touches it is refused, naming the command; the command brings every mart back to what the publishes gave,
and the publish then goes through. It takes the publish lock in its one transaction: a publish holding it
is waited for (or, past --lock-timeout, nothing is changed), and a reader never sees a half-rebuilt mart.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from pipeline.serving import locks, mart_deltas, migrations, pg, publish
from pipeline.serving.facts import PublishLocked
from pipeline.serving.transaction import begin_writing
from pipeline.tasks import runbook
from pipeline.transform import marts as models
from tests.support.paths import REPO
from tests.support.serving import event, order, write_facts

D1, D2 = dt.date(2025, 12, 15), dt.date(2025, 12, 16)
TABLES = ("complete_days", *models.CONTRIBUTIONS, *models.DERIVED)
COMMAND = [sys.executable, "-m", "pipeline", "rebuild-marts"]


def marts_of(dsn: str) -> dict[str, list[tuple]]:
    """Every mart table's rows, sorted."""
    with psycopg.connect(dsn) as conn:
        return {table: sorted(conn.execute(f"select * from marts.{table}").fetchall(), key=repr) for table in TABLES}


def corrupt(dsn: str) -> None:
    """What a hand edit does: D1's sales of PROD_0001 set to nothing, a customer's row deleted."""
    with psycopg.connect(dsn) as conn:
        conn.execute("update marts.product_sales_daily set order_count = 0, units_sold = 0, gross_revenue = 0"
                     " where order_date = %s and product_id = 'PROD_0001'", [D1])
        conn.execute("delete from marts.customers where user_id = 'U2'")


@pytest.fixture
def published(fresh_db, serving_lake) -> str:
    """Two published dates; their marts as the publishes left them are the reference."""
    write_facts(D1, [order("O1", D1, user_id="U1"), order("O2", D1, user_id="U2")],
                [event("E1", D1, user_id="U1"), event("E2", D1, user_id="U2", event_type="purchase")])
    write_facts(D2, [order("O3", D2, user_id="U1", product_id="P2")], [event("E3", D2, user_id="U1")])
    for day in (D1, D2):
        publish.publish(day)
    return fresh_db.dsn


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], cwd=REPO, env=dict(os.environ), capture_output=True, text=True,
                          timeout=300, check=False)


def test_a_corrupted_mart_is_refused_by_the_publish_and_rebuilt_by_the_command(published: str) -> None:
    reference = marts_of(published)
    corrupt(published)
    # D1 republished without O2: its change takes an order back from a row the hand edit left at 0
    write_facts(D1, [order("O1", D1, user_id="U1")],
                [event("E1", D1, user_id="U1"), event("E2", D1, user_id="U2", event_type="purchase")])
    refused = r"rebuild them with `python -m pipeline rebuild-marts`"
    with pytest.raises(mart_deltas.MartsInconsistent, match=refused) as err:
        publish.publish(D1)
    # what the failed Publish task's explanation, the run summary and the runbook say to do
    remedy = runbook.remedy_for_text(runbook.reason(err.value))
    assert remedy is not None and remedy is runbook.remedy_for(err.value) and remedy.kind == "marts inconsistent"
    assert remedy.fix_for(D1, local_scheduler=True).startswith(
        "`python -m pipeline rebuild-marts` (recomputes every mart from the served facts in one transaction, under the"
        " publish lock; docs/operations.md#rebuilding-the-marts), then `luigi --module pipeline.tasks DailyPipeline"
        f" --date {D1} --local-scheduler")
    assert marts_of(published)["customers"] == [r for r in reference["customers"] if r[0] != "U2"], "rolled back"

    done = _run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("rebuilt 9 mart tables from the served facts of 2 published load date(s) in one"
                                " transaction under the publish lock: 2 row(s) changed, "), lines
    said = {line.split()[0]: line.split()[1:] for line in lines[:-1]}
    assert said["marts.product_sales_daily"][2:] == ["changed:", "1", "replaced,", "0", "added,", "0", "removed"]
    assert said["marts.customers"][:2] == ["2", "rows"] and said["marts.customers"][5:7] == ["1", "added,"]
    assert marts_of(published) == reference  # what the publishes gave

    publish.publish(D1)  # the refused publish now goes through, and its marts are exact
    expected = marts_of(published)
    assert _run().stdout.splitlines()[-1].split(": ")[1].startswith("0 row(s) changed")
    assert marts_of(published) == expected


def test_a_publish_holding_the_lock_past_the_timeout_leaves_everything_as_it_was(published: str) -> None:
    corrupt(published)
    corrupted = marts_of(published)
    with pg.connect() as holder, holder.transaction():  # what a publish holds while it changes the marts
        begin_writing(holder)
        locks.hold(holder, locks.PUBLISH_KEY)
        pid = holder.info.backend_pid
        done = _run("--lock-timeout", "1s")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("rebuild-marts: nothing was rebuilt, the marts are as they were: the pipeline lock"
                           f" 'publish' stayed held by another pipeline process (pid {pid} ("), line
    assert line.endswith("for longer than (1s); let it finish or stop it; then run it again"), line
    assert marts_of(published) == corrupted


def _blocked_behind(pid: int) -> bool:
    """Whether a session waits for a lock that the session `pid` holds."""
    with pg.connect() as conn:
        return conn.execute("select exists (select 1 from pg_stat_activity where %s = any(pg_blocking_pids(pid)))",
                            [pid]).fetchone()[0]


def test_the_command_waits_for_a_publish_holding_the_lock(published: str) -> None:
    reference = marts_of(published)
    corrupt(published)
    corrupted = marts_of(published)
    with pg.connect() as holder:
        pid = holder.info.backend_pid
        with holder.transaction():
            begin_writing(holder)
            locks.hold(holder, locks.PUBLISH_KEY)
            proc = subprocess.Popen(COMMAND, cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 120  # a loaded machine starts the command slowly: wait till it waits
            while not _blocked_behind(pid):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the command never waited for the lock"
                time.sleep(0.1)
            time.sleep(locks.NOTICE_MS / 1000 + 1)  # past the wait it reports
            assert proc.poll() is None, proc.communicate()
            assert marts_of(published) == corrupted  # it has changed nothing while it waits
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert f"waiting for the pipeline lock 'publish', held by pid {pid} (" in err, err
    assert "got the pipeline lock 'publish' after waiting" in err, err
    assert marts_of(published) == reference


def test_readers_see_the_old_marts_until_the_commit_and_a_killed_rebuild_changes_nothing(
        published: str, tmp_path: Path, luigi_settings) -> None:
    reference = marts_of(published)
    corrupt(published)
    corrupted = marts_of(published)
    env = {**os.environ, "ECOMM_FAULT": "marts.rebuild:pause", "ECOMM_FAULT_DIR": str(tmp_path)}
    proc = subprocess.Popen(COMMAND, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    paused = tmp_path / "marts.rebuild.paused"
    deadline = time.monotonic() + 120
    while not paused.exists():  # every mart recomputed inside the transaction, nothing committed
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the command never reached marts.rebuild"
        time.sleep(0.1)
    assert marts_of(published) == corrupted  # a reader sees the marts as they were, whole
    luigi_settings("publish", pipeline_lock_timeout="1s")
    with pytest.raises(PublishLocked, match="the pipeline lock 'publish' stayed held"):
        publish.publish(D2)  # a publish meanwhile waits for the rebuild (here: 1 s, then gives up)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert marts_of(published) == corrupted
    assert _run().returncode == 0
    assert marts_of(published) == reference


def _rebuild_while_locked(relation: str, seconds: float, *args: str) -> tuple[int, str]:
    """`rebuild-marts ARGS` (in this process, so the test's settings apply) while another session holds ACCESS
    EXCLUSIVE on RELATION for `seconds`, as a `migrate` altering it does: its exit code and stderr."""
    import contextlib
    import io

    from pipeline.serving import rebuild_marts

    err = io.StringIO()
    done: list[int] = []
    with psycopg.connect(pg.dsn()) as holder:
        holder.execute(f"lock table {relation} in access exclusive mode")

        def run() -> None:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    done.append(rebuild_marts.main(list(args)))
                except SystemExit as exit_:  # argparse's
                    done.append(int(exit_.code))

        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(seconds)
        holder.commit()
        worker.join(timeout=300)
    return done[0], err.getvalue()


def test_a_mart_a_migrate_holds_is_waited_for_not_for_the_publishs_two_seconds(published: str) -> None:
    """begin_writing bounds each lock wait by [publish] lock_timeout (2 s, a publish's bound against BI sessions):
    a `migrate` holding a mart made the rebuild fail (exit 1). It waits as long as for the publish lock."""
    reference = marts_of(published)
    corrupt(published)
    code, err = _rebuild_while_locked("marts.customers", 3.5)
    assert code == 0, err
    assert marts_of(published) == reference


def test_the_rebuild_runs_without_the_postgres_statement_timeout_unless_given_one(published: str,
                                                                                 luigi_settings) -> None:
    """[postgres] statement_timeout (every pipeline connection's) applied to the whole rebuild, which reads every
    served fact; --statement-timeout (default 0: none) is its own, set in its transaction."""
    reference = marts_of(published)
    corrupt(published)
    corrupted = marts_of(published)
    luigi_settings("postgres", statement_timeout="1s")
    luigi_settings("publish", lock_timeout="30s")  # here only the statement's time counts
    code, err = _rebuild_while_locked("marts.customers", 2.5)  # a statement longer than [postgres] statement_timeout
    assert code == 0, err
    assert marts_of(published) == reference
    corrupt(published)
    code, err = _rebuild_while_locked("marts.customers", 2.5, "--statement-timeout", "1s")
    assert code == 1 and "canceling statement due to statement timeout" in err, err
    assert err.startswith("rebuild-marts: failed and rolled back, the marts are as they were: "), err
    assert marts_of(published) == corrupted


def test_to_count_its_changes_it_keeps_keys_and_row_hashes_not_a_second_copy_of_the_marts(published: str) -> None:
    """It copied every mart into a temp table to count changed keys: as much temp space again as the marts."""
    from psycopg import sql

    from pipeline.serving import rebuild_marts

    with pg.connect() as conn, conn.transaction():
        for table in TABLES:
            before = rebuild_marts._keep_before(conn, table)
            kept = [c.name for c in conn.execute(sql.SQL("select * from {} limit 0").format(before)).description]
            assert kept == [*mart_deltas.key_of(conn, table), "_rebuild_row_hash"], (table, kept)


def test_a_mart_of_one_row_says_one_row(published: str) -> None:
    """It printed `marts.cohort_retention  1 rows`."""
    done = _run()
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()[:-1]
    single = [line for line in lines if line.split()[1] == "1"]
    assert single, lines  # the published dates give a mart of one row (one cohort)
    assert all(line.split()[2] == "row" for line in single), single
    assert all(line.split()[2] == "rows" for line in lines if line.split()[1] != "1"), lines
    assert len({line.index("changed:") for line in lines}) == 1, lines  # the column stays aligned


def test_a_pending_migration_runs_without_the_postgres_statement_timeout(published: str, luigi_settings,
                                                                         monkeypatch) -> None:
    """The rebuild applies pending migrations first, and they ran under [postgres] statement_timeout: a migration
    longer than it (here: one waiting 2.5 s for a table another session holds) was cut, exit 1, on every run."""
    with psycopg.connect(published) as conn:  # 048 pending again, as in a database that predates it
        conn.execute("delete from audit.schema_migrations where version = 48")
    monkeypatch.setattr(migrations, "_ensured", set())  # this process applied them for the publishes
    luigi_settings("postgres", statement_timeout="1s")
    luigi_settings("publish", lock_timeout="30s")  # here only the statement's time counts
    code, err = _rebuild_while_locked("audit.dq_failure_log", 2.5)  # 048 comments on one of its columns
    assert code == 0, err
    with psycopg.connect(published) as conn:
        assert conn.execute("select name from audit.schema_migrations where version = 48").fetchone() == (
            "dq_failure_log_gate_run",)
