"""Where a setting's value came from, so that a message about a bad one names it as it was given and says where to fix
it: the `luigi` command line's option (`--duckdb-temp-directory 'relative/tmp'`), which Luigi reads before the files,
or the setting in luigi.cfg (`[duckdb] temp_directory = 'relative/tmp'`)."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

IN_FILES = "in luigi.cfg (or in the file LUIGI_CONFIG_PATH names)"

# The settings an environment variable sets whatever luigi.cfg and the command line say (pipeline.config,
# pipeline.serving.embedded read the variable first; a blank one counts as unset).
ENVIRONMENT = {
    ("paths", "data_dir"): "ECOMM_DATA_DIR",
    ("paths", "lake_dir"): "ECOMM_LAKE_DIR",
    ("catalog", "products_url"): "ECOMM_PRODUCTS_URL",
    ("catalog", "users_url"): "ECOMM_USERS_URL",
    ("landing", "ready_marker"): "ECOMM_READY_MARKER",
    ("postgres", "embedded_dir"): "ECOMM_PG_DATA",
    ("postgres", "embedded_port"): "ECOMM_PG_PORT",
    ("postgres", "database"): "ECOMM_PG_DATABASE",
}


FOLDERS = {("paths", "data_dir"), ("paths", "lake_dir"), ("postgres", "embedded_dir")}  # relative: to the process's cwd


def from_environment(section: str, name: str) -> str | None:
    """The value the environment gives `[section] name` in this process, the one used (None: no variable sets it); a
    relative folder made absolute, as the process took it (the option's own relative value means the checkout's)."""
    variable = ENVIRONMENT.get((section, name))
    value = (os.environ.get(variable, "").strip() or None) if variable else None
    if value and (section, name) in FOLDERS and "://" not in value:
        return os.path.abspath(os.path.expanduser(value))
    return value


def overridden() -> list[str]:
    """One line per option this process's `luigi` command line gave that an environment variable overrides (the
    variable wins: see ENVIRONMENT); values are not shown (a catalog URL may hold a key)."""
    return [f"{option(section, name)} on the command line is overridden by {variable}, set in the environment (it"
            f" wins): the run uses the variable's value; unset {variable} to use the option"
            for (section, name), variable in ENVIRONMENT.items()
            if given(section, name) and from_environment(section, name) is not None]


def option(section: str, name: str) -> str:
    """The command line's option of `[section] name`: `--duckdb-temp-directory`."""
    return f"--{section}-{name}".replace("_", "-")


def given_value(parser: object, section: str, name: str) -> object:
    """The value a parsed `luigi` command line (a CmdlineParser) gave `[section] name`; None: not given."""
    value = getattr(getattr(parser, "known_args", None), f"{section}_{name}", None)
    return None if value is False else value  # False: an implicit flag's (store_true) default, not given


def given(section: str, name: str) -> bool:
    """Whether this process's `luigi` command line gave `[section] name` (Luigi's value then, whatever the files say)."""
    from luigi.cmdline_parser import CmdlineParser

    return given_value(CmdlineParser.get_instance(), section, name) is not None


def named(section: str, name: str, raw: object) -> str:
    """A setting's value as it was given: `--duckdb-threads '-1'`, else `[duckdb] threads = '-1'`."""
    return f"{option(section, name)} {raw!r}" if given(section, name) else f"[{section}] {name} = {raw!r}"


def fix_where(section: str, name: str) -> str:
    """Where its value is fixed: `on the command line`, else IN_FILES."""
    return "on the command line" if given(section, name) else IN_FILES


@contextlib.contextmanager
def luigi_parser(parser: Any) -> Iterator[None]:
    """Luigi's current command-line parser set to `parser` inside (None: none, the settings are the files'
    alone, as a new command reads them); the one before is restored after."""
    from luigi.cmdline_parser import CmdlineParser

    before, CmdlineParser._instance = CmdlineParser._instance, parser
    try:
        yield
    finally:
        CmdlineParser._instance = before
