"""The defaults a `luigi --module pipeline.tasks ...` run starts with: the machine's cores put to use.

Luigi's own default is one worker (a date's tasks one after another); DuckDB's threads were fixed at 2.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline import config, resources
from pipeline.transform import sqlrun

CORES = len(os.sched_getaffinity(0))


def _workers_seen(extra_config: Path | None = None) -> int:
    code = "import luigi.interface, pipeline.tasks; print(luigi.interface.core().workers)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUIGI_")}
    if extra_config is not None:
        env["LUIGI_CONFIG_PATH"] = str(extra_config)
    result = subprocess.run([sys.executable, "-c", code], cwd=resources.REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.split()[-1])


def test_the_daily_command_runs_as_many_workers_as_the_machine_has_cores_at_most_two() -> None:
    assert CORES >= 2, "this test needs a machine with at least two cores"
    assert _workers_seen() == min(CORES, config.MAX_DEFAULT_WORKERS)


def test_a_configured_number_of_workers_wins(tmp_path: Path) -> None:
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text("[core]\nworkers = 1\n", encoding="utf-8")
    assert _workers_seen(cfg) == 1


def test_duckdb_threads_zero_means_every_core(luigi_settings) -> None:  # noqa: ANN001 - fixture
    luigi_settings("duckdb", threads=0)
    with sqlrun.connect() as con:
        assert con.execute("select current_setting('threads')").fetchone()[0] == CORES
    luigi_settings("duckdb", threads=1)
    with sqlrun.connect() as con:
        assert con.execute("select current_setting('threads')").fetchone()[0] == 1
