"""soda-core set up for a pipeline process: what it must not do, and what it need not do twice.

Imported by `pipeline.quality.soda` before anything else of soda-core (`soda.scan` reads the telemetry
setting when it is imported). Each adaptation below says what soda-core 3.x does and why it is
changed; each is process-wide and leaves soda-core's results as they were:

- no usage telemetry, no settings file read or written (`~/.soda`, `/tmp/.soda`), and no `.env` file read over
  the environment;
- no pandas import to ask whether a metric value is a pandas value;
- a text holding only plain `${name}` references rendered by substitution, as Jinja renders it; any other
  `${...}` text's Jinja template compiled once; a check class's signature read once;
- a SodaCL file's text parsed as YAML once, ahead of the gate (`parse_ahead`), each scan's copy unpickled;
- the modules a first scan would import, imported here (the task processes inherit them).
"""
from __future__ import annotations

import copy
import functools
import importlib
import importlib.util
import inspect
import logging
import os
import pickle
import re
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from soda.common.config_helper import ConfigHelper

# soda-core's settings (telemetry, a cookie id) come from the first of ~/.soda, ./.soda and /tmp/.soda that
# exists, and when none does it WRITES the defaults (telemetry on) into the first it can create. A user without a
# writable HOME or folder made /tmp/.soda (mode 0700), and every other user's gate then failed on it:
# PermissionError on /tmp/.soda/config.yml, no date published. The pipeline's soda-core reads and writes no file:
# its one instance holds these settings in memory.
_settings = object.__new__(ConfigHelper)
_settings._ConfigHelper__config = {"send_anonymous_usage_stats": False, "user_cookie_id": "none"}
_settings.config_path = os.devnull  # were anything to write its settings, nothing is kept
ConfigHelper._ConfigHelper__instance = _settings

import soda.common.env_helper as _soda_env  # noqa: E402
import soda.common.parser as _soda_parser  # noqa: E402
from soda.common.jinja import Jinja as _Jinja  # noqa: E402
from soda.sodacl import sodacl_parser as _sodacl_parser  # noqa: E402

logger = logging.getLogger(__name__)

# Every soda-core Scan() calls python-dotenv's load_dotenv(override=True), which walks up from
# soda's own install folder (.venv inside this repository) and loads the first `.env` it finds over
# the process environment. This repository's `.env` is docker compose's credentials file (README
# "Docker compose"): it must never replace ECOMM_PG_DSN, PG* or anything else in a gate or publish
# process. The pipeline takes its settings from the environment and luigi.cfg only.
_soda_env.load_dotenv = lambda *args, **kwargs: False

# soda-core converts a metric value that is neither an int nor a Decimal (a freshness timestamp, a
# user-defined metric's float) by asking whether it is a numpy or pandas value, and to ask it imports
# pandas (soda.execution.metric.numeric_query_metric): ~0.2 s of CPU and ~40 MiB in the first scan of
# a process. DuckDB and psycopg return plain Python values, so while pandas is not imported the answer
# is no without importing it: soda then keeps the value as it came, as it does where pandas is not
# installed. Nothing the pipeline runs imports pandas (tests/test_warmup.py).
from soda.execution.metric import numeric_query_metric as _numeric_query_metric  # noqa: E402


def _find_spec_unless_pandas(name: str, package: str | None = None) -> Any:
    if name == "pandas" and "pandas" not in sys.modules:
        return None
    return importlib.util.find_spec(name, package)


_numeric_query_metric.find_spec = _find_spec_unless_pandas

# soda-core compiles a Jinja template for every string holding `${` each time it resolves one: when
# the SodaCL file is parsed, again when a check's query runs, and for each result's rule text
# (`pipeline.quality.soda._rule_text`): a gate compiled 106 templates of 51 distinct texts. The
# SodaCL parser also asks, for each argument of each metric check, whether the check class's
# constructor takes it, with `inspect.signature` each time: 1,292 signatures of a handful of classes
# a gate. A compiled template depends on its text and the environment only (variables and the
# environment's values are read when it renders, and it renders in several threads at once), and a
# constructor's signature does not change: each is worked out once per process (the gate alone on a
# 100K/1M day: 2.19 -> 1.99 CPU s). The parser's module gets an `inspect` whose `signature`
# remembers; everything else is the real module.
_compile = _Jinja.environment.from_string


@functools.lru_cache(maxsize=4096)
def _template(source: str) -> Any:
    return _compile(source)


def _from_string_once(source: Any, globals: Any = None, template_class: Any = None) -> Any:  # noqa: A002 - Jinja's name
    if globals is not None or template_class is not None or not isinstance(source, str):
        return _compile(source, globals, template_class)
    return _template(source)


_Jinja.environment.from_string = _from_string_once

# A text whose only Jinja syntax is plain `${name}` references (every `${...}` text in checks/) renders as its
# literal parts joined with each name's value, looked up as soda-core's Jinja context looks it up: the process
# environment first, then the variables (`env_var` is soda-core's function, any other name Jinja's globals or
# undefined: those go through Jinja). Jinja also drops one trailing newline of the text and normalises `\r`
# newlines. Rendering so, neither compiled nor run through Jinja's runtime, saves the gate ~0.1 CPU s of its 206
# resolutions (tests/test_soda_variables.py compares both renderings for every text of checks/). Any other
# syntax (`{%`, `{#`, `{{`, filters, attributes, whitespace control, a constant such as `${true}`) goes to Jinja.
_resolve = _Jinja.resolve
_JINJA_WORDS = frozenset({"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if",
                          "else", "for", "recursive", "env_var"})


@functools.lru_cache(maxsize=4096)
def plain_parts(text: str) -> tuple[str, ...] | None:
    """`text` as literal parts (even places) and variable names (odd) when Jinja renders it by substitution alone;
    None when it holds other Jinja syntax."""
    if "\r" in text or "{%" in text or "{#" in text or "{{" in text:
        return None
    parts = _VARIABLE.split(text)
    if any("${" in part for part in parts[::2]) or not _JINJA_WORDS.isdisjoint(parts[1::2]):
        return None
    if parts[-1].endswith("\n"):  # Jinja's lexer drops one trailing newline (keep_trailing_newline is off)
        parts[-1] = parts[-1][:-1]
    return tuple(parts)


def _resolve_plainly(template: Any, variables: Any = None, environment: Any = None) -> Any:
    parts = plain_parts(template) if isinstance(template, str) and environment in (None, _Jinja.environment) else None
    if parts is None:
        return _resolve(template, variables, environment)
    given = variables if isinstance(variables, dict) else {}
    rendered = list(parts)
    for i in range(1, len(parts), 2):
        name = parts[i]
        if name in os.environ:
            rendered[i] = os.environ[name]
        elif name in given:
            rendered[i] = str(given[name])
        else:  # a global of Jinja's or undefined: Jinja says what it is
            return _resolve(template, variables, environment)
    return "".join(rendered)


_Jinja.resolve = staticmethod(_resolve_plainly)


@functools.lru_cache(maxsize=256)
def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(fn)


_remembering_inspect = types.ModuleType("inspect")
_remembering_inspect.__dict__.update(vars(inspect))
_remembering_inspect.signature = _signature  # type: ignore[attr-defined]
if getattr(_sodacl_parser, "inspect", None) is inspect:  # a soda-core release that changed it: left as it is
    _sodacl_parser.inspect = _remembering_inspect

# soda-core parses each SodaCL file with ruamel's round-trip YAML loader (pure Python, kept for the
# line numbers its messages cite): ~0.2 s of CPU for a gate's files, in its scan threads, where only
# one thread runs Python at a time. The parse depends on the file's text only (`${...}` variables are
# rendered later, per scan): each text is parsed once per process and every scan gets its own copy
# (soda-core keeps the parsed file as its location context). The `luigi` process parses the checks
# files while its first tasks run (`parse_ahead`, from pipeline.tasks.warmup), so each date's gate
# and publish process inherits them.
# The loader and its error are the parser module's own (ruamel.yaml, soda-core's dependency).
_parse_yaml_str = _soda_parser.Parser._parse_yaml_str
_YAMLError = _soda_parser.MarkedYAMLError


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> Any:
    yaml = _soda_parser.YAML()
    yaml.preserve_quotes = True  # as soda-core's own loader
    return yaml.load(text)


# Each scan's copy of a parsed file is unpickled from bytes kept beside the parse, not deep-copied: ruamel's
# __deepcopy__ copies every node's attributes in Python (0.05-0.06 CPU s for a gate's files), unpickling the same
# nodes with their line and column marks is a tenth of that. A deep copy also gave each node an empty comment
# holder the parse did not have; the unpickled copy is the parse as it was. Anything pickle refuses (no loader
# makes such a node today) is deep-copied as before.
@functools.lru_cache(maxsize=256)
def _pickled(text: str) -> bytes | None:
    try:
        return pickle.dumps(_parsed(text), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def _copy_of_parse(text: str) -> Any:
    pickled = _pickled(text)
    return pickle.loads(pickled) if pickled is not None else copy.deepcopy(_parsed(text))


def parsed_checks(text: str) -> Any:
    """A SodaCL file's text as soda-core parses it (its own copy), for code that reads a checks file's attributes."""
    return _copy_of_parse(text)


_VARIABLE = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")  # `${name}`, not `${ env_var('X') }`


@functools.lru_cache(maxsize=256)
def variables_used(text: str) -> frozenset[str]:
    """The `${name}` variables a SodaCL file's checks use, in its keys and values (comments are not read; a file
    that is not YAML uses none here: its scan reports it)."""
    try:
        parsed = _parsed(text)
    except _YAMLError:
        return frozenset()
    return frozenset(name for node in strings(parsed) for name in _VARIABLE.findall(node))


def strings(node: Any) -> Iterator[str]:
    """Every text of a parsed SodaCL file, keys and values."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack += [*node.keys(), *node.values()]
        elif isinstance(node, list):
            stack += node
        elif isinstance(node, str):
            yield node


def _parse_yaml_str_once(self: _soda_parser.Parser, yaml_str: str) -> Any:
    try:
        file_dict = _copy_of_parse(yaml_str)
    except _YAMLError:  # not YAML: soda-core's own parse reports it, with its location
        return _parse_yaml_str(self, yaml_str)
    self.path_stack.set_antlr_collection_in_file_path_element(file_dict)
    return file_dict


_soda_parser.Parser._parse_yaml_str = _parse_yaml_str_once


def parse_ahead(paths: Iterable[Path]) -> None:
    """Parse SodaCL files now, for the scans of this process and of the processes it forks later."""
    for path in paths:
        try:
            _pickled(path.read_text(encoding="utf-8"))  # parsed, and the bytes each scan's copy is unpickled from
        except (OSError, _YAMLError):  # the scan that reads it reports it
            continue


# What soda-core imports only when a scan first runs (the SodaCL parser and its ANTLR runtime, the
# DuckDB and Postgres data sources, check and query kinds, Jinja; ~150 modules). Imported here, once:
# Luigi runs every task in a process forked from the worker, which has imported this module (through
# pipeline.quality.soda) while checking completeness, so each date's gate and publish task inherits
# them instead of importing them again (measured on a 100K/1M day: the first gate of a process
# 0.63-0.70 s -> 0.44-0.48 s).
_SCAN_MODULES = (
    "jinja2", "soda.common.jinja", "soda.configuration.configuration", "soda.execution.data_source_manager",
    "soda.execution.data_source_scan", "soda.execution.telemetry", "soda.sodacl.sodacl_parser",
    "soda.sodacl.anomaly_metric_check_cfg", "soda.sodacl.change_over_time_metric_check_cfg",
    "soda.sodacl.user_defined_failed_rows_check_cfg", "soda.sodacl.user_defined_failed_rows_expression_check_cfg",
    "soda.execution.check.schema_check", "soda.execution.check.metric_check", "soda.execution.check.freshness_check",
    "soda.execution.check.row_count_comparison_check",
    "soda.execution.check.user_defined_failed_rows_expression_check", "soda.execution.metric.column_metrics",
    "soda.execution.metric.schema_metric", "soda.execution.query.duplicates_query",
    "soda.execution.query.aggregation_query", "soda.execution.query.schema_query", "soda.cloud.dbt_config",
    "soda.sampler.soda_cloud_sampler", "soda.data_sources.duckdb_data_source",
    "soda.data_sources.postgres_data_source",
)
for _module in _SCAN_MODULES:
    try:
        importlib.import_module(_module)
    except ImportError:  # a soda-core release that moved one: only the warm-up is lost
        logger.debug("soda module %s not found; it is imported on first use instead", _module)
