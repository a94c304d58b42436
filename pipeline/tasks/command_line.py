"""The `luigi` command line as the run summary needs it: the dates it asked for, luigid's URL, the scheduler.

`note` is a handler of Luigi's dependency events (pipeline.tasks registers it): it reads the
command line once, while Luigi's own parser is live, so that the summary at exit (`read`, `noted`)
needs no parser of its own.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import luigi

from pipeline import config, setting_source

logger = logging.getLogger(__name__)


def requested_dates(task: luigi.Task) -> list[dt.date] | None:
    """The dates a `luigi` command line asked for: its task's `date`, or RangeDaily's [start, stop).

    Not the dates the run touched: a date's models also need the catalog snapshot of an earlier
    date, which the run may stage but nobody asked about. None when the command names no dates.
    """
    from luigi.tools.range import RangeDailyBase

    if isinstance(task, RangeDailyBase):
        clock = time.time() if task.now is None else task.now  # Luigi's --now, as its RangeDaily reads it
        now = dt.datetime.fromtimestamp(clock, dt.timezone.utc).replace(tzinfo=None)
        start, stop = task.moving_start(now), task.moving_stop(now)
        if task.start is not None:
            start = max(task.parameter_to_datetime(task.start), start)
        if task.stop is not None:
            stop = min(task.parameter_to_datetime(task.stop), stop)
        return [moment.date() for moment in task.finite_datetimes(start, stop)] if start <= stop else []
    day = getattr(task, "date", None)
    return [day] if isinstance(day, dt.date) else None


CommandLine = tuple[list[dt.date] | None, str, bool]  # requested dates, luigid's URL, local scheduler used
_noted: CommandLine | None = None  # this process's, read while Luigi scheduled it (note)
_noting = False


def uses_local_scheduler() -> bool:
    """Whether this process's Luigi run uses its local scheduler (`--local-scheduler`), not luigid."""
    import luigi.interface

    return bool(luigi.interface.core().local_scheduler)


def _read(parser: Any) -> CommandLine:
    """What the summary needs from a `luigi` command line, read while its CmdlineParser is Luigi's current one."""
    from pipeline.tasks import central

    task = parser.get_task_obj()  # Luigi's instance cache: the run's own root task
    return requested_dates(task), central.configured_url(), uses_local_scheduler()


def note(*_: Any) -> None:
    """Read the command line once while Luigi schedules it (a dependency event of the `luigi` process).

    Luigi fires those events inside its own command-line parser's context, so the summary at exit
    needs no parser of its own (building one is three argparse parsers over every registered task's
    parameters, after the run has ended).
    """
    global _noted, _noting, _parser
    if _noting:
        return
    from luigi.cmdline_parser import CmdlineParser

    parser = CmdlineParser.get_instance()
    if parser is None:
        return  # not a command line (luigi.build in a process): nothing to note
    _noting, _parser = True, parser  # once, whatever happens: the events fire for every task Luigi schedules
    try:
        _noted = _read(parser)
    except Exception:  # noqa: BLE001 - the summary then reads the command line at exit, as before
        logger.debug("could not read the command line while scheduling", exc_info=True)


def read(argv: Sequence[str]) -> CommandLine:
    """(requested dates, luigid's URL, whether the run used the local scheduler) of a `luigi` command line."""
    from luigi.cmdline_parser import CmdlineParser

    if _noted is not None:
        return _noted
    with CmdlineParser.global_instance(list(argv)) as parser:
        return _read(parser)


_parser: Any = None  # Luigi's parser of this run's command line, kept by `note` (see settings_as_given)


@contextlib.contextmanager
def settings_as_given() -> Iterator[None]:
    """Luigi's parser of this run current again: the settings read inside see the command line's options.

    Luigi reads a section's options (`--run-summary-at-exit false`, `--landing-ready-marker _SUCCESS`)
    only while the parser of the command line is current, and drops it when the run ends: the summary
    at exit read `luigi.cfg` alone. Also a decorator. Nothing changes outside a noted command line.
    """
    from luigi.cmdline_parser import CmdlineParser

    if _parser is None or CmdlineParser.get_instance() is not None:
        yield
        return
    with setting_source.luigi_parser(_parser):  # what CmdlineParser.global_instance sets, without parsing again
        yield


def given_settings(message: str = "") -> str:
    """This run's options that set one of the pipeline's settings (`--landing-ready-marker _READY`), as given, for a
    rerun printed "as the run was" (" --a b --c d"; "" outside a noted command line). An option `message` names
    as an option (`--duckdb-temp-directory '...'`: the error's bad value, or the fix's own) is left out: the fix sets
    it; an option an environment variable overrode (`setting_source.ENVIRONMENT`) has the variable's value, the one
    used; a URL is shown as `shown` shows it (no key it may hold)."""
    import shlex

    pending, given = list(config.NamedBadSettings.__subclasses__()), []
    while pending and _parser is not None:
        section = pending.pop(0)
        pending.extend(section.__subclasses__())
        family = section.get_task_family()
        for name, _ in section.get_params():
            flag = setting_source.option(family, name)
            value = setting_source.given_value(_parser, family, name)
            if value is None or flag in message:  # named as an option: the culprit, or the fix's own
                continue
            # a variable (ECOMM_PRODUCTS_URL) wins over the option: the rerun names the value that ran
            value = setting_source.from_environment(family, name) or value
            given.append(flag if value is True else f"{flag} {shlex.quote(shown(str(value)))}")  # True: a bare flag
    if not given:  # the common case: no option to order, so no parser of every option built (7 ms a fix line)
        return ""
    known = luigi_options(sys.argv[1:])
    typed = [full_option(arg.split("=", 1)[0], known) for arg in sys.argv[1:]]  # in the order they were typed
    given.sort(key=lambda option: typed.index(flag) if (flag := option.split()[0]) in typed else len(typed))
    return "".join(f" {option}" for option in given)


def as_used(argv: Sequence[str]) -> list[str]:
    """`argv` (a `luigi` command line) with the value the run used of each option an environment variable overrode
    (`setting_source.ENVIRONMENT`: ECOMM_PRODUCTS_URL over --catalog-products-url), for a rerun that does what ran;
    an option abbreviated as argparse takes it (`--catalog-products-u`) is named in full."""
    used = {setting_source.option(*key): value for key in setting_source.ENVIRONMENT
            if (value := setting_source.from_environment(*key))}
    known, result, before = luigi_options(argv), [], ""
    for arg in argv:
        flag, equals, value = arg.partition("=")
        full = full_option(flag, known)
        if before in used:  # the overridden option's value
            result.append(used[before])
            before = ""
            continue
        result.append(f"{full}={used[full]}" if equals and full in used else full + equals + value)
        before = "" if equals else full
    return result


def luigi_options(argv: Sequence[str]) -> frozenset[str]:
    """The options Luigi's parser of the command line `argv` knows, named as it names them: every task's
    `--family-param`, and its root task's own `--param`. Luigi's own parser (`luigi.cmdline_parser.CmdlineParser`),
    root task and all (the first positional argument: `RangeDaily` in `--RangeDaily-of DailyPipeline RangeDaily`);
    built once a command line (a few milliseconds, over every registered task's parameters)."""
    return _luigi_options(tuple(argv))


@functools.lru_cache(maxsize=4)
def _luigi_options(argv: tuple[str, ...]) -> frozenset[str]:
    import io

    from luigi.cmdline_parser import CmdlineParser

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # a line argparse refuses: Luigi's run said so already
            root = CmdlineParser._build_parser().parse_known_args(list(argv))[0].root_task
    except SystemExit:  # an ambiguous option (`--catalog-`): the first task name, as the line's root
        from luigi.task_register import Register

        root = next((arg for arg in argv if arg in set(Register.task_names())), None)
    return frozenset(CmdlineParser._build_parser(root_task=root)._option_string_actions)


def full_option(flag: str, known: frozenset[str]) -> str:
    """The option of `known` that `flag` names as argparse reads it: itself, else the one option it is a prefix of
    (`--catalog-products-u`: `--catalog-products-url`); anything else as it is (argparse refuses an ambiguous one)."""
    if not flag.startswith("--") or flag in known:
        return flag
    matches = [option for option in known if option.startswith(flag)]
    return matches[0] if len(matches) == 1 else flag


def shown(value: str) -> str:
    """A command-line value as printed in a rerun: a URL without the secrets it may hold (a catalog API's key in its
    query: `redact_url`, as every catalog URL a person sees; the printed rerun then needs the key given again)."""
    from pipeline.ingest.catalog_http import redact_url

    return redact_url(value) if "://" in value else value


_left_out: list[str] = []  # the line of a backfill's dates whose day is not over (RangeDaily.requires)


def note_left_out(line: str) -> None:
    """Keep the line naming the dates a backfill left out, their day not over, for the run summary."""
    if line not in _left_out:
        _left_out.append(line)


def left_out() -> list[str]:
    """The lines `note_left_out` kept: the dates this process's backfill left out ([] : none)."""
    return list(_left_out)


def noted() -> CommandLine | None:
    """The command line `note` read while Luigi scheduled this process's run (None: none noted)."""
    return _noted


def lock_refusal() -> str | None:
    """What to do when Luigi's pid lock refused this run (None: it did not): the processes that hold it.

    Luigi's pid lock (`luigi.lock.acquire_for`) lets one process per command line run: it keeps their
    pids in a file under `[core] lock_pid_dir` and refuses a process while a pid in it still runs the
    same command line, printing only "Pid(s) {...} already running" (exit 10, already_running).
    `watch_the_lock` notes the refusal as Luigi makes it.
    """
    if _refused_by is None:
        return None
    pids = f" (pid {', '.join(map(str, _refused_by))})" if _refused_by else ""
    return (f"Nothing ran: the same command is running on this machine{pids}, and Luigi's pid lock lets one run"
            " at a time (exit 10): wait for it to end, or add --no-lock to run anyway")


_refused_by: list[int] | None = None  # the processes holding the pid lock when Luigi refused this one


def default_lock_dir() -> str:
    """Where Luigi's pid lock keeps its files unless `[core] lock_pid_dir` (or --lock-pid-dir) says: one folder per
    user and lake. Luigi's own, `/tmp/luigi`, is made 0700 by the first user to run `luigi` on the host, and then
    failed every other user's run with a traceback (exit 40); and, keyed on the command line alone, it refused a
    second deployment's run of the same command (a shared install's cron line) as "already running" (exit 10)."""
    import hashlib
    import tempfile

    try:
        where = config.lake_dir()
    except ValueError:  # a lake setting the run refuses in its own words, later
        where = ""
    digest = hashlib.sha256(where.encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"luigi-{os.getuid()}-{digest}")


def watch_the_lock() -> None:
    """Wrap Luigi's pid lock (once) so that a refusal notes the processes that hold it (see lock_refusal); its
    folder defaults to `default_lock_dir()`."""
    import luigi.lock

    settings = luigi.configuration.get_config()
    if not any(settings.has_option("core", name) for name in ("lock_pid_dir", "lock-pid-dir")):
        if not settings.has_section("core"):
            settings.add_section("core")
        settings.set("core", "lock_pid_dir", default_lock_dir())

    acquire = luigi.lock.acquire_for
    if getattr(acquire, "notes_refusal", False):
        return

    @functools.wraps(acquire)
    def acquire_for(pid_dir: str, *args: Any, **kwargs: Any) -> bool:
        global _refused_by
        taken = acquire(pid_dir, *args, **kwargs)
        if not taken:
            _refused_by = _lock_holders(pid_dir)
        return taken

    acquire_for.notes_refusal = True  # type: ignore[attr-defined]
    luigi.lock.acquire_for = acquire_for


def _lock_holders(pid_dir: str) -> list[int]:
    """The other live processes running this command line that Luigi's pid file under `pid_dir` lists."""
    import luigi.lock

    _, mine, pid_file = luigi.lock.get_info(pid_dir)
    try:
        with open(pid_file, encoding="utf-8") as listed:
            pids = {int(line) for line in listed.read().split() if line.isdigit()}
    except OSError:
        return []
    return sorted(pid for pid in pids if pid != os.getpid() and luigi.lock.getpcmd(pid) == mine)


def is_luigi_cli() -> bool:
    """Whether this process is the `luigi` command line (the console script or `python -m luigi`)."""
    argv0 = sys.argv[0] if sys.argv else ""
    return "luigi.cmdline" in sys.modules and (
        os.path.basename(argv0) == "luigi" or argv0.endswith(os.path.join("luigi", "__main__.py")))
