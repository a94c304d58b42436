"""The quality gate's what-to-do for a blocked date (`gate_fix`): which catalog (products, users) its blocking checks
are about, and the command that lands a fixed one: `restate --catalog KIND --date S`, S the snapshot covering the date.

A catalog snapshot is landed once, under its own date, and feeds later dates: a date its bad snapshot blocked is
fixed by restating that snapshot, not the date (`restate --date D` finds its daily files unchanged). A check is a
catalog's when its checks file says so (its SodaCL attributes `catalog`, or `source_table` naming the catalog's
staging table), when it checks the catalog's staging table, or when it checks a warehouse model that reads the
catalog's snapshots (directly or through a model that does) and no daily source's partition: dim_product, dim_user.
Nothing here lists those tables: the checks files and the models' SQL (`warehouse.inputs`) say which they are.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable
from typing import Any

from pipeline.ingest import incoming, landing
from pipeline.quality.results import BLOCKING, GATED_TABLES, NOT_EVALUATED, VIEWS
from pipeline.tasks.catalog_cover import covering_snapshot
from pipeline.tasks.remedies import (DAILY, FIX_CATALOG, FIX_FILE, GATE_EXAMPLE, THRESHOLD_OPTION, UNUSUAL_CATALOG,
                                     UNUSUAL_DAY, by_kind)
from pipeline.transform import staging, warehouse

STAGING_KINDS = {staging.staging_table(kind): kind for kind in incoming.CATALOG_SOURCES}
UNKNOWN_SNAPSHOT = "S"  # no snapshot covers the date (none incoming, no API): the command says what S is


@functools.lru_cache(maxsize=None)
def _attributes(table: str) -> dict[str, dict[str, Any]]:
    """A gated table's (or gate view's) checks by name: their SodaCL attributes (empty: none, or no such file)."""
    from pipeline.quality.gate_settings import checks_file
    from pipeline.quality.soda_setup import parsed_checks  # as soda-core reads the file (and kept for the process)

    layer = GATED_TABLES.get(table) or VIEWS.get(table)
    if layer is None or not (path := checks_file(layer, table)).is_file():
        return {}
    found: dict[str, dict[str, Any]] = {}
    for checks in (parsed_checks(path.read_text(encoding="utf-8")) or {}).values():
        for check in checks if isinstance(checks, list) else []:
            for spec in check.values() if isinstance(check, dict) else []:
                if isinstance(spec, dict) and spec.get("name"):
                    found[str(spec["name"])] = dict(spec.get("attributes") or {})
    return found


@functools.lru_cache(maxsize=None)
def _model_catalogs(table: str) -> frozenset[str] | None:
    """The catalogs a warehouse model reads the snapshots of, directly or through models that read no daily
    source's partition; None: it reads a daily source's own partition (its checks can be the daily file's)."""
    found: set[str] = set()
    for name in warehouse.inputs(table):
        spec = warehouse.lake_input(name)
        if spec.snapshots:
            found.add(STAGING_KINDS[spec.sources[0] if spec.layer == "audit" else spec.table])
        elif spec.layer == "warehouse":
            if (through := _model_catalogs(spec.table)) is None:  # e.g. dim_product reads the facts: the day's too
                return None
            found |= through
        else:  # a daily source's raw, staging or audit partition of the date
            return None
    return frozenset(found)


def check_catalogs(table: str, check: str) -> frozenset[str]:
    """The catalogs a check (its table's and its own name, as audit.dq_results keeps them) is about; empty: none."""
    attributes = _attributes(table).get(check, {})
    if attributes.get("catalog") in incoming.CATALOG_SOURCES:
        return frozenset([attributes["catalog"]])
    if (source := attributes.get("source_table")) is not None:
        return frozenset([STAGING_KINDS[source]]) if source in STAGING_KINDS else frozenset()
    if table in STAGING_KINDS:
        return frozenset([STAGING_KINDS[table]])
    return (_model_catalogs(table) or frozenset()) if table in warehouse.TABLES else frozenset()


def blocking_catalogs(checks: Iterable[tuple[str, str]]) -> tuple[list[str], bool]:
    """The catalogs the blocking checks (table, check name) are about, in order, and whether any of them is about
    none (a daily file's, or the day's data as a whole)."""
    kinds: set[str] = set()
    other = False
    for table, check in checks:
        found = check_catalogs(table, check)
        kinds |= found
        other = other or not found
    return [kind for kind in incoming.CATALOG_SOURCES if kind in kinds], other


def restate_commands(day: dt.date, kinds: Iterable[str]) -> list[str]:
    """`python -m pipeline restate --catalog KIND --date S` for each catalog, S its snapshot covering `day`."""
    return [f"python -m pipeline restate --catalog {kind} --date {covering(kind, day)}" for kind in kinds]


def restate_text(day: dt.date, kinds: Iterable[str]) -> str:
    """The commands of `restate_commands`, quoted and joined, saying what S is when no snapshot could be found."""
    commands = restate_commands(day, kinds)
    said = " and ".join(f"`{command}`" for command in commands)
    unknown = any(command.endswith(f" {UNKNOWN_SNAPSHOT}") for command in commands)
    return said + (" (S: the date in the name of its snapshot covering the date)" if unknown else "")


def covering(kind: str, day: dt.date) -> str:
    """The date of the catalog's snapshot covering `day` (from the API: the week's snapshot day), as text."""
    try:
        snapshot = covering_snapshot(kind, day)
    except (OSError, ValueError):  # an unreadable incoming folder: its own run says what it is
        snapshot = None
    return str(snapshot) if snapshot is not None else UNKNOWN_SNAPSHOT


def blocked_by(day: dt.date) -> list[str]:
    """The catalogs whose checks blocked the date in its last gate run (none: not blocked, or not by a catalog)."""
    from pipeline.quality.dq_results import load_results

    try:
        result = load_results(day)
    except (OSError, ValueError):
        return []
    if result is None:
        return []
    return blocking_catalogs((r.table_name, r.check_name) for r in result.results if r.outcome in BLOCKING)[0]


def soda_errored(results: Iterable[tuple[str, str]]) -> int:
    """How many of the blocking checks' (outcome, check type) are Soda's errors: a check whose query failed. A
    missing partition or gate view (type `partition`) is an error too, but the lake's, and checks reading that
    table error with it: with one, none counts (the date's fix builds it)."""
    errored = [check_type for outcome, check_type in results if outcome == "error"]
    return 0 if "partition" in errored else len(errored)


# checks that errored judged nothing: not the data's fault until their query runs (a misspelt column errors every check
# of its table: Soda measures a table's metrics in one query)
ERRORED = ("could not run, so {they} judged nothing (`python -m pipeline summary --date {{date}}` prints why): a"
           " column or table a checks file names that is not there is fixed in that file (checks/), then {rerun}")


def gate_fix(day: dt.date, messages: list[str | None], *, local_scheduler: bool = False,
             checks: Iterable[tuple[str, str]] = (), errored: int = 0) -> str:
    """The gate's fix for a date, with the threshold options the messages of the checks that blocked it name.

    `checks`: those checks' (table, check name): a catalog's (`check_catalogs`) are fixed by restating the snapshot
    covering the date (`restate --catalog KIND --date S`, each failing catalog's), a daily file's by `restate --date`.
    Not every check's message names one (an empty day, unknown products): for those, the fix points
    to their thresholds in luigi.cfg [checks], each also an option for one run (`--checks-<name>`).
    A blocked date's gate task failed: through luigid, which disabled it, the fix re-enables it first.
    `errored`: how many of those checks Soda could not run (`soda_errored`): when all, the fix is theirs alone.
    """
    gate = by_kind("gate blocked")
    if errored and errored >= len(messages):
        own = "the failing checks " + ERRORED.format(they="they", rerun=f"`{DAILY}`")
        return dataclasses.replace(gate, fix=own, restates=False).fix_for(day, local_scheduler=local_scheduler,
                                                                          failed=True)
    kinds, daily = blocking_catalogs(checks)
    if kinds:
        commands = restate_text(day, kinds)
        fixed = FIX_CATALOG.format(commands=commands) + (f"; the other failing checks: {FIX_FILE}" if daily else "")
        gate = dataclasses.replace(gate, fix=gate.fix.replace(FIX_FILE, fixed).replace(UNUSUAL_DAY, UNUSUAL_CATALOG),
                                   restates=False)  # the threshold then publishes the catalog's losses too: said
    failed = [text for text in messages if not (text or "").startswith(NOT_EVALUATED)] if errored else messages
    fix = _with_thresholds(gate.fix_for(day, local_scheduler=local_scheduler, failed=True), failed)
    if errored:  # beside checks that failed on the data
        fix += f"; the {errored} that errored " + ERRORED.format(they="those", rerun="run the date again").format(
            date=day)
    return fix


def _with_thresholds(fix: str, messages: list[str | None]) -> str:
    """The fix with the threshold options the failing checks' messages name (or where their thresholds are)."""
    options = sorted({found.group(0) for text in messages for found in THRESHOLD_OPTION.finditer(text or "")})
    if options and all(THRESHOLD_OPTION.search(text or "") for text in messages):
        return fix.replace(GATE_EXAMPLE, f"`{' '.join(options)}`")
    thresholds = "luigi.cfg [checks] threshold{} (`--checks-<name> <value>` for one run)"
    if options:
        return fix.replace(GATE_EXAMPLE, f"`{' '.join(options)}` and, for the failing checks that name none, their"
                           f" {thresholds.format('s')}")
    return fix.replace(GATE_EXAMPLE, f"the {thresholds.format(' of each failing check')}")
