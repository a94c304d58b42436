"""Where the lake's dates were last published (pipeline.serving.serving_target): the latest finished publish of the run
audit's lake twin, a rebuild's record included; the commands the lost-database guard gives to reach it, run as typed.

Synthetic run audit twins in a temporary lake; the session's embedded Postgres for the commands.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pyarrow as pa

from pipeline import lake
from pipeline.serving import lost_database, serving_target
from pipeline.tasks import run_audit, run_audit_files
from tests.support.ops import Ops
from tests.support.postgres import PG_ENV

D1, D2, D3 = (dt.date(2025, 12, 1) + dt.timedelta(days=i) for i in range(3))
A = {"server": "embedded", "data_folder": "/srv/a", "port": 5432, "database": "ecomm"}
B = {"server": "dsn", "host": "db.example", "port": 5433, "database": "ecomm", "user": "etl"}


def _twin(day: dt.date, run: str, ended: dt.datetime, target: dict | None, family: str = "Publish") -> None:
    task = f"{family}_{day:%Y_%m_%d}_0123456789" if family == "Publish" else family
    row = {"run_id": run, "load_date": day, "task_id": task, "task_family": family, "attempt": 1, "status": "done",
           "started_at": ended, "ended_at": ended, "in_postgres": True,
           "serving_target": serving_target.encode(target) if target else None}
    lake.write_table(run_audit.twin_path(day, run, task), pa.Table.from_pylist([row], schema=run_audit.SCHEMA))


def _at(hour: int) -> dt.datetime:
    return dt.datetime(2025, 12, 5, hour)


def test_the_latest_finished_publish_names_the_target_whatever_the_dates_order(monkeypatch, tmp_path: Path) -> None:
    """Targets A then B, B republishing earlier dates (its publishes end later than A's of later dates): B. A later
    publish that recorded no target (a host of an older version) makes it unknown, not an older one."""
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / "lake"))
    _twin(D1, "run_a1", _at(1), A)
    _twin(D3, "run_a3", _at(2), A)
    assert serving_target.lake_published() == serving_target.Published([D1, D3], A)
    _twin(D1, "run_b1", _at(3), B)  # republished into B: the earliest date, ended the latest
    _twin(D2, "run_b2", _at(4), B)
    assert serving_target.lake_published() == serving_target.Published([D1, D2, D3], B)
    assert serving_target.lake_published("run_b2").target == B  # the run asking is left out
    _twin(D1, "run_old", _at(5), None)
    assert serving_target.lake_published() == serving_target.Published([D1, D2, D3], None)


def test_a_rebuild_s_record_names_its_target_and_is_no_task_execution(monkeypatch, tmp_path: Path) -> None:
    """rebuild-serving records each date it published with its target (run_audit_files.REBUILT): the latest publish,
    though no Publish task's; the run audit's executions (summary, runtime, Postgres copy) do not list it."""
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / "lake"))
    _twin(D2, "run_a2", _at(1), A)
    _twin(D1, "rebuild_x", _at(2), B, family=run_audit_files.REBUILT)
    assert serving_target.lake_published() == serving_target.Published([D2], B)
    assert run_audit.executions(D1) == [] and len(run_audit.executions(D2)) == 1


def test_an_embedded_server_restarted_on_another_port_is_the_same_target(monkeypatch) -> None:
    """The data folder holds the data: the same folder and database on another port is a re-created database (no
    other target, no --into-new-target); another database in the same folder is another target, and the refusal
    then does not say to stop this server (it serves that one too)."""
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ECOMM_PG_DATA", A["data_folder"])
    here = serving_target.current("ecomm", "/tmp/sock", 6543)
    assert serving_target.same(A, here)
    said = lost_database.refusal("ecomm", "/tmp/sock", 6543, [D1, D2], D3, A)
    assert "not to this one" not in said and "--into-new-target" not in said, said
    other = lost_database.refusal("ecomm_new", "/tmp/sock", 6543, [D1, D2], D3, A)
    assert "database ecomm), not to this one" in other and "--into-new-target" in other, other
    assert "stop this server" not in other and "pipeline.serving.pg stop" not in other, other


def _shell(env: dict[str, str], command: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    return subprocess.run(["bash", "-c", command], env={**env, "PATH": path}, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_commands_that_reach_a_target_connect_to_its_database_as_typed(ops: Ops) -> None:
    """The guard's `check that one with ...` command, pasted into a shell whose PGSERVICE and ECOMM_PG_DSN are set
    (they would win over the settings it gives): it connects to that database and says its latest date. The DSN's
    carries its user (no password): without it libpq would log in as the shell's user."""
    migrated = ops.pipeline("migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    folder = str(ops.server.data_dir.resolve())
    embedded = {"server": "embedded", "data_folder": folder, "port": ops.server.port, "database": ops.database}
    socket_dir = str(ops.server.data_dir)
    dsn = {"server": "dsn", "host": socket_dir, "port": ops.server.port, "database": ops.database,
           "user": "postgres"}
    shell = {**ops.env, "PGSERVICE": "", "ECOMM_PG_DSN": f"postgresql://postgres@/nowhere?host={socket_dir}"}
    for target in (embedded, dsn):
        command = serving_target.reach(target)
        reached = _shell(shell, command)
        assert reached.returncode == 0 and "(1 row)" in reached.stdout, (command, reached.stdout + reached.stderr)
    assert "user=postgres" in serving_target.reach(dsn)


def test_one_server_under_another_host_name_is_the_same_target(ops: Ops, monkeypatch) -> None:
    """Cron through the socket folder, an operator through 127.0.0.1: one server (its system identifier), so the same
    target; another database on it is another one."""
    migrated = ops.pipeline("migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    monkeypatch.setenv("ECOMM_PG_DSN", ops.dsn)  # another Postgres, as far as the pipeline knows

    def target(host: str, database: str) -> dict:
        with psycopg.connect(host=host, port=ops.server.port, dbname=database, user="postgres") as conn:
            return serving_target.of_connection(conn)

    by_socket, by_tcp = target(str(ops.server.data_dir), ops.database), target("127.0.0.1", ops.database)
    assert by_socket["host"] != by_tcp["host"] and by_socket["system"] == by_tcp["system"]
    assert serving_target.same(by_socket, by_tcp)
    assert not serving_target.same(by_socket, target("127.0.0.1", "postgres"))
    said = lost_database.refusal(ops.database, "127.0.0.1", ops.server.port, [D1, D2], D3, by_socket, by_tcp)
    assert "not to this one" not in said and "--into-new-target" not in said, said
