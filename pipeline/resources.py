"""Where the product's files that are not Python live: sql/, checks/, queries/ and the default luigi.cfg.

They sit at the top of the repository (the product's layout: a model's SQL, its checks and the
analytics queries are found by name, beside pipeline/). An installed wheel carries copies of them
inside the package, in pipeline/_resources/ (pyproject.toml [tool.hatch.build.targets.wheel.force-include]),
because an installed package has no repository around it. Every reader takes its folder from here,
so a checkout and an installed wheel behave the same.

Files the pipeline writes with a relative default (the embedded server's `.pgdata`, `reports/`)
go under `work_dir()`: the checkout when running from one, else the current directory.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Only a built wheel has this folder; a checkout (and its editable install) never does.
SHIPPED_DIR = PACKAGE_DIR / "_resources"
INSTALLED = SHIPPED_DIR.is_dir()
# The repository checkout this code runs from (meaningless for an installed wheel: see INSTALLED).
REPO_ROOT = PACKAGE_DIR.parent

ROOT = SHIPPED_DIR if INSTALLED else REPO_ROOT
SQL_DIR = ROOT / "sql"  # DuckDB models (staging/, warehouse/, marts/) and the serving DDL (serving/)
CHECKS_DIR = ROOT / "checks"  # SodaCL files, checks/<layer>/<table>.yml
QUERIES_DIR = ROOT / "queries"  # analytics queries for users, one per file
DEFAULT_CONFIG = ROOT / "luigi.cfg"  # the settings a run without a luigi.cfg of its own gets


def resolve(path: str | Path) -> Path:
    """A product path from configuration: absolute as given, relative to ROOT (checkout or package)."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else ROOT / candidate


def work_dir() -> Path:
    """The base of relative paths the pipeline writes to: the checkout, or (installed) the current directory."""
    return Path.cwd() if INSTALLED else REPO_ROOT
