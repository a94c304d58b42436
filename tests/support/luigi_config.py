"""The `luigi_settings` fixture: luigi.cfg values for one test, restored after it; `run_with_settings`: the
daily command with an operator's configuration file."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import luigi
import pytest

from tests.support.paths import REPO, SEED_INCOMING
from tests.support.postgres import PG_ENV
from tests.support.processes import free_port


@pytest.fixture
def luigi_settings() -> Iterator[Callable[..., None]]:
    """`luigi_settings("publish", lock_timeout="200ms", ...)` sets luigi.cfg values for one test."""
    config = luigi.configuration.get_config()
    undo: list[tuple[str, str, str | None]] = []

    def set_values(section: str, **values: Any) -> None:
        if not config.has_section(section):
            config.add_section(section)
        for key, value in values.items():
            undo.append((section, key, config.get(section, key) if config.has_option(section, key) else None))
            config.set(section, key, str(value))
        luigi.task_register.Register.clear_instance_cache()  # luigi.Config objects are cached instances

    yield set_values
    for section, key, old in reversed(undo):
        if old is None:
            config.remove_option(section, key)
        else:
            config.set(section, key, old)
    luigi.task_register.Register.clear_instance_cache()


def run_with_settings(tmp_path: Path, settings: str, day: dt.date) -> subprocess.CompletedProcess:
    """`luigi ... DailyPipeline --date DAY --local-scheduler` with `settings` in the file LUIGI_CONFIG_PATH names
    (an operator's), the seed files as input, a fresh lake and a Postgres nobody listens for: what the run says of
    a setting before any task runs."""
    config = tmp_path / "operator.cfg"
    config.write_text(settings)
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    env.update(LUIGI_CONFIG_PATH=str(config), ECOMM_DATA_DIR=str(SEED_INCOMING), ECOMM_LAKE_DIR=str(tmp_path / "lake"),
               ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    return subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline", "--date",
                           str(day), "--local-scheduler"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def refused_before_any_work(tmp_path: Path, settings: str, day: dt.date, said: str) -> tuple[list[str], str]:
    """`run_with_settings`, refused as a setting is (exit 35, no traceback, no lake made): the lines of its stderr
    that hold `said`, and the whole stderr."""
    result = run_with_settings(tmp_path, settings, day)
    assert result.returncode == 35, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "lake").exists(), "nothing ran"
    return [line for line in result.stderr.splitlines() if said in line], result.stderr
