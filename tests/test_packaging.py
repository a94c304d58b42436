"""Packaging: what the product depends on, and an installed wheel that runs a date from anywhere.

- `[project] dependencies` are exactly what pipeline/ imports (tests, devtools and the notebook's
  kernel live in uv dependency groups), and everything tests/ and devtools/ import is declared.
- Without a luigi.cfg of its own, a run takes the repository's luigi.cfg as its defaults.
- The wheel (`uv build --wheel`), installed into a fresh virtualenv with the locked runtime
  dependencies only, runs `luigi --module pipeline.tasks DailyPipeline` from a directory outside the
  repository: sql/, checks/ and luigi.cfg come from the package, not from a checkout.
"""
from __future__ import annotations

import ast
import configparser
import datetime as dt
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
import zipfile
from pathlib import Path

import psycopg
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipeline import resources
from tests.support.postgres import PG_ENV, ThrowawayPostgres

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
FIRST_PARTY = {"pipeline", "devtools", "tests"}
SEED_INCOMING = REPO / "tests" / "fixtures" / "seed-format" / "incoming"
SEED_DAY = "2025-12-15"


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(text).name) for text in requirements}


def runtime_dependencies() -> set[str]:
    return _names(PYPROJECT["project"]["dependencies"])


def group_dependencies(group: str) -> set[str]:
    """A dependency group's packages, with its `{include-group = ...}` entries expanded."""
    names: set[str] = set()
    for entry in PYPROJECT["dependency-groups"][group]:
        names |= group_dependencies(entry["include-group"]) if isinstance(entry, dict) else _names([entry])
    return names


def third_party_imports(folder: str) -> dict[str, set[str]]:
    """Top-level modules imported anywhere under `folder` (stdlib and first party left out) -> files."""
    found: dict[str, set[str]] = {}
    for path in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY and top != "__future__":
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def distributions(module: str) -> set[str]:
    """The installed distributions that provide a top-level module."""
    return {canonicalize_name(name) for name in importlib.metadata.packages_distributions().get(module, [])}


# ------------------------------------------------------------------------------------ dependencies
def test_runtime_dependencies_are_what_the_product_imports() -> None:
    runtime = runtime_dependencies()
    imports = third_party_imports("pipeline")
    undeclared = {module: sorted(files) for module, files in imports.items() if not distributions(module) & runtime}
    assert undeclared == {}, "pipeline/ imports these: declare them in [project] dependencies"
    provided = set().union(*(distributions(module) for module in imports))
    unused = runtime - provided - set(CONFIGURED)
    assert unused == set(), "pipeline/ never imports these: move them to a [dependency-groups] group"
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "luigi.cfg")
    for name, (section, option, value) in CONFIGURED.items():  # still needed by luigi.cfg, and declared
        assert cfg.get(section, option, fallback=None) == value and name in runtime, name


# runtime dependencies that no pipeline/ module imports, but that a luigi.cfg setting makes Luigi import
CONFIGURED = {"prometheus-client": ("scheduler", "metrics_collector", "prometheus")}  # luigid's /metrics


def test_tests_and_devtools_declare_what_they_import() -> None:
    declared = runtime_dependencies().union(*(group_dependencies(g) for g in PYPROJECT["dependency-groups"]))
    for folder in ("devtools", "tests"):
        imports = third_party_imports(folder)
        undeclared = {module: sorted(files) for module, files in imports.items() if not distributions(module) & declared}
        assert undeclared == {}, f"{folder}/ imports these: declare them in a [dependency-groups] group"


def test_a_checkout_installs_every_group_by_default() -> None:
    """`make test`, `make demo` and `make bench` run `uv run --frozen`, which installs the default groups."""
    assert set(PYPROJECT["tool"]["uv"]["default-groups"]) == set(PYPROJECT["dependency-groups"])


# --------------------------------------------------------------------- luigi.cfg outside the repo
def _settings_seen_from(cwd: Path) -> dict[str, str]:
    code = ("import luigi.configuration, luigi.retcodes, pipeline.tasks; c = luigi.configuration.get_config(); "
            "r = luigi.retcodes.retcode(); "
            "print(r.task_failed, r.already_running, c.get('RangeDaily', 'days_back'), c.get('worker', 'keep_alive'))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUIGI_")}
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    task_failed, already_running, days_back, keep_alive = result.stdout.split()
    return {"task_failed": task_failed, "already_running": already_running, "days_back": days_back,
            "keep_alive": keep_alive}


def test_without_a_luigi_cfg_a_run_takes_the_repository_one_as_defaults(tmp_path: Path) -> None:
    shipped = configparser.ConfigParser()
    shipped.read(resources.DEFAULT_CONFIG)
    assert _settings_seen_from(tmp_path) == {
        "task_failed": shipped["retcode"]["task_failed"], "already_running": shipped["retcode"]["already_running"],
        "days_back": shipped["RangeDaily"]["days_back"], "keep_alive": shipped["worker"]["keep_alive"]}


def test_a_luigi_cfg_of_its_own_wins_under_luigi_s_older_names_too(tmp_path: Path) -> None:
    """Luigi still reads [core] error-email, smtp_host, worker-keep-alive ... for [email] receiver, [smtp] host,
    [worker] keep_alive; the shipped defaults filled in under the new names must not hide them (failure e-mails
    stopped without a word)."""
    (tmp_path / "luigi.cfg").write_text("[core]\nerror-email = ops@example.com\nsmtp_host = mail.example.com\n"
                                        "worker-keep-alive = false\ndefault-scheduler-port = 19284\n")
    code = ("import luigi.interface, luigi.notifications, luigi.worker, pipeline.tasks; "
            "print(luigi.notifications.email().receiver, luigi.notifications.smtp().host, "
            "luigi.worker.worker().keep_alive, luigi.interface.core().scheduler_port)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUIGI_")}
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["ops@example.com", "mail.example.com", "False", "19284"]


def test_a_backfill_schedules_every_missing_date_days_back_reaches() -> None:
    """Luigi's RangeDaily requires at most `task_limit` missing dates (its default: 50) and leaves the rest unrun,
    exit 0: a 51-day backfill published 50 dates. The shipped settings schedule every date it accepts."""
    import luigi.tools.range

    from pipeline import tasks

    ranged = luigi.tools.range.RangeDaily(of=tasks.DailyPipeline, start=dt.date(2025, 1, 1))
    assert ranged.task_limit >= ranged.days_back >= 3650


def test_a_luigi_cfg_of_its_own_still_wins_option_by_option(tmp_path: Path) -> None:
    (tmp_path / "luigi.cfg").write_text("[retcode]\ntask_failed = 7\n")
    seen = _settings_seen_from(tmp_path)
    assert seen["task_failed"] == "7"
    shipped = configparser.ConfigParser()
    shipped.read(resources.DEFAULT_CONFIG)
    assert seen["already_running"] == shipped["retcode"]["already_running"], "options it does not set stay defaults"


# ----------------------------------------------------------------------------- the installed wheel
def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    assert Path(uv).is_file(), "uv not found: run `make setup` (it installs uv into .tools/)"
    return uv


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, **kwargs)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_the_installed_wheel_runs_a_date_from_outside_the_repository(tmp_path: Path,
                                                                     dsn_server: ThrowawayPostgres) -> None:
    uv = _uv()
    clean = {k: v for k, v in os.environ.items()
             if k not in PG_ENV and not k.startswith(("ECOMM_", "LUIGI_", "PYTHON", "VIRTUAL_ENV", "UV_"))}

    # the wheel: the product's code, its sql/ checks/ queries/ and luigi.cfg; runtime requirements only
    _run([uv, "build", "--wheel", "--offline", "--out-dir", str(tmp_path / "dist")], cwd=REPO, env=clean)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
        metadata = archive.read(next(f for f in files if f.endswith(".dist-info/METADATA"))).decode()
    assert not [f for f in files if f.startswith(("tests/", "devtools/"))]
    for name in ("sql/serving/001_schemas.sql", "checks/warehouse/fact_orders.yml",
                 "queries/daily_kpis.sql", "luigi.cfg"):
        assert f"pipeline/_resources/{name}" in files
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert _names(requires) == runtime_dependencies()

    # a fresh virtualenv: the locked runtime dependencies from the uv cache, then the wheel itself
    venv = tmp_path / "venv"
    _run([uv, "venv", "--offline", "--python", sys.executable, str(venv)], env=clean)
    _run([uv, "sync", "--offline", "--frozen", "--no-default-groups", "--no-install-project"], cwd=REPO,
         env={**clean, "UV_PROJECT_ENVIRONMENT": str(venv)})
    _run([uv, "pip", "install", "--offline", "--no-deps", "--python", str(venv / "bin" / "python"), str(wheel)],
         env=clean)
    check = subprocess.run([uv, "pip", "check", "--python", str(venv / "bin" / "python")], env=clean,
                           capture_output=True, text=True, timeout=120, check=False)
    problems = [line for line in check.stdout.splitlines() if line.startswith("The package")]
    # the one known conflict: soda-core-duckdb pins duckdb<1.1.0, overridden in [tool.uv] for a CVE
    assert all("`soda-core-duckdb` requires `duckdb<1.1.0`" in line for line in problems), check.stdout

    # a directory that is not the repository, with no luigi.cfg: nothing can resolve through the checkout
    cwd, incoming, lake = tmp_path / "elsewhere", tmp_path / "incoming", tmp_path / "lake"
    cwd.mkdir()
    shutil.copytree(SEED_INCOMING, incoming)
    python = str(venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import pipeline.resources as r; print(r.INSTALLED, r.ROOT)"], cwd=cwd,
                           env=clean, capture_output=True, text=True, timeout=120, check=False)
    assert probe.stdout.split() == ["True", str(venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
                                             / "site-packages" / "pipeline" / "_resources")], probe.stderr
    assert subprocess.run([python, "-c", "import pytest"], cwd=cwd, env=clean, capture_output=True,
                          timeout=120, check=False).returncode != 0, "the runtime environment has no test packages"

    dsn = dsn_server.create_database(f"wheel_{uuid.uuid4().hex[:8]}")
    env = {**clean, "ECOMM_PG_DSN": dsn, "ECOMM_DATA_DIR": str(incoming), "ECOMM_LAKE_DIR": str(lake),
           "PATH": f"{venv / 'bin'}{os.pathsep}{clean.get('PATH', '')}"}
    luigi = [str(venv / "bin" / "luigi"), "--module", "pipeline.tasks", "DailyPipeline", "--local-scheduler"]
    run = subprocess.run([*luigi, "--date", SEED_DAY], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-4000:]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select load_date::text from audit.publish_log").fetchall() == [(SEED_DAY,)]
        assert conn.execute("select count(*) from warehouse.fact_orders where load_date = %s",
                            [SEED_DAY]).fetchone()[0] > 0
    # a date without its files fails with the shipped luigi.cfg's [retcode] (Luigi's own default is 0)
    missing = subprocess.run([*luigi, "--date", "2025-12-20"], cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=600, check=False)
    shipped = configparser.ConfigParser()
    shipped.read(REPO / "luigi.cfg")
    assert missing.returncode == shipped.getint("retcode", "task_failed"), missing.stderr[-3000:]
    assert "SourceFileMissing" in missing.stderr
    assert list(cwd.iterdir()) == [], "a run writes only where ECOMM_* point"


# ------------------------------------------------------------------------------------ the image
def test_the_image_installs_the_product_only() -> None:
    """No Docker engine here: the Dockerfile is kept honest by reading it."""
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    copied = {source for line in dockerfile.splitlines() if line.startswith("COPY ") for source in line.split()[1:-1]}
    assert copied <= {"pyproject.toml", "uv.lock", "README.md", "luigi.cfg", "pipeline", "sql", "checks", "queries"}, copied
    syncs = [line for line in dockerfile.splitlines() if "uv sync" in line]
    assert syncs and all("--frozen" in line and "--no-default-groups" in line for line in syncs)
    assert "--no-editable" in syncs[-1], "the image runs the installed wheel, not the source tree"


def test_compose_sample_data_is_made_on_the_host() -> None:
    compose = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    assert "devtools" not in " ".join(line for line in compose.splitlines() if "docker compose" in line)
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "make sample-data" in compose and "\nsample-data: setup\n\t$(RUN) python -m devtools.generate " in makefile
