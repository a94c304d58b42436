"""docker-compose.yml, .env.example, the Makefile and docs/operations.md agree with luigi.cfg.

No Docker engine runs here, so the compose file is kept honest by reading it: services, ports,
environment names and commands must match what the pipeline and its configuration expect.
"""
from __future__ import annotations

import configparser
import re
import shlex
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
    assert set(SERVICES) == {"postgres", "luigid", "worker", "pgadmin"}
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert SERVICES["luigid"]["build"] == SERVICES["worker"]["build"] == "."
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
    assert {"postgres", "luigid"} <= set(SERVICES["worker"]["depends_on"])

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


@pytest.mark.parametrize("check", [check_exit_codes, check_compose_services, check_settings])
def test_the_operations_page_agrees(check) -> None:
    check((REPO / "docs" / "operations.md").read_text())
