"""What every `python -m pipeline ...` command shares: a known user error is one line and an exit code.

`Parser` is argparse's, except that a bad command line prints one line (`<prog>: error: <what>`,
with `--help` for the usage) and exits 2, without the usage block above it; `date_arg` is the
argparse type of a date option (exactly YYYY-MM-DD, as everywhere in the pipeline).
`pipeline.tasks.cli_errors` does the same for the `luigi` command line.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import NoReturn

from pipeline import business_day, lake

USAGE_ERROR = 2  # argparse's exit code for a command-line usage error


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit 2), not the usage block."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def first_line(error: BaseException) -> str:
    """An error's first line (a libpq message goes on with hints), for a one-line report."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def shortened(text: str | None, cut: int = 300) -> str:
    """A message's first line in at most about `cut` characters: cut at a word and marked "...", its last sentence kept
    when short (the project's messages end with what to do: "combine the parts ..., then run again")."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    if len(line) <= cut:
        return line
    last = line.rsplit(". ", 1)[1] if ". " in line else ""
    tail = f" ... {last}" if 0 < len(last) <= cut // 2 else " ..."
    return f"{line[:cut - len(tail)].rsplit(' ', 1)[0]}{tail}"


def date_arg(text: str) -> dt.date:
    """argparse type: a date, exactly YYYY-MM-DD; the error names the value and the format."""
    try:
        return lake.parse_date(text)
    except ValueError as err:
        detail = str(err)
        reason = "" if detail.startswith("not a date") else f" ({detail})"
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid date: expected YYYY-MM-DD, e.g. 2025-12-15"
                                         f"{reason}") from None


def load_date_arg(text: str) -> dt.date:
    """argparse type: a load date to run (`date_arg`, and its business day over: `business_day.ended`)."""
    try:
        return business_day.ended(date_arg(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def date_range(start: dt.date, stop: dt.date) -> list[dt.date]:
    """The dates of [start, stop), as RangeDaily counts them; an empty range is an error (ValueError)."""
    if start >= stop:
        raise ValueError(f"--start {start} is not before --stop {stop}: the range [start, stop) is empty"
                         " (--stop is exclusive)")
    return [start + dt.timedelta(days=i) for i in range((stop - start).days)]


def add_date_options(parser: Parser, stop_help: str = "last date, YYYY-MM-DD (exclusive)") -> None:
    """`--date D`, or `--start D --stop D` (a range as RangeDaily counts it); read them with `dates`."""
    parser.add_argument("--date", type=date_arg, help="one date, YYYY-MM-DD")
    parser.add_argument("--start", type=date_arg, help="first date, YYYY-MM-DD (inclusive)")
    parser.add_argument("--stop", type=date_arg, help=stop_help)


#: the longest range `dates` accepts: as far back as RangeDaily reaches ([RangeDaily] days_back in luigi.cfg)
MAX_RANGE_DAYS = 3650


def dates(parser: Parser, args: argparse.Namespace) -> list[dt.date]:
    """The dates `add_date_options` asked for; a missing, mixed, empty or endless choice is the parser's one-line error.

    A range longer than MAX_RANGE_DAYS is refused: `--stop 9999-12-31` for `--stop 2025-12-31` would
    otherwise walk millions of dates.
    """
    if args.date and (args.start or args.stop):
        given = " and ".join(f"--{name} {getattr(args, name)}" for name in ("start", "stop") if getattr(args, name))
        parser.error(f"--date {args.date} and {given} exclude each other: give --date, or --start and --stop")
    if not args.date and not (args.start and args.stop):
        parser.error("give --date, or --start and --stop")
    if args.start and args.stop and (args.stop - args.start).days > MAX_RANGE_DAYS:
        parser.error(f"--start {args.start} --stop {args.stop} spans {(args.stop - args.start).days} days; at most"
                     f" {MAX_RANGE_DAYS} at a time")
    try:
        return [args.date] if args.date else date_range(args.start, args.stop)
    except ValueError as err:
        parser.error(str(err))
