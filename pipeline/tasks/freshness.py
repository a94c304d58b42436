"""`python -m pipeline freshness`: is the serving Postgres up to date? For cron and monitors.

    python -m pipeline freshness                      # [freshness] max_age_hours (36)
    python -m pipeline freshness --max-age-hours 30
    python -m pipeline freshness --quiet              # cron: prints only when not fresh

The age of the data is the time since the END of the latest published load date (its following
midnight in [model] business_timezone): with the default 36 hours, yesterday's date must be
published by noon today. Exit codes, for a monitor:

    0  fresh: the latest published date is within the age
    1  stale: it is older (or nothing is published), naming it and the command that catches up
    2  the command line is wrong
    3  cannot tell: the serving Postgres cannot be reached (or the embedded one is not running)

One line on stdout either way (stderr for 2 and 3); with --quiet, none when fresh: cron mails a
command's output, not its exit code, so the crontab line must print exactly when something is wrong. It reads `audit.publish_log` and never starts
the embedded server.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

import luigi
import psycopg

from pipeline import business_day, cli, config
from pipeline.tasks import runbook

logger = logging.getLogger(__name__)

FRESH, STALE, UNKNOWN = 0, 1, 3


class freshness(config.NamedBadSettings, luigi.Config):  # noqa: N801 - luigi maps the class name to [freshness]
    """[freshness]: how old the latest published date may be before `python -m pipeline freshness` fails."""

    read_before_a_run = False  # read by `freshness` alone: a bad value there is its UNKNOWN, not a refused run

    max_age_hours = luigi.FloatParameter(default=36.0)


def latest_published() -> tuple[dt.date, dt.datetime] | None:
    """The latest published load date and when it was published (None: nothing published yet)."""
    from pipeline.serving import pg

    with pg.connect() as conn:
        if not pg.has_table(conn, "audit.publish_log"):
            return None
        row = conn.execute("select load_date, published_at from audit.publish_log"
                           " order by load_date desc limit 1").fetchone()
    return (row[0], row[1]) if row else None


def age_hours(day: dt.date, now: dt.datetime) -> float:
    """Hours from the end of `day` (the next midnight in [model] business_timezone) to `now`."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=config.business_zone())
    return (now - end).total_seconds() / 3600


LIMIT_SETTING = "[freshness] max_age_hours"


def check(now: dt.datetime, max_age: float, limit_from: str = LIMIT_SETTING) -> tuple[int, str]:
    """(exit code, the line to print) for the serving Postgres at `now`; `limit_from` names where `max_age` was set."""
    from pipeline.serving import pg
    from pipeline.tasks import run_audit

    if not run_audit.postgres_reachable():
        from pipeline.serving import data_folder, embedded

        refused = data_folder.not_yours(embedded.data_dir())  # root's server may well run: not "not running"
        return UNKNOWN, (f"UNKNOWN: {refused}" if refused else "UNKNOWN: the embedded Postgres is not running, so no"
                         " date can be served (start it: python -m pipeline.serving.pg start)")
    try:
        latest = latest_published()
    except (psycopg.OperationalError, pg.EmbeddedServerError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return UNKNOWN, f"UNKNOWN: cannot read audit.publish_log from {pg.redact(pg.dsn())}: {first}"
    if latest is None:
        return STALE, "STALE: no load date is published yet (run the daily command: docs/operations.md)"
    day, published_at = latest
    age = age_hours(day, now)
    when = f"published {published_at.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
    if age <= max_age:  # a date is published on its own day too (its files so far): then it has not ended
        since = f"{age:.1f} h after its end" if age >= 0 else f"{-age:.1f} h before its end (the day is not over)"
        return FRESH, f"FRESH: the latest published load date is {day} ({when}), {since} (limit {max_age:g} h)"
    # the dates that have ended since: from the one after the latest published to yesterday
    start = day + dt.timedelta(days=1)
    if start >= config.business_date(now):  # a limit under a day: the next date is not over, so cannot run yet
        return STALE, (f"STALE: the latest published load date is {day} ({when}), {age:.1f} h after its end, over"
                       f" the limit of {max_age:g} h ({limit_from}); the next, {start}, can run from"
                       f" {business_day.runs_from(start)}")
    stop = max(start + dt.timedelta(days=1), config.business_date(now))
    # a long backfill a month at a time (docs/operations.md#running-dates-and-backfills): the first month's
    month_end = (start.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    first = (f"a month at a time, from `{_catch_up(start, month_end)}`" if (stop - start).days > 31
             else f"`{_catch_up(start, stop)}`")
    return STALE, (f"STALE: the latest published load date is {day} ({when}), {age:.1f} h after its end, over the"
                   f" limit of {max_age:g} h ({limit_from}); see why with `python -m pipeline summary"
                   f" --start {start} --stop {stop}`, catch up with {first}")


def _catch_up(start: dt.date, stop: dt.date) -> str:
    """The command that publishes [start, stop), in the README's form (--local-scheduler: it works as printed
    whether or not luigid runs)."""
    return (f"luigi --module pipeline.tasks DailyPipeline --date {start}" if stop - start == dt.timedelta(days=1)
            else f"luigi --module pipeline.tasks RangeDaily --of DailyPipeline --start {start} --stop {stop}"
            ) + runbook.LOCAL_SCHEDULER


def _moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date and time (YYYY-MM-DDTHH:MM[+HH:MM])") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline freshness`."""
    parser = cli.Parser(prog="python -m pipeline freshness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-age-hours", type=float, default=None,
                        help="the age limit in hours (default: [freshness] max_age_hours in luigi.cfg, 36)")
    parser.add_argument("--now", type=_moment, default=None,
                        help="judge as of this time, ISO format (default: now; without an offset: UTC)")
    parser.add_argument("--quiet", action="store_true",
                        help="print nothing when fresh (for cron, which mails any output and ignores exit codes)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    limit_from = LIMIT_SETTING if args.max_age_hours is None else "--max-age-hours"
    if args.max_age_hours is not None and args.max_age_hours < 0:
        parser.error(f"--max-age-hours {args.max_age_hours:g} is negative")
    try:
        max_age = freshness().max_age_hours if args.max_age_hours is None else args.max_age_hours
        if max_age < 0:  # a setting to fix, as a monitor reads it: not a stale date, nor a wrong command line
            raise config.BadSetting(f"{LIMIT_SETTING} = {max_age:g} is negative: fix it in luigi.cfg")
        code, line = check(args.now or dt.datetime.now(dt.timezone.utc), max_age, limit_from)
    except config.BadSetting as err:  # also the age's start: midnight in the business time zone
        code, line = UNKNOWN, f"UNKNOWN: {err}"
    if not (args.quiet and code == FRESH):
        print(line, file=sys.stderr if code == UNKNOWN else sys.stdout)
    return code
