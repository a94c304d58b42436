"""docker-compose.yml, .env.example, the Makefile and docs/operations.md agree with luigi.cfg.

No Docker engine runs here, so the compose file is kept honest by reading it: services, ports,
environment names and commands must match what the pipeline and its configuration expect.
"""
from __future__ import annotations

import configparser
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.support.paths import REPO

CFG = configparser.ConfigParser()
CFG.read(REPO / "luigi.cfg")
PORT = CFG.getint("core", "scheduler_port")
COMPOSE: dict[str, Any] = YAML(typ="safe").load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?:[:?-][^}]*)?\}")


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_services_and_images() -> None:
    assert set(SERVICES) == {"postgres", "migrate", "luigid", "worker", "pgadmin"}
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert SERVICES["luigid"]["build"] == SERVICES["worker"]["build"] == SERVICES["migrate"]["build"] == "."
    assert SERVICES["pgadmin"]["profiles"] == ["admin"], "pgAdmin is optional"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "uv sync --frozen" in dockerfile and "uv.lock" in dockerfile
    python = re.search(r"^FROM python:(\d+\.\d+)", dockerfile, re.M).group(1)
    assert python >= re.search(r'requires-python = ">=(\d+\.\d+)"', (REPO / "pyproject.toml").read_text()).group(1)


def test_every_port_is_published_on_loopback_only() -> None:
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} beyond loopback"
    assert SERVICES["luigid"]["ports"] == [f"127.0.0.1:{PORT}:{PORT}"]


def test_luigid_and_the_worker_agree_with_luigi_cfg() -> None:
    luigid = SERVICES["luigid"]["command"]
    assert luigid[0] == "luigid" and _option(luigid, "--port") == str(PORT)
    assert _option(luigid, "--state-path").startswith("/state/") and "luigid:/state" in SERVICES["luigid"]["volumes"]
    worker = SERVICES["worker"]["command"]
    assert worker[:6] == ["luigi", "--module", "pipeline.tasks", "RangeDaily", "--of", "DailyPipeline"]
    assert "--local-scheduler" not in worker, "the worker goes through luigid"
    assert _option(worker, "--scheduler-host") == "luigid" and _option(worker, "--scheduler-port") == str(PORT)
    assert _option(worker, "--workers") == "2"
    assert {"migrate", "luigid"} <= set(SERVICES["worker"]["depends_on"])
    assert SERVICES["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"

    from pipeline import tasks
    from pipeline.tasks.base import PipelineTask

    assert tasks.RangeDaily.__name__ == "RangeDaily" and issubclass(tasks.DailyPipeline, PipelineTask)


def test_the_worker_environment_is_what_the_pipeline_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import config
    from pipeline.serving import pg

    env = SERVICES["worker"]["environment"]
    assert env["PGHOST"] == "postgres" and env["PGHOST"] in SERVICES
    for name in list(pg.LIBPQ_VARS) + [pg.ENV_DSN, "ECOMM_PG_DATA", "ECOMM_PG_PORT"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    assert pg.dsn() == "", "PGHOST set: libpq takes the connection from the PG* environment"
    assert config.data_dir() == env["ECOMM_DATA_DIR"] and config.lake_dir() == env["ECOMM_LAKE_DIR"]
    assert env["PGSSLMODE"] in {"disable", "require", "verify-ca", "verify-full"}
    volumes = SERVICES["worker"]["volumes"]
    assert any(v.endswith(":" + str(Path(env["ECOMM_LAKE_DIR"]))) for v in volumes)
    assert any(str(Path(env["ECOMM_DATA_DIR"])).startswith(v.split(":")[1]) for v in volumes)


def test_credentials_come_from_the_env_file() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    used = set(INTERPOLATION.findall(text))
    assert used == set(ENV_EXAMPLE), "every ${VAR} has a placeholder in .env.example, and no placeholder is stale"
    for service in SERVICES.values():
        for name, value in (service.get("environment") or {}).items():
            if "PASSWORD" in name:
                assert INTERPOLATION.fullmatch(str(value)), f"{name} is written into the compose file"
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", ENV_EXAMPLE["BACKFILL_START"])


def test_make_luigid_matches_luigi_cfg() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\nluigid:", 1)[1].split("\n\n", 1)[0]
    command = shlex.split(recipe.strip().splitlines()[-1])
    assert _option(command, "--address") == CFG.get("core", "scheduler_host") == "127.0.0.1"
    assert _option(command, "--port") == str(PORT)
    assert _option(command, "--state-path") == CFG.get("scheduler", "state_path")
    assert re.search(rf"`make luigid`.*127\.0\.0\.1:{PORT}", (REPO / "README.md").read_text())
    assert re.search(rf"make luigid .*127\.0\.0\.1:{PORT}", (REPO / "docs" / "operations.md").read_text())


# ------------------------------------------------------------------------- docs/operations.md
def _section(text: str, marker: str) -> str:
    match = re.search(rf"<!-- ops:{marker} -->(.*?)<!-- /ops:{marker} -->", text, re.S)
    assert match, f"docs/operations.md lacks the <!-- ops:{marker} --> table"
    return match.group(1)


def _rows(table: str) -> list[list[str]]:
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in table.strip().splitlines() if line.strip().startswith("|")]
    return [row for row in rows[1:] if not set("".join(row)) <= set("-: ")]


def check_exit_codes(readme: str) -> None:
    """Every [retcode] exit code, and 0, 1 and 2, is documented with the value luigi.cfg gives it."""
    documented = {}
    for row in _rows(_section(readme, "exit-codes")):
        code = re.match(r"`?(\d+)`?", row[0])
        assert code, row
        keys = re.findall(r"`([a-z_]+)`", row[0] + " " + row[1])
        documented[int(code.group(1))] = keys
    for key, value in CFG["retcode"].items():
        assert key in documented.get(int(value), []), f"exit code {value} ({key}) is not documented as such"
    assert {0, 1, 2} <= set(documented)


def check_compose_services(readme: str) -> None:
    """The service table names every compose service and its host port."""
    rows = {re.sub(r"[`*]", "", row[0]): " ".join(row[1:]) for row in _rows(_section(readme, "compose-services"))}
    assert set(rows) == set(SERVICES)
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            host = mapping.rsplit(":", 1)[0]
            assert host in rows[name], f"{name}: {host} not in the docs/operations.md row {rows[name]!r}"


def check_settings(readme: str) -> None:
    """Each `[section] option` the Operations section quotes has the value luigi.cfg gives it."""
    rows = _rows(_section(readme, "settings"))
    assert rows
    for row in rows:
        setting = re.fullmatch(r"`\[(\w+)\] (\w+)`", row[0])
        assert setting, row
        section, option = setting.groups()
        assert re.sub(r"`", "", row[1]) == CFG.get(section, option), f"[{section}] {option}"


def check_runbook(readme: str) -> None:
    """The runbook table is pipeline/tasks/runbook.py's (the explanations of failed tasks say the same)."""
    from pipeline.tasks import runbook

    assert _section(readme, "runbook").strip() == runbook.markdown_table()
    kinds = {r.kind for r in runbook.REMEDIES}
    assert {"missing file", "changed source file", "gate blocked", "Postgres down", "disabled in luigid",
            "disk full", "not ready"} <= kinds
    codes = {int(v) for v in CFG["retcode"].values()}
    assert all(int(r.exit_code) in codes for r in runbook.REMEDIES)


@pytest.mark.parametrize("check", [check_exit_codes, check_compose_services, check_settings, check_runbook])
def test_the_operations_page_agrees(check) -> None:
    check((REPO / "docs" / "operations.md").read_text())


# ------------------------------------------------- the compose logins, on a real password-checking Postgres
def _env(service: str, port: int) -> dict[str, str]:
    """A compose service's environment with .env.example's values, pointed at the test server."""
    def fill(value: Any) -> str:
        return INTERPOLATION.sub(lambda m: ENV_EXAMPLE[m.group(1)], str(value))

    env = {name: fill(value) for name, value in (SERVICES[service].get("environment") or {}).items()}
    if "PGHOST" in env:
        env.update(PGHOST="127.0.0.1", PGPORT=str(port))
    return env


@pytest.fixture
def compose_postgres(tmp_path: Path) -> Iterator[int]:
    """A server as the postgres image makes one: POSTGRES_USER with its password, password auth over TCP,
    POSTGRES_DB, and docker/postgres-initdb/ run by psql as the entrypoint runs it. Yields its port."""
    import os
    import shutil
    import subprocess
    import tempfile

    from pipeline.serving import embedded
    from tests.support.processes import free_port

    pgserver = embedded.pgserver_module()
    root = Path(tempfile.mkdtemp(prefix="ecomm-cmp-"))
    data, port, user = root / "data", free_port(), None
    data.mkdir(mode=0o700)
    pwfile = root / "pw"
    pwfile.write_text(ENV_EXAMPLE["POSTGRES_PASSWORD"] + "\n")
    if os.geteuid() == 0:
        import pwd

        from pgserver.utils import ensure_prefix_permissions

        user = embedded.SYSTEM_USER
        entry = pwd.getpwnam(user)
        ensure_prefix_permissions(data)
        root.chmod(0o755)
        for path in (data, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    try:
        pgserver.initdb(["--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C",
                         "-U", ENV_EXAMPLE["POSTGRES_USER"], f"--pwfile={pwfile}"], pgdata=data, user=user)
        pgserver.pg_ctl(["-w", "-l", str(data / "server.log"), "-o", f"-h 127.0.0.1 -p {port} -k {data}", "start"],
                        pgdata=data, user=user, timeout=60)
        admin = {"PGHOST": str(data), "PGPORT": str(port), "PGUSER": ENV_EXAMPLE["POSTGRES_USER"]}
        subprocess.run([str(embedded.binary("createdb")), ENV_EXAMPLE["POSTGRES_DB"]], env={**os.environ, **admin},
                       check=True, timeout=60)
        init_env = {**os.environ, **admin, **{k: v for k, v in _env("postgres", port).items() if k.endswith("PASSWORD")}}
        for script in sorted((REPO / "docker" / "postgres-initdb").glob("*.sql")):
            # docker-entrypoint.sh: docker_process_sql -f <file>
            subprocess.run([str(embedded.binary("psql")), "-v", "ON_ERROR_STOP=1", "--username",
                            ENV_EXAMPLE["POSTGRES_USER"], "--no-password", "--no-psqlrc", "--dbname",
                            ENV_EXAMPLE["POSTGRES_DB"], "-f", str(script)], env=init_env, check=True, timeout=60)
        yield port
    finally:
        pgserver.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=data, user=user, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_each_service_logs_in_with_its_own_least_privileged_login(compose_postgres: int, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import psycopg

    from tests.support.ops import SEED_DAY, copy_seed
    from tests.support.postgres import PG_ENV

    port = compose_postgres
    base = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    copy_seed(tmp_path / "incoming")
    paths = {"ECOMM_DATA_DIR": str(tmp_path / "incoming"), "ECOMM_LAKE_DIR": str(tmp_path / "lake")}

    migrate = SERVICES["migrate"]["command"]
    done = subprocess.run([sys.executable if migrate[0] == "python" else migrate[0], *migrate[1:]], cwd=REPO,
                          env={**base, **_env("migrate", port)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    worker = _env("worker", port)
    assert worker["PGUSER"] == "ecomm_pipeline" and worker["PGPASSWORD"] == ENV_EXAMPLE["ECOMM_PIPELINE_PASSWORD"]
    run = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline",
                          "--date", str(SEED_DAY), "--local-scheduler"], cwd=REPO,
                         env={**base, **worker, **paths}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]

    def login(role: str, password: str) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=port, dbname=ENV_EXAMPLE["POSTGRES_DB"], user=role,
                               password=password, connect_timeout=10)

    with login("bi_reader", ENV_EXAMPLE["BI_READER_PASSWORD"]) as bi:  # what a BI tool connects with
        assert bi.execute("select count(*) from warehouse.fact_orders").fetchone() == (20,)
        bi.rollback()
        bi.execute("set transaction read write")  # its sessions start read-only; privileges refuse all the same
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bi.execute("delete from warehouse.fact_orders_all")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        login("bi_reader", "wrong")
    with login("ecomm_pipeline", ENV_EXAMPLE["ECOMM_PIPELINE_PASSWORD"]) as worker_login:
        flags = worker_login.execute("select rolsuper, rolcreaterole, rolcreatedb from pg_roles"
                                     " where rolname = current_user").fetchone()
        assert flags == (False, False, False)
        assert worker_login.execute("select pg_has_role('ecomm_writer', 'member'),"
                                    " pg_has_role('ecomm_reader', 'member')").fetchone() == (True, False)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            worker_login.execute("create schema mine")
    assert "PG" not in " ".join(SERVICES["luigid"].get("environment") or {}), "luigid has no database access"


def test_luigid_keeps_a_disabled_task_listed_while_it_is_disabled() -> None:
    """luigid forgets a task no worker waits for after [scheduler] remove_delay (Luigi's default: 600 s), a disabled
    one too: 11 minutes after a cron run failed, luigid listed nothing, although it refused the task for an hour."""
    assert CFG.getint("scheduler", "remove_delay") >= CFG.getint("scheduler", "disable_persist")
