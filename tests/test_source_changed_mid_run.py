"""A landed file that changes while its date's run is going fails the Publish with what changed and what to do.

Luigi checks a task's requirements again just before running it: the Publish's `SourcesUnchanged`, or a staging
task's land task, complete when the run was scheduled, is not once a file it landed was replaced during the run.
That check used to fail the task as `RuntimeError: Unfulfilled dependency at run time: ...`, naming neither the
file nor the command; such a requirement now counts as complete in the requiring task's process
(`land.checked_by_another_task`: what it reads is the landed partition), and the Publish checks the sources itself
(`publish.check_sources_unchanged`).

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


CASES = {  # where the run waits while the file changes -> the file, the Publish's words, the command they name
    "catalog, before the gate": ("task.start:QualityGate", "products/products_{d}.json",
                                 "SourceChanged: the products snapshot of {d}: {path} changed since it was landed",
                                 "python -m pipeline restate --catalog products --date {d}"),
    # between the landing and the staging: Luigi's check of the staging's requirement saw the change
    "catalog, before its staging": ("task.success:LandProducts", "products/products_{d}.json",
                                    "SourceChanged: the products snapshot of {d}: {path} changed since it was landed",
                                    "python -m pipeline restate --catalog products --date {d}"),
    # the second: a run of the date lands the day before too (its gate compares the two), earlier with one worker
    "daily file, before its staging": ("task.success:LandEvents:pause@2", "events/{d}/events.csv",
                                       "SourceChanged: events for {d}: ",
                                       "python -m pipeline restate --date {d}"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=CASES)
def test_a_file_replaced_during_the_run_is_named_by_the_publish_with_its_command(
        ops: Ops, tmp_path: Path, case: str) -> None:
    point, name, said, command = CASES[case]
    changed = ops.incoming / name.format(d=SEED_DAY)
    said, command = said.format(d=SEED_DAY, path=changed), command.format(d=SEED_DAY)
    faults = tmp_path / "faults"
    faults.mkdir()
    run = subprocess.Popen([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline", "--date",
                            str(SEED_DAY), "--local-scheduler", "--workers", "1"], cwd=REPO,
                           env={**ops.env, "ECOMM_FAULT": point if "pause" in point else f"{point}:pause",
                                "ECOMM_FAULT_DIR": str(faults)},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (faults / f"{point.split(':')[0]}.paused").exists():
            assert run.poll() is None, run.communicate()[1][-3000:]
            assert time.monotonic() < deadline, f"{point} never came"
            time.sleep(0.05)
        # the upstream export rewrites the file while the date is being built
        changed.write_text(changed.read_text() + "\n")
        (faults / f"{point.split(':')[0]}.resume").write_text("")
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 30, (out + err)[-6000:]
    assert "Unfulfilled dependenc" not in out + err, (out + err)[-4000:]
    lines = out.splitlines()
    failure = next(line for line in lines if line.strip().startswith("Publish: "))
    assert failure.strip().startswith(f"Publish: {said}"), out
    advice = next(line for line in lines if "what to do" in line)
    assert f"`{command}`" in advice, out
    assert ops.query("select count(*) from audit.publish_log") == [(0,)]

    # the command it names lands the new file and publishes the date
    restated = ops.pipeline(*shlex.split(command)[3:])
    assert restated.returncode == 0, (restated.stdout + restated.stderr)[-4000:]
    assert ops.query("select load_date from audit.publish_log") == [(SEED_DAY,)]
