"""Two `luigi` processes on the same date with local schedulers: one publishes, the other finds it done."""
from __future__ import annotations

import datetime as dt
import glob
from collections import Counter

import pytest

from tests.support.ops import Ops, assert_published_once
from tests.support.processes import wait_for

DAY = dt.date(2025, 12, 8)


@pytest.mark.slow
def test_two_local_schedulers_on_one_date_publish_it_once(ops: Ops) -> None:
    ops.generate(DAY, 1, orders=1000, events=8000)
    single = ops.popen("DailyPipeline", "--date", str(DAY), "--local-scheduler")
    backfill = ops.popen("RangeDaily", "--of", "DailyPipeline", "--start", str(DAY),
                         "--stop", str(DAY + dt.timedelta(days=1)), "--workers", "2", "--local-scheduler")
    outcomes = [process.communicate(timeout=180) for process in (single, backfill)]
    assert [single.returncode, backfill.returncode] == [0, 0], [err[-3000:] for _, err in outcomes]
    assert all("published" in out for out, _ in outcomes)

    runs = ops.executions(DAY)
    assert len({r["run_id"] for r in runs}) == 2 and {r["status"] for r in runs} == {"done"}, [(r["task_id"], r["error_message"]) for r in runs if r["status"] != "done"]
    # each process builds what it found missing (partitions are replaced atomically with the same rows) ...
    assert max(Counter(r["task_id"] for r in runs).values()) <= 2
    # ... but only one publishes: the other waits for the date's lock and finds the date published
    publishes = [r for r in runs if r["task_family"] == "Publish"]
    assert sorted(r["rows_out"] > 0 for r in publishes) in ([True], [False, True])
    (run_id,) = ops.query("select run_id from audit.publish_log where load_date = %s", [DAY])[0]
    assert run_id == next(r["run_id"] for r in publishes if r["rows_out"] > 0)
    assert_published_once(ops, DAY)
    assert not glob.glob(str(ops.lake / "**" / "*.tmp-*"), recursive=True), "no temporary file left behind"


@pytest.mark.slow
@pytest.mark.parametrize("dates", [("DailyPipeline", "--date", str(DAY)),
                                   ("RangeDaily", "--of", "DailyPipeline", "--start", str(DAY),
                                    "--stop", str(DAY + dt.timedelta(days=1)))], ids=["date", "range"])
def test_the_same_command_twice_at_once_exits_10_already_running(ops: Ops, tmp_path, dates: tuple[str, ...]) -> None:
    ops.generate(DAY, 1, orders=1000, events=8000)
    locks = tmp_path / "locks"
    command = (*dates, "--local-scheduler", "--lock-pid-dir", str(locks))
    first = ops.popen(*command)
    try:
        wait_for(lambda: any(locks.glob("*.pid")), timeout=60, what="the first run's pid lock")
        second = ops.luigi(*command)
        assert first.poll() is None, "the first run is still going"
        assert second.returncode == 10, second.stderr[-3000:]
        # one line naming the run that holds the lock: no table of a date "not published" (it ran nothing)
        assert second.stdout.splitlines()[-1] == (
            f"Nothing ran: the same command is running on this machine (pid {first.pid}), and Luigi's pid lock"
            " lets one run at a time (exit 10): wait for it to end, or add --no-lock to run anyway"), second.stdout
        assert "Run summary" not in second.stdout and "not published" not in second.stdout
    finally:
        _, err = first.communicate(timeout=180)
    assert first.returncode == 0, err[-3000:]


def _holds_a_lock(pid: int) -> bool:
    """Whether a pid file of Luigi's lock, in any folder of the system's temporary one, names this process."""
    import tempfile
    from pathlib import Path

    for path in Path(tempfile.gettempdir()).glob("luigi*/*.pid"):
        try:
            if str(pid) in path.read_text().split():
                return True
        except OSError:
            continue
    return False


@pytest.mark.slow
def test_the_same_command_in_two_deployments_at_once_runs_in_both(ops: Ops, tmp_path) -> None:
    """Two deployments on one host (a shared install's cron line, two lakes and databases): Luigi's pid lock, keyed
    on the command line alone in one /tmp/luigi, refused the second as "already running" (exit 10, nothing ran)."""
    other = Ops(incoming=ops.incoming, lake=tmp_path / "other-lake", server=ops.server,
                database=f"{ops.database}_other", extra_env=ops.extra_env)
    ops.generate(DAY, 1, orders=1000, events=8000)
    command = ("DailyPipeline", "--date", str(DAY), "--local-scheduler")
    first = ops.popen(*command)
    try:
        wait_for(lambda: _holds_a_lock(first.pid), timeout=60, what="the first run's pid lock")
        second = other.luigi(*command)
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    finally:
        _, err = first.communicate(timeout=180)
    assert first.returncode == 0, err[-3000:]
    assert_published_once(ops, DAY)
    assert_published_once(other, DAY)
