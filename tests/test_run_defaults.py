"""The defaults a `luigi --module pipeline.tasks ...` run starts with: the machine's cores put to use.

Luigi's own default is one worker (a date's tasks one after another); DuckDB's threads were fixed at 2.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline import config, resources
from pipeline.lake import sqlrun

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


PROBE = '''
import luigi
from pipeline.lake import sqlrun


class Probe(luigi.Task):
    out = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(self.out)

    def run(self):
        with sqlrun.connect() as con:
            threads = con.execute("select current_setting('threads')").fetchone()[0]
        with self.output().open("w") as handle:
            handle.write(str(threads))
'''


def _threads_in_task_process(tmp_path: Path, workers: int) -> int:
    """DuckDB's threads in a task process of a real `luigi` command run with `--workers N`."""
    (tmp_path / "threads_probe.py").write_text(PROBE, encoding="utf-8")
    out = tmp_path / f"threads-{workers}.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUIGI_", "ECOMM_DUCKDB"))}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(resources.REPO_ROOT)])
    luigi_bin = str(Path(sys.executable).with_name("luigi"))
    result = subprocess.run([luigi_bin, "--module", "threads_probe", "Probe", "--out", str(out), "--local-scheduler",
                             "--workers", str(workers)], cwd=resources.REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(out.read_text(encoding="utf-8"))


def test_duckdb_threads_zero_shares_the_cores_among_the_workers(tmp_path: Path) -> None:
    """Two workers on two cores: one DuckDB thread per task, not two tasks of two threads each on two cores."""
    assert CORES >= 2, "this test needs a machine with at least two cores"
    assert _threads_in_task_process(tmp_path, 2) == CORES // 2
    assert _threads_in_task_process(tmp_path, 1) == CORES
