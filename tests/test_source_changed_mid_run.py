"""A landed file that changes while its date's run is going fails the Publish with what changed and what to do.

Luigi checks a task's requirements again just before running it: the Publish's `SourcesUnchanged`, complete when
the run was scheduled, is not once a catalog snapshot covering the date was replaced during the run. That check
used to fail the Publish as `RuntimeError: Unfulfilled dependency at run time: SourcesUnchanged_...`, naming neither
the file nor the command; the Publish now checks its sources itself (`publish.check_sources_unchanged`).

A real `luigi` command line, held by the fault engine before the gate while the file changes, the session's
embedded Postgres.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO


@pytest.mark.slow
def test_a_catalog_file_replaced_during_the_run_names_it_and_its_command(ops: Ops, tmp_path: Path) -> None:
    faults = tmp_path / "faults"
    faults.mkdir()
    run = subprocess.Popen([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline", "--date",
                            str(SEED_DAY), "--local-scheduler"], cwd=REPO,
                           env={**ops.env, "ECOMM_FAULT": "task.start:QualityGate:pause", "ECOMM_FAULT_DIR": str(faults)},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (faults / "task.start.paused").exists():
            assert run.poll() is None, run.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the gate never started"
            time.sleep(0.05)
        # the upstream export replaces the week's products file while the date is being built
        products = ops.incoming / "products" / f"products_{SEED_DAY}.json"
        products.write_text(products.read_text() + "\n")
        (faults / "task.start.resume").write_text("")
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 30, err[-4000:]
    assert "Unfulfilled dependenc" not in out + err, (out + err)[-4000:]
    lines = out.splitlines()
    failure = next(line for line in lines if line.strip().startswith("Publish: "))
    assert failure.strip().startswith(f"Publish: SourceChanged: the products snapshot of {SEED_DAY}: {products}"
                                      " changed since it was landed"), out
    command = f"python -m pipeline restate --catalog products --date {SEED_DAY}"
    advice = next(line for line in lines if "what to do" in line)
    assert f"`{command}`" in advice, out
    assert ops.query("select count(*) from audit.publish_log") == [(0,)]

    # the command it names lands the new file and publishes the date
    restated = ops.pipeline(*shlex.split(command)[3:])
    assert restated.returncode == 0, (restated.stdout + restated.stderr)[-4000:]
    assert ops.query("select load_date from audit.publish_log") == [(SEED_DAY,)]
