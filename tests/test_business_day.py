"""A date runs once its business day ([model] business_timezone) is over, never while it goes on.

A run of today published the part of the day sent so far as a complete day. `DailyPipeline --date`
refuses a date whose day is not over (exit 40, one line saying when it can run); `RangeDaily` leaves
such dates out and says so. Luigi runs use its `--now` where it has one (RangeDaily), else the clock
with zones that make the answer certain: today in Etc/GMT+12 (UTC-12) is never over.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline import business_day
from tests.support.paths import REPO
from tests.support.postgres import PG_ENV
from tests.support.processes import free_port

LUIGI = [sys.executable, "-m", "luigi", "--module", "pipeline.tasks"]
PIPELINE = [sys.executable, "-m", "pipeline"]
WEST, EAST = "Etc/GMT+12", "Etc/GMT-14"  # UTC-12 and UTC+14: the last and the first days to end
UTC = dt.timezone.utc


def _run(args: list[str], tmp_path: Path, zone: str, command: list[str] = LUIGI,
         python_path: str = "") -> subprocess.CompletedProcess:
    """A command with its own lake, no incoming files, a Postgres that does not answer, and `zone` as the business
    zone (`python_path`: a folder of modules of its own, before the checkout)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings = tmp_path / f"{zone.replace('/', '_')}.cfg"
    settings.write_text(f"[model]\nbusiness_timezone = {zone}\n")
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    env.update({"ECOMM_DATA_DIR": str(tmp_path / "incoming"), "ECOMM_LAKE_DIR": str(tmp_path / "lake"),
                "ECOMM_PG_DSN": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
                "LUIGI_CONFIG_PATH": str(settings)})
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join([python_path, str(REPO)])
    return subprocess.run([*command, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def _today(zone: str) -> dt.date:
    """Today's date in `zone`, at least two minutes before its end (waits for the next day when closer to it)."""
    now = dt.datetime.now(ZoneInfo(zone))
    left = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(zone)) - now
    if left < dt.timedelta(minutes=2):
        time.sleep(left.total_seconds() + 1)
    return dt.datetime.now(ZoneInfo(zone)).date()


def _epoch(text: str) -> str:
    """Luigi's `--now` (seconds since the epoch) of a UTC time."""
    return str(int(dt.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()))


def test_a_day_ends_at_the_next_midnight_in_the_business_zone(luigi_settings) -> None:
    day = dt.date(2026, 12, 7)
    luigi_settings("model", business_timezone="Asia/Tokyo")  # east of UTC: over the same UTC day
    assert business_day.day_end(day) == dt.datetime(2026, 12, 7, 15, tzinfo=UTC)
    assert business_day.ended(day, dt.datetime(2026, 12, 7, 15, tzinfo=UTC)) == day
    with pytest.raises(business_day.DayNotOver) as refused:
        business_day.ended(day, dt.datetime(2026, 12, 7, 14, 59, tzinfo=UTC))
    assert str(refused.value) == ("2026-12-07 is not over yet in [model] business_timezone Asia/Tokyo (it is"
                                  " 2026-12-07 23:59 there): its files cannot be complete; it can run from"
                                  " 2026-12-07 15:00 UTC (2026-12-08 00:00 Asia/Tokyo)")
    luigi_settings("model", business_timezone="America/Los_Angeles")  # the docs' cron at 06:44 UTC
    with pytest.raises(business_day.DayNotOver, match=r"2026-12-06 is not over yet .*run from 2026-12-07 08:00 UTC"):
        business_day.ended(dt.date(2026, 12, 6), dt.datetime(2026, 12, 7, 6, 44, tzinfo=UTC))
    assert business_day.ended(dt.date(2026, 12, 5), dt.datetime(2026, 12, 7, 6, 44, tzinfo=UTC))
    luigi_settings("model", business_timezone="Europe/Berlin")  # a day of 23 hours: clocks go forward
    assert business_day.day_end(dt.date(2026, 3, 29)) == dt.datetime(2026, 3, 29, 22, tzinfo=UTC)
    with pytest.raises(ValueError, match="is after today"):  # a date after today keeps its own words
        business_day.ended(business_day.first_open() + dt.timedelta(days=1))


def test_a_backfill_names_the_dates_it_leaves_out(luigi_settings) -> None:
    luigi_settings("model", business_timezone="Europe/Berlin")
    now = dt.datetime(2026, 12, 7, 6, 45, tzinfo=UTC)
    assert business_day.left_out(dt.date(2026, 12, 5), dt.date(2027, 1, 10), now) == (
        "RangeDaily left out 2026-12-07 to 2027-01-09 (34 dates): their business day in [model] business_timezone"
        " Europe/Berlin is not over, so their files cannot be complete; 2026-12-07 can run from 2026-12-07 23:00 UTC"
        " (2026-12-08 00:00 Europe/Berlin), each later date a day after (run the range again then)")
    assert business_day.left_out(dt.date(2026, 12, 5), dt.date(2026, 12, 7), now) is None  # all over
    assert business_day.left_out(dt.date(2026, 12, 5), None, now) is None  # up to the last day that is over
    # Luigi's --reverse without --start: as far back as the backfill goes; it failed every date (TypeError)
    assert business_day.left_out(None, dt.date(2026, 12, 7), now) is None
    assert business_day.left_out(None, dt.date(2026, 12, 9), now).startswith(
        "RangeDaily left out 2026-12-07 to 2026-12-08 (2 dates): ")


@pytest.mark.slow
def test_a_reverse_backfill_without_start_runs_the_dates_that_are_over(tmp_path: Path) -> None:
    """Luigi allows `--reverse` without `--start`: every date failed, `RangeDaily could not be scheduled: TypeError`."""
    today = _today("UTC")
    done = _run(["RangeDaily", "--of", "DailyPipeline", "--stop", str(today + dt.timedelta(days=2)), "--reverse",
                 "--days-back", "3", "--local-scheduler"], tmp_path, "UTC")
    assert done.returncode == 30, done.stdout + done.stderr[-3000:]  # the dates that are over ran: no files
    rows = re.findall(r"^(\d{4}-\d\d-\d\d)  ", done.stdout, re.M)
    assert rows == [str(today - dt.timedelta(days=2)), str(today - dt.timedelta(days=1))], done.stdout
    assert "could not be scheduled" not in done.stdout, done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith(f"RangeDaily left out {today} to"
                                                            f" {today + dt.timedelta(days=1)} (2 dates): "), done.stdout


def test_a_now_to_come_does_not_make_a_day_over(luigi_settings) -> None:
    """Luigi's `--now` judged RangeDaily's range, and the tasks it builds in Python never met DateParameter.parse:
    a `--now` days ahead ran today's date, and passed a `--start` of tomorrow."""
    from pipeline import tasks

    luigi_settings("model", business_timezone=WEST)
    today, clock = _today(WEST), dt.datetime.now(UTC)
    later = int((clock + dt.timedelta(days=3)).timestamp())
    backfill = tasks.RangeDaily(of=tasks.DailyPipeline, start=today - dt.timedelta(days=1),
                                stop=today + dt.timedelta(days=2), now=later)
    assert backfill.clock() <= dt.datetime.now(UTC)
    assert backfill.moving_stop(dt.datetime.fromtimestamp(later, UTC).replace(tzinfo=None)) == \
        dt.datetime.combine(today, dt.time())
    assert business_day.left_out(backfill.start, backfill.stop, backfill.clock()).startswith(
        f"RangeDaily left out {today} to {today + dt.timedelta(days=1)} (2 dates)")
    with pytest.raises(ValueError, match=f"--start {today + dt.timedelta(days=1)} is after today"):
        tasks.RangeDaily(of=tasks.DailyPipeline, start=today + dt.timedelta(days=1), now=later)
    # the date's own task, however it is built
    for kind in (tasks.DailyPipeline, tasks.LandOrders, tasks.LandProducts):
        with pytest.raises(business_day.DayNotOver, match=f"^{today} is not over yet"):
            kind(date=today)
    with pytest.raises(ValueError, match="is after today"):
        tasks.DailyPipeline(date=today + dt.timedelta(days=1))
    assert tasks.DailyPipeline(date=today - dt.timedelta(days=1)).date == today - dt.timedelta(days=1)
    # a --now in the past still runs as then
    then = dt.datetime(2026, 3, 1, 6, 44, tzinfo=UTC)
    past = tasks.RangeDaily(of=tasks.DailyPipeline, start=dt.date(2026, 2, 1), now=int(then.timestamp()))
    assert past.clock() == then
    assert past.moving_stop(then.replace(tzinfo=None)) == dt.datetime(2026, 2, 28)


@pytest.mark.parametrize("days", [1, -2])
def test_days_forward_other_than_0_is_refused_it_cannot_move_the_business_day_s_stop(luigi_settings, days) -> None:
    """`[RangeDaily] days_forward` moved Luigi's stop (`now + days_forward`); the stop capped by the business day
    ignored it silently. A positive value could only add dates whose day is not over; a negative one, honoured,
    cut an explicit --stop's dates silently and ran nothing, exit 0, for a recent --start: both are refused,
    pointing at --stop."""
    from pipeline import tasks

    then = dt.datetime(2026, 3, 1, 6, 44, tzinfo=UTC)  # 2026-02-28 22:44 in Los Angeles: 02-27 is the last over
    luigi_settings("model", business_timezone="America/Los_Angeles")
    luigi_settings("RangeDaily", days_forward=days)
    with pytest.raises(ValueError, match=rf"^\[RangeDaily\] days_forward \(--days-forward\) is {days}: a range ends"
                                         " before the first date whose business day is not over, never after it; to"
                                         " end it earlier give --stop"):
        tasks.RangeDaily(of=tasks.DailyPipeline, start=dt.date(2026, 2, 20), now=int(then.timestamp()))
    luigi_settings("RangeDaily", days_forward=0)
    assert tasks.RangeDaily(of=tasks.DailyPipeline, start=dt.date(2026, 2, 20), now=int(then.timestamp())).moving_stop(
        then.replace(tzinfo=None)) == dt.datetime(2026, 2, 28)


def test_the_summary_walks_no_task_of_a_date_not_over(luigi_settings) -> None:
    """`summary` over a range reaching today, after a failed date, walked today's task graph to say what it waits
    for: building today's task is refused, and the summary died with the traceback."""
    import pipeline.tasks  # noqa: F401 - registers DailyPipeline
    from pipeline.tasks import held_back

    luigi_settings("model", business_timezone=WEST)
    assert held_back.waits_for(_today(WEST)) == set()


def test_a_date_after_today_is_the_same_refusal(luigi_settings) -> None:
    """A task built by code for a date after today raised a plain ValueError, which the one-line log filter did not
    know: it logged a traceback where a date not over yet gets one line."""
    luigi_settings("model", business_timezone=WEST)
    with pytest.raises(business_day.DayNotOver, match="is after today"):
        business_day.ended(_today(WEST) + dt.timedelta(days=3))


def test_the_docs_say_how_restate_refuses_a_date_not_over(luigi_settings, capsys) -> None:
    """docs/operations.md said `restate --date` refused it with exit 40 and a `--date ...` line: argparse's usage
    error, exit 2, is what it does."""
    from pipeline.__main__ import main

    text = " ".join((REPO / "docs" / "operations.md").read_text().split())
    said = re.search(r"`restate --date` refuses it too, as a usage error, exit (\d+): `([^`]*?)\d{4}-", text)
    assert said is not None and "(and `restate --date`" not in text, "the docs' words on restate"
    luigi_settings("model", business_timezone=WEST)
    today = _today(WEST)
    with pytest.raises(SystemExit) as exited:
        main(["restate", "--date", str(today)])
    assert exited.value.code == int(said[1])
    assert capsys.readouterr().err.startswith(f"{said[2]}{today} is not over yet in [model] business_timezone {WEST}")


def test_the_docs_say_cron_tz_holds_for_the_later_lines_of_the_crontab() -> None:
    """The cron recipe puts `CRON_TZ=...` before its line: cron applies it to every line after it too."""
    text = " ".join((REPO / "docs" / "operations.md").read_text().split())
    assert "`CRON_TZ` applies to every later line of the crontab" in text


@pytest.mark.slow
def test_a_date_whose_day_is_not_over_is_rejected_before_anything_runs(tmp_path: Path) -> None:
    """Today at UTC-12 is never over; it was run, and published as a complete day."""
    today = _today(WEST)
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(WEST)).astimezone(UTC)
    when = f"it can run from {end:%Y-%m-%d %H:%M} UTC ({today + dt.timedelta(days=1)} 00:00 {WEST})"
    done = _run(["DailyPipeline", "--date", str(today), "--local-scheduler"], tmp_path, WEST)
    assert done.returncode == 40, done.stderr[-3000:]
    line = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(line) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert line[0].startswith(f"ERROR: the command was rejected: --date {today} is not over yet in [model]"
                              f" business_timezone {WEST} (it is {today} ") and when in line[0], line[0]
    backfill = _run(["RangeDaily", "--of", "DailyPipeline", "--start", str(today), "--local-scheduler"], tmp_path, WEST)
    assert backfill.returncode == 40 and f"--start {today} is not over yet" in backfill.stderr, backfill.stderr[-3000:]
    restate = _run(["restate", "--date", str(today)], tmp_path, WEST, PIPELINE)
    assert restate.returncode == 2 and f"argument --date: {today} is not over yet" in restate.stderr, restate.stderr
    assert not (tmp_path / "lake").exists(), "nothing ran"
    # a day that is over east of UTC runs (here it fails on its missing files): UTC+14 ends a day 14 h before UTC
    over = _today(EAST) - dt.timedelta(days=1)
    ran = _run(["DailyPipeline", "--date", str(over), "--local-scheduler"], tmp_path, EAST)
    assert ran.returncode == 30 and "not over" not in ran.stderr + ran.stdout, ran.stderr[-3000:]


@pytest.mark.slow
def test_a_backfill_leaves_out_the_dates_whose_day_is_not_over_and_says_so(tmp_path: Path) -> None:
    """The docs' cron line at 06:44 UTC with America/Los_Angeles: its `--stop` (today's UTC date) took a
    Los Angeles day with 1 h 16 min to go; a `--stop` after today was cut there without a word."""
    done = _run(["RangeDaily", "--of", "DailyPipeline", "--start", "2026-02-26", "--stop", "2026-03-04",
                 "--now", _epoch("2026-03-01T06:44"), "--local-scheduler"], tmp_path, "America/Los_Angeles")
    assert done.returncode == 30, done.stderr[-3000:]  # the dates that are over ran: no files
    said = ("RangeDaily left out 2026-02-28 to 2026-03-03 (4 dates): their business day in [model] business_timezone"
            " America/Los_Angeles is not over, so their files cannot be complete; 2026-02-28 can run from 2026-03-01"
            " 08:00 UTC (2026-03-01 00:00 America/Los_Angeles), each later date a day after (run the range again then)")
    summary = done.stdout[done.stdout.index("Run summary"):].splitlines()
    assert re.findall(r"^(\d{4}-\d\d-\d\d)  ", done.stdout, re.M) == ["2026-02-26", "2026-02-27"], done.stdout
    assert "0 of 2 date(s) published" in summary and summary[-1] == said, done.stdout
    assert said in done.stderr, "and in the log, when it was decided"
    # Asia/Tokyo's 2026-03-01 is over at 15:00 UTC that day: it runs, nothing is left out
    east = _run(["RangeDaily", "--of", "DailyPipeline", "--start", "2026-03-01", "--stop", "2026-03-02",
                 "--now", _epoch("2026-03-01T15:00"), "--local-scheduler"], tmp_path, "Asia/Tokyo")
    assert east.returncode == 30 and "0 of 1 date(s) published" in east.stdout, east.stdout + east.stderr[-3000:]
    assert "left out" not in east.stdout + east.stderr, east.stdout


@pytest.mark.slow
def test_the_documented_cron_line_runs_the_days_that_are_over_in_any_zone(tmp_path: Path) -> None:
    """docs/operations.md's crontab line, as cron runs it (`\\%` is `%`), here without a luigi install."""
    line = re.search(r"^0 2 \* \* \* cd /srv/ecomm && \.venv/bin/luigi (--module pipeline\.tasks RangeDaily [^>]*)>",
                     (REPO / "docs" / "operations.md").read_text(), re.M).group(1).replace("\\%", "%")
    assert "--stop" not in line, line
    for zone in (WEST, EAST):
        first = dt.datetime.now(UTC).date() - dt.timedelta(days=7)
        last = _today(zone) - dt.timedelta(days=1)  # yesterday in the zone: the last date that is over
        shell = f"{shlex.join([sys.executable, '-m', 'luigi'])} {line}"
        done = _run(["sh", "-c", shell], tmp_path / zone.replace("/", "_"), zone, [])
        assert done.returncode == 30, done.stderr[-3000:]  # every date ran: no files
        rows = re.findall(r"^(\d{4}-\d\d-\d\d)  ", done.stdout, re.M)
        assert rows == [str(first + dt.timedelta(days=i)) for i in range((last - first).days + 1)], done.stdout
        assert "left out" not in done.stdout, done.stdout


UNCAPPED = """import luigi.tools.range
from pipeline.tasks import RangeDaily


class UncappedRange(RangeDaily):
    def moving_stop(self, now):
        return luigi.tools.range.RangeDailyBase.moving_stop(self, now)
"""


@pytest.mark.slow
def test_a_now_to_come_runs_only_the_dates_that_are_over(tmp_path: Path) -> None:
    """At UTC-12 with a `--now` 3 days ahead, `--stop` tomorrow: today's date was scheduled and run, as complete."""
    today, later = _today(WEST), str(int(time.time()) + 3 * 86400)
    yesterday, tomorrow = today - dt.timedelta(days=1), today + dt.timedelta(days=1)
    after = tomorrow + dt.timedelta(days=1)
    done = _run(["RangeDaily", "--of", "DailyPipeline", "--start", str(yesterday), "--stop", str(after), "--now", later,
                 "--local-scheduler"], tmp_path / "range", WEST)
    assert done.returncode == 30, done.stderr[-3000:]  # yesterday ran: no files
    assert re.findall(r"^(\d{4}-\d\d-\d\d)  ", done.stdout, re.M) == [str(yesterday)], done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith(f"RangeDaily left out {today} to {tomorrow} (2 dates)")
    for start, why in ((today, "is not over yet"), (tomorrow, "is after today")):
        refused = _run(["RangeDaily", "--of", "DailyPipeline", "--start", str(start), "--now", later,
                        "--local-scheduler"], tmp_path / "start", WEST)
        assert refused.returncode == 40 and f"--start {start} {why}" in refused.stderr, refused.stderr[-3000:]
    # a range of one's own that builds the date's task anyway: refused while scheduling, in one line, nothing runs
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "uncapped.py").write_text(UNCAPPED)
    own = _run(["--module", "uncapped", "UncappedRange", "--of", "DailyPipeline", "--start", str(yesterday),
                "--stop", str(tomorrow), "--now", later, "--local-scheduler"], tmp_path / "own", WEST,
               [sys.executable, "-m", "luigi"], str(tmp_path / "modules"))
    assert own.returncode == 35 and "Traceback" not in own.stderr, own.stderr[-3000:]
    assert f"due to error in complete() method: {today} is not over yet in [model] business_timezone {WEST}" in \
        own.stderr, own.stderr[-3000:]
    assert not (tmp_path / "own" / "lake").exists(), "nothing ran"
