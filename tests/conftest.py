"""Shared test fixtures: an isolated lake and data folder per test, and a clean Luigi cache.

The helpers and fixtures the test files share live in tests/support/; the fixtures among them are
registered here once (`pytest_plugins`), so a test file never imports another test file.
"""
from __future__ import annotations

from pathlib import Path

import luigi
import pytest

# the helpers' own asserts report their values too (they are imported before any test collects them)
pytest.register_assert_rewrite("tests.support")

from tests.support.paths import SEED_INCOMING  # noqa: E402

pytest_plugins = [
    "tests.support.postgres",  # embedded_server, dsn_server, pg_target, fresh_db
    "tests.support.serving",  # serving_lake
    "tests.support.luigi_config",  # luigi_settings
    "tests.support.s3_server",  # s3_env, s3_lake
    "tests.support.ops",  # ops
    "tests.support.browser",  # chromium
    "tests.support.luigid",  # luigid
]


@pytest.fixture(autouse=True)
def _isolated_luigi():
    """Luigi caches task instances per process; tests must not see each other's."""
    luigi.task_register.Register.clear_instance_cache()
    yield
    luigi.task_register.Register.clear_instance_cache()


@pytest.fixture
def lake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty lake root, set as ECOMM_LAKE_DIR for the test."""
    root = tmp_path / "lake"
    root.mkdir()
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(root))
    return root


@pytest.fixture
def incoming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty incoming-files root, set as ECOMM_DATA_DIR for the test."""
    root = tmp_path / "incoming"
    root.mkdir()
    monkeypatch.setenv("ECOMM_DATA_DIR", str(root))
    monkeypatch.delenv("ECOMM_PRODUCTS_URL", raising=False)
    monkeypatch.delenv("ECOMM_USERS_URL", raising=False)
    return root


@pytest.fixture
def seed_incoming(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seed system's own two days of files, as ECOMM_DATA_DIR."""
    monkeypatch.setenv("ECOMM_DATA_DIR", str(SEED_INCOMING))
    return SEED_INCOMING
