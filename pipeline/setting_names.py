"""The section and option names the configuration files may hold: a misspelled one (`[chekcs]`, `memroy_limit`) is
refused with one line, not ignored for the default.

Luigi reads a setting only by its name, so a name nothing reads was silently a default (and Luigi's
UnconsumedParameterWarning, if any, named no file). A name is known when Luigi or the pipeline reads it: a
parameter of a registered luigi Config or Task class under its family (`[duckdb] memory_limit`,
`[RangeDaily] days_back`), an older name Luigi still reads for one (`[core] default-scheduler-host`, a
parameter's config_path), or one of the options Luigi reads raw (RAW_OPTIONS). Luigi takes each name with
dashes for underscores too.
"""
from __future__ import annotations

import configparser
import difflib
import importlib
import os
import re
from collections.abc import Iterable

import luigi.configuration

# The options Luigi's own code reads straight from the files, not through a Config class (luigi 3.x: setup_logging.py,
# __init__.py, rpc.py, db_task_history.py).
RAW_OPTIONS = {
    "core": ("no_configure_logging", "logging_conf_file", "autoload_range", "rpc_connect_timeout",
             "rpc_retry_attempts", "rpc_retry_wait", "rpc_log_retries"),
    "task_history": ("db_connection",),
}
# Sections whose option names are the user's: [resources] names a resource (its limit), [logging] a dictConfig's keys.
FREE_SECTIONS = ("resources", "logging")
# The modules that define settings classes, the pipeline's and Luigi's; a run may read one without importing it first
# (the report's [report], luigid's [scheduler], the failure mail's [email] / [smtp], the metrics' [prometheus]).
SETTINGS_MODULES = ("pipeline.tasks", "pipeline.tasks.freshness", "pipeline.report.settings",
                    "luigi.interface", "luigi.worker", "luigi.scheduler", "luigi.notifications", "luigi.batch_notifier",
                    "luigi.retcodes", "luigi.execution_summary", "luigi.tools.range")
# Sections of Luigi's whose module a run imports only when the files hold them (luigid's [cors] is luigi.server's,
# which imports tornado, [prometheus] prometheus-client: ~30-40 ms a run otherwise).
SECTION_MODULES = {"cors": "luigi.server", "prometheus": "luigi.contrib.prometheus_metric"}


def _spellings(name: str) -> set[str]:
    return {name, name.replace("_", "-"), name.replace("-", "_")}


def known_names(sections: Iterable[str] = ()) -> dict[str, set[str]]:
    """Each section Luigi or the pipeline reads -> the option names it reads there (every spelling Luigi takes);
    `sections`: the files' sections, whose SECTION_MODULES are imported too."""
    for module in (*SETTINGS_MODULES, *(SECTION_MODULES[name] for name in sections if name in SECTION_MODULES)):
        try:
            importlib.import_module(module)
        except ImportError:  # an optional dependency (prometheus-client) missing: its section is then read by none
            continue
    from luigi.task_register import Register  # noqa: PLC0415

    known: dict[str, set[str]] = {section: set().union(*map(_spellings, names)) for section, names in
                                  RAW_OPTIONS.items()}
    for cls in list(Register._reg):
        if not isinstance(cls, type) or not issubclass(cls, luigi.Task):
            continue
        options = known.setdefault(cls.get_task_family(), set())
        for name, param in cls.get_params():
            options |= _spellings(name)
            if path := getattr(param, "_config_path", None):
                known.setdefault(path["section"], set()).update(_spellings(path["name"]))
    return known


def _origin(section: str, option: str) -> str | None:
    """The last configuration file Luigi read that sets `[section] option` (the one whose value counts)."""
    parser = type(luigi.configuration.get_config())
    found = None
    for path in getattr(parser, "_config_paths", ()):
        one = configparser.RawConfigParser()
        one.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            one.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        if one.has_option(section, option):
            found = os.path.abspath(path)
    return found


def _closest(name: str, names: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def unknown_setting() -> str | None:
    """The one line for the first section or option in the configuration files that nothing reads (None: none)."""
    conf = luigi.configuration.get_config()
    if not isinstance(conf, configparser.ConfigParser):  # the TOML parser: its names are not checked
        return None
    known = known_names(conf.sections())
    defaults = set(conf.defaults())
    for section in conf.sections():
        if section in FREE_SECTIONS:
            continue
        options = [option for option in conf.options(section) if option not in defaults]
        if section not in known:
            if not options or _luigis(section):  # an empty section sets nothing; Luigi's own is not the pipeline's
                continue
            where = _origin(section, options[0])
            return (f"[{section}] is not a section the pipeline or Luigi reads{_closest(section, known)}:"
                    f" {_fix(where)}")
        for option in options:
            if option not in known[section]:
                where = _origin(section, option)
                return (f"[{section}] {option} is not an option of [{section}]{_closest(option, known[section])}:"
                        f" {_fix(where)}")
    return None


def _luigis(section: str) -> bool:
    """Whether Luigi's own code reads `[section]` (luigid's [datadog], contrib's [hdfs], [spark], ...: a machine-wide
    /etc/luigi/luigi.cfg may hold them for other pipelines): a Config class of that name, or the name quoted. Looked
    up in Luigi's source only for a section no imported class reads."""
    import luigi as package  # noqa: PLC0415

    pattern = re.compile(rf"""class {re.escape(section)}\(|["']{re.escape(section)}["']""")
    root = os.path.dirname(package.__file__)
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as source:
                    if pattern.search(source.read()):
                        return True
    return False


def _fix(where: str | None) -> str:
    file = f"in {where}" if where else "in luigi.cfg (or in the file LUIGI_CONFIG_PATH names)"
    return f"correct its name or remove it {file} (a name nothing reads would leave the default in use)"
