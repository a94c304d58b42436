"""What every `python -m pipeline ...` command shares: a known user error is one line and an exit code.

`Parser` is argparse's, except that a bad command line prints one line (`<prog>: error: <what>`,
with `--help` for the usage) and exits 2, without the usage block above it; `date_arg` is the
argparse type of a date option (exactly YYYY-MM-DD, as everywhere in the pipeline).
`quiet_rejected_command_lines` does the same for the `luigi` command line, and for one that cannot
reach the central scheduler (pipeline.tasks installs it). A task whose scheduling hits a
setting that cannot be read (`pipeline.config.BadSetting`) logs that one line, not the traceback.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from typing import NoReturn

from pipeline import config, lake
from pipeline.config import BadSetting

USAGE_ERROR = 2  # argparse's exit code for a command-line usage error


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit 2), not the usage block."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def first_line(error: BaseException) -> str:
    """An error's first line (a libpq message goes on with hints), for a one-line report."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


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
    """argparse type: a load date to run (`date_arg`, and not after today: `config.not_after_today`)."""
    try:
        return config.not_after_today(date_arg(text))
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


def dates(parser: Parser, args: argparse.Namespace) -> list[dt.date]:
    """The dates `add_date_options` asked for; a missing, mixed or empty choice is the parser's one-line error."""
    if args.date and (args.start or args.stop):
        given = " and ".join(f"--{name} {getattr(args, name)}" for name in ("start", "stop") if getattr(args, name))
        parser.error(f"--date {args.date} and {given} exclude each other: give --date, or --start and --stop")
    if not args.date and not (args.start and args.stop):
        parser.error("give --date, or --start and --stop")
    try:
        return [args.date] if args.date else date_range(args.start, args.stop)
    except ValueError as err:
        parser.error(str(err))


class _RejectedCommandLine(logging.Filter):
    """Luigi's "Uncaught exception in luigi" for a command line it could not turn into a task: one line.

    `luigi.retcodes.run_with_retcodes` logs any exception with its traceback and exits [retcode]
    unhandled_exception. When the exception came from parsing the command line (a bad `--date`, a
    missing parameter), the traceback is noise: the record keeps the error's message, naming the
    option, and drops the traceback. Any other exception keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.msg != "Uncaught exception in luigi":
            return True
        error, tb = record.exc_info[1], record.exc_info[2]
        option = value = None
        parsing = False
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_filename.endswith(os.path.join("luigi", "cmdline_parser.py")):
                parsing = True
                option = tb.tb_frame.f_locals.get("param_name", option)
                value = tb.tb_frame.f_locals.get("attr", value)
            tb = tb.tb_next
        if not parsing or error is None:
            return True
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        # Luigi's own DateParameter (RangeDaily's --start/--stop): strptime's wording, whatever the fault
        if isinstance(value, str) and ("does not match format '%Y-%m-%d'" in text
                                       or text.startswith("unconverted data remains")):
            text = f"{value!r} is not a valid date: expected YYYY-MM-DD, e.g. 2025-12-15"
        if option and not text.startswith("--") and not isinstance(error, BadSetting):  # it names its setting
            text = f"--{option.replace('_', '-')} {text}"
        record.msg, record.args = "the command was rejected: %s (luigi --help-all lists the options)", (text,)
        record.exc_info, record.exc_text = None, None
        return True


LUIGID_DOWN = ("the central scheduler at %s does not answer: start it (`make luigid`), or run without it:"
               " add --local-scheduler to the command")


def _rpc_error(error: BaseException | None) -> BaseException | None:
    """The luigi.rpc.RPCError among an exception's causes (None: it is not a failure to reach luigid)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if type(error).__name__ == "RPCError" and type(error).__module__ == "luigi.rpc":
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class _LuigidUnreachable(logging.Filter):
    """A `luigi` run that cannot reach luigid (no --local-scheduler, no `make luigid`): what to do, no tracebacks.

    Luigi retries each call ([core] rpc-retry-attempts, rpc-retry-wait), logging every retry with an
    empty traceback ("NoneType: None"), then logs the RPCError's chain of tracebacks twice (while
    scheduling, and as "Uncaught exception in luigi", exit [retcode] unhandled_exception). The
    retries stay (luigid may be restarting), each one line that says what to do; the failure is one
    line too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Failed connecting to remote scheduler %r":
            url = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = LUIGID_DOWN + " (retrying)", (url,)
            record.exc_info, record.exc_text = None, None
        elif record.msg in ("Uncaught exception in luigi", "Luigi unexpected framework error while scheduling %s") \
                and record.exc_info and _rpc_error(record.exc_info[1]) is not None:
            if record.msg != "Uncaught exception in luigi":
                return False  # said once, at the end
            text = str(_rpc_error(record.exc_info[1]))
            url = text.rsplit("remote scheduler ", 1)[-1].strip("'") if "remote scheduler " in text else "?"
            record.msg, record.args = LUIGID_DOWN, (url,)
            record.exc_info, record.exc_text = None, None
        return True


def _bad_setting_in(error: BaseException | None) -> BadSetting | None:
    """The BadSetting among an exception's causes (None: none)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, BadSetting):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class _BadSettingLine(logging.Filter):
    """A task that read a setting it cannot parse (BadSetting): Luigi's log line names it, without the traceback.

    Luigi logs a failure of `requires()` or `complete()` as "Will not run <task> ... method:" with the
    formatted traceback in the text (exit [retcode] scheduling_error), and a failure of `run()` with
    its exc_info (exit task_failed). Either way the BadSetting's message says all there is to fix.
    """

    PREFIX = f"{BadSetting.__module__}.{BadSetting.__qualname__}: "

    def filter(self, record: logging.LogRecord) -> bool:
        error = _bad_setting_in(record.exc_info[1]) if record.exc_info else None
        if error is not None:
            record.msg, record.args = "%s: %s", (record.getMessage(), error)
            record.exc_info, record.exc_text = None, None
        elif isinstance(record.msg, str) and "\nTraceback (most recent call last):" in record.msg and not record.args:
            head, _, trace = record.msg.partition("\n")
            named = [line[len(self.PREFIX):] for line in trace.splitlines() if line.startswith(self.PREFIX)]
            if named:
                record.msg, record.args = "%s %s", (head, named[-1])
        return True


def quiet_rejected_command_lines() -> None:
    """A `luigi` command line that fails to parse, or cannot reach luigid, or a task that reads a bad setting:
    one log line each, not tracebacks (see above)."""
    target = logging.getLogger("luigi-interface")
    for kind in (_RejectedCommandLine, _LuigidUnreachable, _BadSettingLine):
        if not any(isinstance(f, kind) for f in target.filters):
            target.addFilter(kind())
