"""[RangeDaily] settings that made a backfill run fewer dates than its range, or none, and exit 0 as if it were done.

Luigi's RangeDaily starts a range `days_back` days before now, whatever `--start` says, and schedules the
`task_limit` oldest missing dates of it: the others were never scheduled, and the command exited 0.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO, SEED_INCOMING
from tests.support.postgres import PG_ENV
from tests.support.processes import free_port

START, STOP = dt.date(2025, 12, 12), dt.date(2025, 12, 14)  # two dates
RANGE = ["RangeDaily", "--of", "DailyPipeline", "--start", str(START), "--stop", str(STOP), "--local-scheduler"]


def _backfill(tmp_path: Path, settings: str, *options: str, dsn: str = "") -> subprocess.CompletedProcess:
    """`luigi ... RangeDaily` over START..STOP with `settings` in the file LUIGI_CONFIG_PATH names (an operator's)."""
    config = tmp_path / "operator.cfg"
    config.write_text(settings)
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    env.update(LUIGI_CONFIG_PATH=str(config), ECOMM_DATA_DIR=str(SEED_INCOMING), ECOMM_LAKE_DIR=str(tmp_path / "lake"),
               ECOMM_PG_DSN=dsn or f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    return subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", *RANGE, *options], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_start_before_days_back_reaches_is_refused(tmp_path: Path) -> None:
    """`days_back = 10` ran nothing for a --start a year ago: "Did not run any tasks", exit 0, the dates unpublished."""
    result = _backfill(tmp_path, "[RangeDaily]\ndays_back = 10\n")
    assert result.returncode == 40, result.stderr[-3000:]
    line = _one_line(result)
    earliest = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=10)  # or the day after it
    assert line.startswith(f"ERROR: the command was rejected: --start {START} is before "), line
    assert (f"the earliest date [RangeDaily] days_back (--days-back) 10 reaches: Luigi would skip its dates silently;"
            " raise days_back to ") in line, line
    said = dt.date.fromisoformat(line.split(" is before ")[1][:10])
    assert said in (earliest, earliest + dt.timedelta(days=1)), line
    assert f"raise days_back to {10 + (said - START).days} or more" in line, line
    assert "Run summary" not in result.stdout and not (tmp_path / "lake").exists(), "nothing ran"


def test_the_earliest_date_days_back_reaches_is_luigi_s(luigi_settings) -> None:
    """The refusal's boundary is Luigi's own: a date whose midnight is before `now - days_back` is dropped."""
    from pipeline import tasks

    now = int(dt.datetime(2026, 3, 11, 6, 30, tzinfo=dt.timezone.utc).timestamp())
    luigi_settings("RangeDaily", days_back=10)
    assert tasks.RangeDaily(of=tasks.DailyPipeline, start=dt.date(2026, 3, 2), now=now).earliest() == \
        dt.date(2026, 3, 2)
    with pytest.raises(ValueError, match=r"^--start 2026-03-01 is before 2026-03-02, .* days_back to 11 or more$"):
        tasks.RangeDaily(of=tasks.DailyPipeline, start=dt.date(2026, 3, 1), now=now)
    midnight = int(dt.datetime(2026, 3, 11, tzinfo=dt.timezone.utc).timestamp())
    assert tasks.RangeDaily(of=tasks.DailyPipeline, start=dt.date(2026, 3, 1), now=midnight).earliest() == \
        dt.date(2026, 3, 1)


@pytest.mark.parametrize(("settings", "options", "value"), [("[RangeDaily]\ntask_limit = 0\n", (), 0),
                                                            ("", ("--task-limit", "-1"), -1)])
def test_a_task_limit_below_1_is_refused(tmp_path: Path, settings: str, options: tuple[str, ...], value: int) -> None:
    """`task_limit = 0` scheduled no date and said "0 of 2 date(s) published", exit 0."""
    result = _backfill(tmp_path, settings, *options)
    assert result.returncode == 40, result.stderr[-3000:]
    assert _one_line(result) == (f"ERROR: the command was rejected: [RangeDaily] task_limit (--task-limit) is {value}:"
                                 " a backfill would schedule no date; give 1 or more, or leave it out for the default"
                                 " (as many as days_back reaches) (luigi --help-all lists the options)")
    assert "Run summary" not in result.stdout and not (tmp_path / "lake").exists(), "nothing ran"


def test_a_task_limit_smaller_than_the_dates_to_run_stops_the_backfill(tmp_path: Path, fresh_db,
                                                                       luigi_settings) -> None:
    """`task_limit = 1` over two unpublished dates published one, "then the rest of the backfill", exit 0: the
    other was never scheduled. Refused while scheduling, before any work, naming the limit that would do."""
    from pipeline import tasks

    result = _backfill(tmp_path, "[RangeDaily]\ntask_limit = 1\n", dsn=fresh_db.dsn)
    assert result.returncode == 35, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    named = [line for line in result.stderr.splitlines() if "task_limit" in line]
    assert named and named[0].endswith(
        "RangeDaily: 2 date(s) of the range are not published but [RangeDaily] task_limit (--task-limit) is 1: the"
        " backfill would run 1 and leave the rest; give --task-limit 2 (or more), or a shorter range (--stop)"), named
    assert not (tmp_path / "lake" / "raw").exists(), "nothing was landed"
    # asked again (the run summary asks), it is refused again; a limit that covers the dates schedules them all
    luigi_settings("RangeDaily", task_limit=1)
    short = tasks.RangeDaily(of=tasks.DailyPipeline, start=START, stop=STOP)
    for _ in range(2):
        with pytest.raises(tasks.base.TaskLimitTooSmall):
            short.requires()
    luigi_settings("RangeDaily", task_limit=2)
    required = tasks.RangeDaily(of=tasks.DailyPipeline, start=START, stop=STOP).requires()
    assert [task.date for task in required] == [START, START + dt.timedelta(days=1)]
