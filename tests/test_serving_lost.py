"""A serving database lost and re-created empty: the daily run refuses to publish one date into it, and
`rebuild-serving` (what the refusal names) brings every date back; a new deployment's first publishes go on.

Real `luigi` and `python -m pipeline` runs on generated days, the session's embedded Postgres.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pipeline import cli, lake
from pipeline.serving import data_folder, lost_database, marts, publish, serving_target
from pipeline.tasks import rebuild
from tests.support.ops import Ops
from tests.support.paths import REPO
from tests.support.postgres import PG_ENV
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


def _deep_home(tmp_path: Path) -> Path:
    """A current folder with a long path holding a space: the refusal must read whole in a run's summary, and the
    stop command it gives must be pasteable, whatever the path."""
    home = tmp_path
    for part in ("cron jobs", "h" * 60, "e" * 60, "home"):
        home = home / part
        home.mkdir()
        home.chmod(0o711)  # as root, the server's user must traverse it
    return home


def test_the_refusal_says_to_check_the_current_folder_first_only_when_the_data_folder_depends_on_it(
        monkeypatch, tmp_path: Path) -> None:
    """A checkout's relative [postgres] embedded_dir resolves against the checkout, wherever a run starts (a deleted
    .pgdata there is a lost database: rebuild), as does a relative ECOMM_PG_DATA run from the checkout; a relative
    ECOMM_PG_DATA run from another folder is what to check first, and its stop command is pasteable."""
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)

    def said() -> str:
        return lost_database.refusal("ecomm", "/run/pg", 54320, [D1, D2], D3)

    monkeypatch.chdir(tmp_path)
    rebuild = f"; run `python -m pipeline rebuild-serving` (it republishes every gated date, {D3} included"
    assert said().startswith("the serving database ecomm on /run/pg:54320 holds no published date, but the lake at")
    assert "current folder" not in said(), said()
    assert (f"({D1}..{D2}): it was re-created or replaced (the embedded Postgres's data folder {REPO / '.pgdata'},"
            f" [postgres] embedded_dir = .pgdata){rebuild}") in said(), said()
    monkeypatch.setenv("ECOMM_PG_DATA", "pgdata")
    monkeypatch.chdir(REPO)
    assert f"(the embedded Postgres's data folder {REPO / 'pgdata'}, ECOMM_PG_DATA='pgdata'){rebuild}" in said()
    assert "current folder" not in said(), said()
    monkeypatch.setenv("ECOMM_PG_DATA", str(tmp_path / "pgdata"))
    home = _deep_home(tmp_path)
    monkeypatch.chdir(home)
    assert f"(the embedded Postgres's data folder {tmp_path / 'pgdata'}, ECOMM_PG_DATA=" in said(), said()
    assert "current folder" not in said(), said()

    monkeypatch.setenv("ECOMM_PG_DATA", "pgdata")
    text = said()
    lead = ("the embedded Postgres's data folder is relative to the current folder: check ECOMM_PG_DATA and the"
            f" current folder first; database ecomm in {home / 'pgdata'} (ECOMM_PG_DATA='pgdata') holds no published")
    assert text.startswith(lead), text
    assert cli.shortened(f"ServingDatabaseLost: {text}").startswith(f"ServingDatabaseLost: {lead[:120]}")
    command = text[text.index("stop this server (`") + 19:text.index("`; until then BI tools on port 54320")]
    assert shlex.split(command) == [f"ECOMM_PG_DATA={home / 'pgdata'}", "python", "-m", "pipeline.serving.pg", "stop"]

    monkeypatch.setenv("ECOMM_PG_DSN", "postgresql://someone@db.example/ecomm")  # another Postgres: no data folder
    assert said().endswith(f"it was re-created or replaced{rebuild} if its gate passed), then rerun; nothing of {D3}"
                           " was published"), said()


def test_the_refusal_names_the_target_the_lake_s_dates_went_to_only_when_it_is_another(monkeypatch) -> None:
    """The run audit's target of the latest publish: the same database (re-created empty) is a plain rebuild; another
    one is named, with the command that reaches it, and the rebuild it offers takes --into-new-target."""
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    made_up = "hunter2"  # a made-up password, joined below: no DSN with a password stands in the repository
    monkeypatch.setenv("ECOMM_PG_DSN", f"postgresql://someone:{made_up}@db.example:5433/ecomm")
    here = {"server": "dsn", "host": "db.example", "port": 5433, "database": "ecomm"}
    same = lost_database.refusal("ecomm", "db.example", 5433, [D1, D2], D3, here)
    assert same == lost_database.refusal("ecomm", "db.example", 5433, [D1, D2], D3)
    assert "re-created or replaced; run `python -m pipeline rebuild-serving` (" in same, same
    moved = lost_database.refusal("ecomm", "db.example", 5433, [D1, D2], D3,
                                  {**here, "host": "old.example", "user": "etl"})
    assert (f"({D1}..{D2}), last published to the Postgres at old.example:5433 (database ecomm), not to this one: if"
            " that one is meant, check that one with `env -u ECOMM_PG_DSN -u PGHOST -u PGDATABASE -u PGSERVICE"
            " ECOMM_PG_DSN='host=old.example port=5433 dbname=ecomm user=etl' python -m pipeline.serving.pg psql -c"
            " 'select max(load_date) from audit.publish_log'`, then rerun with those settings; only if it was lost, run"
            " `python -m pipeline rebuild-serving --into-new-target` (") in moved, moved
    assert made_up not in moved
    embedded_there = {"server": "embedded", "data_folder": "/srv/pg data", "port": 5432, "database": "ecomm"}
    back = lost_database.refusal("ecomm", "db.example", 5433, [D1, D2], D3, embedded_there)
    assert ("check that one with `env -u ECOMM_PG_DSN -u PGHOST -u PGDATABASE -u PGSERVICE"
            " ECOMM_PG_DATA='/srv/pg data' ECOMM_PG_PORT=5432 ECOMM_PG_DATABASE=ecomm python -m pipeline.serving.pg"
            " psql -c") in back, back
    # (the DSN set here would win over the folder)


@pytest.mark.slow
def test_a_relative_ecomm_pg_data_run_from_another_folder_is_refused_saying_to_check_it_first(
        ops: Ops, tmp_path: Path) -> None:
    """A relative ECOMM_PG_DATA resolves against the current folder: run from another one (a cron job's $HOME), a new
    empty server started there and the guard refused the publish. Its line says first to check ECOMM_PG_DATA and the
    current folder, within the 300 characters a run summary shows even under a deep folder; it does so in every run
    from there, not only in the one that made the folder; and its stop command stops that server, not the one the
    shell's own settings name."""
    first = ops.luigi("DailyPipeline", "--date", "2025-12-14", "--local-scheduler")
    assert first.returncode == 0, first.stderr[-3000:]
    home = _deep_home(tmp_path)
    pgdata = home / "pgdata"
    env = {**ops.env, "ECOMM_PG_DATA": "pgdata", "ECOMM_PG_PORT": str(port := free_port()),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    lead = ("ServingDatabaseLost: the embedded Postgres's data folder is relative to the current folder: check"
            " ECOMM_PG_DATA and the current folder first; ")
    served = ops.server.data_dir.resolve()  # where the run audit says the date went
    meant = f"the embedded Postgres in {served} (port {ops.server.port}, database {ops.database})"
    reach = serving_target.reach({"server": "embedded", "data_folder": str(served), "port": ops.server.port,
                                  "database": ops.database})
    try:
        for run in ("the run that made the folder", "the next run, the server up"):
            refused = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline",
                                      "--date", "2025-12-15", "--local-scheduler"], cwd=home, env=env,
                                     capture_output=True, text=True, timeout=300, check=False)
            assert refused.returncode == 30, (run, refused.stderr[-3000:])
            (said,) = [line for line in refused.stderr.splitlines() if "ServingDatabaseLost: " in line]
            assert (f"{lead}database {ops.database} in {pgdata} (ECOMM_PG_DATA='pgdata') holds no published date, but"
                    f" the lake at {ops.lake} records 1 published date(s) (2025-12-14..2025-12-14), last published to"
                    f" {meant}, not to this one; if the dates were served from that one, stop this server"
                    f" (`ECOMM_PG_DATA={shlex.quote(str(pgdata))} python -m pipeline.serving.pg stop`; until then BI"
                    f" tools on port {port} reach this empty one) and check that one with `{reach}`, then rerun with"
                    " those settings; only if this is the folder meant (the old one was lost), run `python -m"
                    " pipeline rebuild-serving --into-new-target`") in said, (run, said)
            assert said.index("check ECOMM_PG_DATA") < said.index("rebuild-serving"), said
            (summary,) = [line for line in refused.stdout.splitlines() if "Publish: ServingDatabaseLost: " in line]
            assert f"Publish: {lead}" in summary, (run, summary)  # within the 300 characters it shows
            assert "what to do (serving database lost): if the message says to check `ECOMM_PG_DATA`" \
                in refused.stdout, refused.stdout[-3000:]
            assert ops.query("select count(*) from audit.publish_log") == [(1,)]  # the meant database, untouched

        # the command that reaches the server the date went to, pasted into a shell in the folder of the cron job
        shell = {**env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
        reached = subprocess.run(["bash", "-c", reach], cwd=home, env=shell, capture_output=True, text=True,
                                 timeout=120, check=False)
        assert reached.returncode == 0 and " 2025-12-14\n" in reached.stdout, reached.stdout + reached.stderr

        # rebuild-serving from there would fill the new, empty server: refused, both targets in its one line
        rebuilt = subprocess.run([sys.executable, "-m", "pipeline", "rebuild-serving"], cwd=home, env=env,
                                 capture_output=True, text=True, timeout=300, check=False)
        assert rebuilt.returncode == 3, rebuilt.stdout + rebuilt.stderr
        (line,) = rebuilt.stderr.strip().splitlines()
        assert line.startswith(f"rebuild-serving: the lake at {ops.lake} was last published to {meant}, but this"
                               f" rebuild would fill the embedded Postgres in {pgdata} (port {port}, database"
                               f" {ops.database}) (ECOMM_PG_DATA='pgdata', relative to the current folder;"), line
        assert "rerun with --into-new-target; to use that one, set `ECOMM_PG_DATA=" in line, line
        socket_dir = data_folder.postmaster(pgdata)["socket_dir"]  # a short folder of its own: the path is long
        with psycopg.connect(f"postgresql://postgres@/{ops.database}?host={socket_dir}&port={port}") as conn:
            assert conn.execute("select count(*) from audit.publish_log").fetchone()[0] == 0  # not filled
        into_new = subprocess.run([sys.executable, "-m", "pipeline", "rebuild-serving", "--into-new-target"],
                                  cwd=home, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert into_new.returncode == 0, into_new.stdout + into_new.stderr
        assert f"into the embedded Postgres in {pgdata} (port {port}" in into_new.stdout, into_new.stdout

        # the stop command as given, pasted into a shell in the checkout whose settings name the meant server
        command = said[said.index("stop this server (`") + 19:said.index("`; until then")]
        shell = {**ops.env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
        stopped = subprocess.run(["bash", "-c", command], cwd=REPO, env=shell, capture_output=True, text=True,
                                 timeout=120, check=False)
        assert stopped.stdout.strip() == "stopped", stopped.stderr
        assert not (pgdata / "postmaster.pid").exists()
        assert ops.query("select count(*) from audit.publish_log") == [(1,)]  # the meant server runs on
    finally:
        stop = {**env, "ECOMM_PG_DATA": str(pgdata)}
        subprocess.run([sys.executable, "-m", "pipeline.serving.pg", "stop"], cwd=REPO, env=stop,
                       capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_a_mistyped_database_name_is_refused_by_rebuild_serving_without_making_it_or_offering_to_stop_the_server(
        ops: Ops) -> None:
    """ECOMM_PG_DATABASE mistyped, the same embedded server: rebuild-serving refuses (exit 3, both targets named) before
    the database would be created, and gives no stop command: it would stop the server the real database runs on."""
    done = ops.luigi("DailyPipeline", "--date", "2025-12-14", "--local-scheduler")
    assert done.returncode == 0, done.stderr[-3000:]
    typo = f"{ops.database}_wrok"
    ops.extra_env["ECOMM_PG_DATABASE"] = typo
    refused = ops.pipeline("rebuild-serving")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    data_dir = ops.server.data_dir.resolve()
    assert line.startswith(f"rebuild-serving: the lake at {ops.lake} was last published to the embedded Postgres in"
                           f" {data_dir} (port {ops.server.port}, database {ops.database}), but this rebuild would"
                           f" fill the embedded Postgres in {data_dir} (port {ops.server.port}, database {typo})"
                           f" (ECOMM_PG_DATA="), line
    assert "stop" not in line, line
    with psycopg.connect(ops.server.dsn()) as conn:
        made = conn.execute("select datname from pg_database where datname = %s", [typo]).fetchall()
    assert made == []
    assert ops.query("select count(*) from audit.publish_log") == [(1,)]


@pytest.mark.slow
def test_a_dsn_target_is_recorded_without_its_password_and_a_rebuild_into_another_names_both(ops: Ops) -> None:
    """Through ECOMM_PG_DSN with a password: the run audit keeps the host, port and database the date went to and
    never the password (no lake file holds it); a rebuild into another database names both, and the settings that
    reach the first, without the password, until --into-new-target says the new one is meant."""
    secret = f"pw{uuid.uuid4().hex}"
    socket_dir, port = str(ops.server.data_dir), ops.server.port  # the session server's socket folder

    def dsn(database: str) -> str:
        with psycopg.connect(ops.server.dsn(), autocommit=True) as conn:
            if not conn.execute("select exists (select from pg_database where datname = %s)", [database]).fetchone()[0]:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
        return f"postgresql://postgres:{secret}@/{database}?host={socket_dir}&port={port}"

    ops.extra_env["ECOMM_PG_DSN"] = dsn(ops.database)
    done = ops.luigi("DailyPipeline", "--date", "2025-12-14", "--local-scheduler")
    assert done.returncode == 0, done.stderr[-3000:]
    holding = [path for path in ops.lake.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]
    assert holding == []
    (twin,) = ops.lake.glob("audit/pipeline_runs/load_date=2025-12-14/run_id=*/task_id=Publish_*/data.parquet")
    rows = lake.read_rows(str(twin))
    recorded = serving_target.decode(rows[-1]["serving_target"])
    assert recorded.pop("system").isdigit()  # the server's system identifier: one server under any host name
    assert recorded == {"server": "dsn", "host": socket_dir, "port": port, "database": ops.database, "user": "postgres"}
    assert not [value for row in rows for value in row.values() if secret in str(value)]

    other = f"{ops.database}_new"
    ops.extra_env["ECOMM_PG_DSN"] = dsn(other)
    refused = ops.pipeline("rebuild-serving")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert (f"rebuild-serving: the lake at {ops.lake} was last published to the Postgres at {socket_dir}:{port}"
            f" (database {ops.database}), but this rebuild would fill the Postgres at {socket_dir}:{port} (database"
            f" {other}): to rebuild into this one (the other was lost, or is being replaced), rerun with"
            f" --into-new-target; to use that one, set `ECOMM_PG_DSN='host={socket_dir} port={port}"
            f" dbname={ops.database} user=postgres'`") == line, line
    assert secret not in refused.stdout + refused.stderr
    rebuilt = ops.pipeline("rebuild-serving", "--into-new-target")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    with psycopg.connect(ops.server.dsn(other)) as conn:
        assert conn.execute("select load_date from audit.publish_log").fetchall() == [(dt.date(2025, 12, 14),)]
