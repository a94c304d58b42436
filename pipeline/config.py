"""Settings: non-secret values from luigi.cfg sections, overridable by ECOMM_* environment variables.

Every setting is read through a `luigi.Config` class named after its `luigi.cfg` section. The
environment wins over the file so that automation (tests, CI, containers) never edits files.
Secrets (passwords) never live here: they come from ECOMM_PG_DSN, the libpq PG* variables or .pgpass.

The repository's luigi.cfg is also the defaults of a run that has no luigi.cfg of its own (an installed
wheel run from any directory): importing this module fills in every option that no configuration
file Luigi read sets. Luigi's own defaults would otherwise apply, and some are wrong for the
pipeline: [retcode] 0 for a failed run, [RangeDaily] days_back 100 (older dates silently skipped) and
task_limit 50 (a longer backfill's newer dates silently left unrun), [worker] keep_alive off (no retries).
Any file Luigi reads (/etc/luigi/luigi.cfg, ./luigi.cfg, LUIGI_CONFIG_PATH) still wins, option by option.
"""
from __future__ import annotations

import configparser
import datetime as dt
import functools
import os
from typing import Any
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import luigi
import luigi.configuration

from pipeline import resources
from pipeline.setting_source import fix_where, from_environment, named


def _fill_in_default_config(path: Path = resources.DEFAULT_CONFIG) -> None:
    """Set each option of `path` that Luigi's configuration lacks (files Luigi read keep their values)."""
    if not path.is_file():
        return
    defaults = configparser.ConfigParser(interpolation=None)
    defaults.optionxform = str  # type: ignore[assignment,method-assign]  # case-sensitive, as Luigi's parser
    defaults.read(path, encoding="utf-8")
    config = luigi.configuration.get_config()
    older = _older_names()
    for section in defaults.sections():
        if not config.has_section(section):
            config.add_section(section)
        for option, value in defaults.items(section, raw=True):
            # a file that sets it under Luigi's older name ([core] error-email for [email] receiver) keeps it:
            # Luigi reads the name filled in here first
            if not config.has_option(section, option) and not any(
                    config.has_option(*name) for name in older.get((section, option), ())):
                config.set(section, option, value)


def _older_names() -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Luigi's own settings that it also reads under an older name (a parameter's `config_path`): (section, option)
    -> [(older section, older option)], e.g. ("email", "receiver") -> [("core", "error-email")]."""
    import luigi.interface  # noqa: F401 - each registers the settings classes it defines
    import luigi.notifications  # noqa: F401
    import luigi.worker  # noqa: F401
    from luigi.task_register import Register

    older: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for cls in list(Register._reg):
        if isinstance(cls, type) and issubclass(cls, luigi.Config):
            for name, param in cls.get_params():
                if path := getattr(param, "_config_path", None):
                    older.setdefault((cls.get_task_family(), name), []).append((path["section"], path["name"]))
    return older


def cores() -> int:
    """The processors this process may run on (a CPU affinity mask or a container's cpuset counts)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


# A date has two heavy chains (events, orders) that gain from running side by side; a third worker
# would mostly add another DuckDB working set (up to [duckdb] memory_limit) to the date's memory peak,
# which the max-day budget (1.5 GiB with Postgres) is measured with two. Each task's DuckDB uses every
# core ([duckdb] threads = 0 shares them out among the workers). A backfill of several dates on a bigger
# machine passes --workers N.
MAX_DEFAULT_WORKERS = 2


def _fill_in_default_workers() -> None:
    """[core] workers, Luigi's number of task processes, defaults to the machine's cores (at most 2).

    Luigi's own default is 1: a date's tasks would run one after another on a machine with idle cores.
    A configuration file or `--workers N` still wins; `workers = 0` in a file means this default (Luigi
    would start no worker process and wait for ever).
    """
    config = luigi.configuration.get_config()
    if not config.has_section("core"):
        config.add_section("core")
    if not config.has_option("core", "workers") or config.get("core", "workers").strip() in ("", "0"):
        config.set("core", "workers", str(min(cores(), MAX_DEFAULT_WORKERS)))  # 0, as [duckdb] threads: the default


_fill_in_default_config()
_fill_in_default_workers()


@functools.lru_cache(maxsize=1)
def check_workers() -> None:
    """ValueError for `--workers 0` (or less) on the command line: Luigi would start no task process and wait for ever.

    (`workers = 0` in a file means the default: `_fill_in_default_workers`.) Once per process: every
    task of a backfill asks.
    """
    import luigi.interface  # noqa: PLC0415 - luigi's own module; [core] workers or the command's --workers

    workers = luigi.interface.core().workers
    if workers < 1:
        raise ValueError(f"--workers {workers} starts no task process, so the run would wait for ever: give 1 or"
                         f" more, or leave it out for the default (the machine's cores, at most {MAX_DEFAULT_WORKERS})")


@functools.lru_cache(maxsize=1)
def read_sections() -> None:
    """Read every settings section the pipeline defines (a NamedBadSettings luigi.Config) now.

    Luigi reads a section, its values in the files and its options on the command line (`--publish-attempts 4`), when
    a task first uses it: a value it cannot read failed the first task that used it, after every task before it had
    run (a bad `--publish-attempts`, or `[publish] attempts = abc`, failed the preloads once the day was landed,
    staged and modelled, exit 30). The tasks call this while Luigi parses the command line, where a bad option rejects
    the command (exit 40), and DailyPipeline while Luigi schedules it, where a bad value in a file is a BadSetting
    (exit 35), each one line (`pipeline.tasks.cli_errors`) before anything runs. A section whose bad value is a
    warning says `read_before_a_run = False` ([compaction]). Once per process (every task of a backfill asks): ~10 ms.
    A name nothing reads and a value no task could use are refused with them (pipeline.tasks.publish.check_settings).
    """
    pending = list(NamedBadSettings.__subclasses__())
    while pending:
        section = pending.pop()
        pending.extend(section.__subclasses__())
        if getattr(section, "read_before_a_run", True):
            section()


class BadSetting(ValueError):
    """A setting in luigi.cfg (or in LUIGI_CONFIG_PATH's file) that cannot be read; names section, option, value."""


_EXPECTED = {luigi.BoolParameter: "expected true or false", luigi.IntParameter: "expected a whole number",
             luigi.FloatParameter: "expected a number"}


def expected(param: luigi.Parameter | None, error: BaseException) -> str:
    """Why a value cannot be read as `param`'s: what it expects (`expected a whole number`), else the error."""
    return next((text for kind, text in _EXPECTED.items() if type(param) is kind), str(error))


def unreadable_setting(section: str, option: str, raw: str, reason: str) -> str:
    """The one line for a setting's value that cannot be read: section, option, value, why, where to fix it."""
    return (f"{named(section, option, raw)} is not valid ({reason}): fix it {fix_where(section, option)}, or"
            " remove it for the default")


def bad_setting(config_class: type[luigi.Config]) -> BadSetting | None:
    """The BadSetting behind luigi's error reading `config_class`'s section (None: no value in the files is bad)."""
    section = config_class.get_task_family()
    conf = luigi.configuration.get_config()
    for name, param in config_class.get_params():
        for option in dict.fromkeys((name, name.replace("_", "-"))):
            if not conf.has_option(section, option):
                continue
            try:
                raw = conf.get(section, option)
            except configparser.InterpolationError:  # Luigi's files expand %(name)s, so a lone % cannot be read
                return BadSetting(unreadable_setting(section, option, conf.get(section, option, raw=True),
                                                     "a % is written %% in luigi.cfg"))
            try:
                param.parse(raw)
            except Exception as err:  # noqa: BLE001 - whatever the parameter's parse raises is the reason
                return BadSetting(unreadable_setting(section, option, raw, expected(param, err)))
    return None


class NamedBadSettings:
    """Mixin for a luigi.Config: a value of its section that cannot be parsed raises BadSetting (see bad_setting)."""

    @classmethod
    def get_param_values(cls, params: Any, args: Any, kwargs: Any) -> Any:
        try:
            return super().get_param_values(params, args, kwargs)  # type: ignore[misc]
        except ValueError as err:
            named = bad_setting(cls)  # type: ignore[arg-type]
            if named is None:
                raise
            raise named from err


class paths(NamedBadSettings, luigi.Config):  # noqa: N801 - luigi maps the class name to the [paths] section
    """[paths]: where incoming files are read and where the lake lives."""

    data_dir = luigi.Parameter(default="data/incoming")
    lake_dir = luigi.Parameter(default="lake")


class duckdb(NamedBadSettings, luigi.Config):  # noqa: N801
    """[duckdb]: resources for the DuckDB engine that runs the models."""

    memory_limit = luigi.Parameter(default="1GB")
    threads = luigi.IntParameter(default=0)  # 0: the cores, shared out among the Luigi workers (see below)
    temp_directory = luigi.Parameter(default="")  # where DuckDB spills; empty: spill.folder's default


_in_forked_process = False


def _note_forked() -> None:
    global _in_forked_process
    _in_forked_process = True


if hasattr(os, "register_at_fork"):  # Luigi's workers run each task in a process forked from the worker
    os.register_at_fork(after_in_child=_note_forked)


def duckdb_threads() -> int:
    """[duckdb] threads; 0: every core, or in a forked task process the cores divided among the workers.

    With `workers = 2` on two cores, two tasks run at once for most of a date: a DuckDB pool of two
    threads in each made four threads contend for two cores (measured on a 100K/1M day, threads = 1
    cut the command's CPU by ~0.5 s and its wall time by ~1 s; docs/performance.md). A process not
    forked by a worker (`python -m pipeline ...`, an in-process `luigi.build`'s own process) keeps
    every core.
    """
    threads = int(duckdb().threads)
    if threads < 0:  # DuckDB refuses it; 0 already means "the cores"
        raise BadSetting(unreadable_setting("duckdb", "threads", str(threads), "expected 0 or more: 0 is every core"))
    if threads > 0:
        return threads
    if not _in_forked_process:
        return cores()
    import luigi.interface  # noqa: PLC0415 - luigi's own module; [core] workers or the command's --workers

    workers = max(1, int(luigi.interface.core().workers))
    return max(1, cores() // workers)


class catalog(NamedBadSettings, luigi.Config):  # noqa: N801
    """[catalog]: the products/users HTTP API (DummyJSON contract); empty URL = file fallback."""

    products_url = luigi.Parameter(default="")
    users_url = luigi.Parameter(default="")
    weekday = luigi.IntParameter(default=0)  # Monday: the API snapshot is landed once a week
    timeout_seconds = luigi.FloatParameter(default=10.0)
    retries = luigi.IntParameter(default=3)
    backoff_seconds = luigi.FloatParameter(default=2.0)
    page_size = luigi.IntParameter(default=100)
    # The landing task's own attempts at an API that keeps failing transiently (the client's per-request
    # retries used up), this many seconds apart: Luigi runs catalog tasks once (retry_count = 1).
    attempts = luigi.IntParameter(default=3)
    retry_delay_seconds = luigi.FloatParameter(default=300.0)


class landing(NamedBadSettings, luigi.Config):  # noqa: N801
    """[landing]: rules for the incoming files (see docs: one file per source and date, the ready marker)."""

    # A file name the sender writes into a date's folder once its files are complete (e.g. _SUCCESS);
    # empty = not required. While it is missing the date is not landed (exit 20, missing data).
    ready_marker = luigi.Parameter(default="")


class model(NamedBadSettings, luigi.Config):  # noqa: N801
    """[model]: business rules used by the staging and warehouse SQL."""

    future_tolerance_hours = luigi.IntParameter(default=2)
    late_window_days = luigi.IntParameter(default=30)  # older timestamps are quarantined as ancient
    # a cancelled or refunded order (a status change of an earlier order) is accepted this far back instead
    status_change_window_days = luigi.IntParameter(default=180)
    sold_statuses = luigi.Parameter(default="paid")  # comma separated; net_revenue counts these
    # IANA name: the zone of timestamps without an offset, of date_id and of the load date's boundaries
    business_timezone = luigi.Parameter(default="UTC")
    # characters; longer ids are quarantined (validated by pipeline.transform.staging.max_id_length)
    max_id_length = luigi.IntParameter(default=256)


def _env_or(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _named_folder(value: str, option: str, variable: str, what: str) -> str:
    """`value`, unless it is blank: an empty `[paths] lake_dir =` made the current directory the lake, so a run from
    another directory started a second one beside the first."""
    if not value.strip():
        raise BadSetting(f"[paths] {option} is empty: name {what} there, or set {variable}")
    return value


def _resolve(path: str) -> str:
    if "://" in path:  # object storage roots (s3://...) are used as they are
        return path.rstrip("/")
    return str(Path(path).expanduser().absolute())


def data_dir() -> str:
    """The incoming-files root: ECOMM_DATA_DIR, else [paths] data_dir (BadSetting: empty)."""
    return _resolve(_named_folder(_env_or("ECOMM_DATA_DIR", paths().data_dir), "data_dir", "ECOMM_DATA_DIR",
                                  "the incoming files' folder"))


def lake_dir() -> str:
    """The lake root: ECOMM_LAKE_DIR, else [paths] lake_dir (BadSetting: empty, a file, or a URL without a bucket)."""
    value = _named_folder(_env_or("ECOMM_LAKE_DIR", paths().lake_dir), "lake_dir", "ECOMM_LAKE_DIR",
                          "the lake's folder (or s3://bucket/prefix)")
    root = _resolve(value)
    _check_lake(value, root, bool(os.environ.get("ECOMM_LAKE_DIR", "").strip()))
    return root


LAKE_SCHEMES = ("s3://",)  # the object stores a lake may be on (pipeline.lake.s3); anything else is a folder


@functools.lru_cache(maxsize=8)
def _check_lake(value: str, root: str, from_environment: bool) -> None:
    named = f"ECOMM_LAKE_DIR={value!r}" if from_environment else f"[paths] lake_dir = {value!r}"
    if "://" in value and not value.startswith(LAKE_SCHEMES):  # gs://, s3a:// ... became a local folder "gs:"
        raise BadSetting(f"{named} is not a lake the pipeline can write: give a folder or s3://bucket/prefix"
                         " (any S3-compatible store, see docs/scaling-out.md)")
    bucket, _, key = value.split("://", 1)[1].rstrip("/").partition("/") if "://" in value else ("-", "", "")
    if not bucket:
        raise BadSetting(f"{named} names no bucket: give s3://bucket or s3://bucket/prefix")
    if "://" not in value and set(root) & set("*?[]"):  # a folder's readers glob it: a neighbour's files, or none
        raise BadSetting(f"{named}: the lake's readers take its path {root!r} as a glob pattern, so it may not hold"
                         " * ? [ ] (they read another folder's lake beside it, or none): name or link it without them")
    if set(key) & set("*?[]") or (key and {"", ".", ".."} & set(key.split("/"))):  # globs; what S3 keys never hold
        raise BadSetting(f"{named}: the lake's readers take its keys as glob patterns and S3 keys as they are, so its"
                         " prefix may not hold * ? [ ] nor an empty, . or .. part (//, /./): name it without them")
    if "://" not in value and os.path.exists(root) and not os.path.isdir(root):
        raise BadSetting(f"{named} is a file, not a folder: give the lake's folder (made on first use) or"
                         " s3://bucket/prefix")


def products_url() -> str:
    """The products API base URL: ECOMM_PRODUCTS_URL, else [catalog] products_url (empty = files)."""
    return _api_url("ECOMM_PRODUCTS_URL", "products_url", catalog().products_url)


def users_url() -> str:
    """The users API base URL: ECOMM_USERS_URL, else [catalog] users_url (empty = files)."""
    return _api_url("ECOMM_USERS_URL", "users_url", catalog().users_url)


def _api_url(variable: str, option: str, configured: str) -> str:
    """A catalog API's base URL, empty or http(s) (BadSetting naming the variable or option otherwise)."""
    url = _env_or(variable, configured).strip()
    if url and not url.lower().startswith(("http://", "https://")):
        shown = url.split("?", 1)[0] + ("?..." if "?" in url else "")  # a query may hold a key: not repeated
        named = f"{variable}={shown!r}" if os.environ.get(variable, "").strip() else f"[catalog] {option} = {shown!r}"
        raise BadSetting(f"{named} is not an http(s) URL of a DummyJSON-style API (e.g."
                         f" https://dummyjson.com/{option.removesuffix('_url')}); leave it empty to read catalog files")
    return url


def ready_marker() -> str:
    """The ready marker's file name: ECOMM_READY_MARKER, else [landing] ready_marker (empty = not required)."""
    name = _env_or("ECOMM_READY_MARKER", landing().ready_marker).strip()
    if name and (name in (".", "..") or "/" in name or "\\" in name or "\x00" in name):
        given = f"ECOMM_READY_MARKER={name!r}" if from_environment("landing", "ready_marker") else named(
            "landing", "ready_marker", name)
        raise BadSetting(f"{given} is not a plain file name (e.g. _SUCCESS): name the file the sender writes")
    return name


def business_zone() -> ZoneInfo:
    """[model] business_timezone as a time zone (BadSetting naming the setting if it names none)."""
    name = str(model().business_timezone).strip()
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise BadSetting(f"[model] business_timezone = {name!r} is not an IANA time zone name; set it in"
                         " luigi.cfg to one such as UTC, Europe/Berlin or America/New_York") from None


def business_date(now: dt.datetime | None = None) -> dt.date:
    """The date of `now` (default: the current time) in [model] business_timezone."""
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(business_zone()).date()


def not_after_today(day: dt.date) -> dt.date:
    """`day`, if it is not after today's business date (ValueError otherwise: its files cannot be complete).

    A date after today (a typo in the year) would only fail on its missing files, after landing the
    catalog API's snapshot of a week that has not begun, which that week's own run would never fetch again.
    """
    if day > (today := business_date()):
        raise ValueError(f"{day} is after today ({today} in [model] business_timezone"
                         f" {model().business_timezone}): a date runs once its files are complete")
    return day


def sold_statuses() -> list[str]:
    """Order statuses whose revenue counts as sold (net_revenue)."""
    return [s.strip().lower() for s in model().sold_statuses.split(",") if s.strip()]
