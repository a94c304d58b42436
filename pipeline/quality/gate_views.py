"""The quality gate's derived views: how much of a date each source threw away, its volume, its unknown users.

`pipeline.quality.gate.run_gate` registers the date's table partitions as views, then calls `scan()` here,
which adds views (temp tables) computed from the lake's audit partitions and from the date's facts, and
scans their SodaCL files (`checks/<layer>/<view>.yml`, `VIEWS`) like any gated table:

- `source_loss` (sql/gate/source_loss.sql): per source reconciled for the date, the records received
  (raw rows + lines the reader rejected, audit/rejected_lines) and the shares of them quarantined or
  rejected. The denominator includes the rejected lines: a file whose lines were mostly rejected has
  few raw rows, and raw alone would show a small loss. Two figures are judged on their own, as shares of the
  raw rows: those collapsed as exact duplicates, and the orders' second lines of an order (`multiple_order_lines`
  in the date's audit/bad_records, counted by `pipeline.quality.quarantine`): a changed export the loss hides.
- `source_volume` (sql/gate/source_volume.sql): per daily source, the records received against the
  median of the previous `[checks] volume_window` load dates that have a reconciliation record for it.
- `unknown_users` (sql/gate/unknown_users.sql): per fact table (fact_orders, fact_events), its rows of the
  date whose user the users catalog snapshot covering the date does not list (`users_catalog`: the
  snapshot the warehouse models read, pipeline.transform.warehouse.LAKE_INPUTS `stg_users_snapshot`).
  Computed from the date's facts, not from its reconciliation.
- `catalog_snapshots` (sql/gate/catalog_snapshots.sql, `pipeline.quality.gate_catalogs`): per catalog field, the
  covering snapshot's members without it, and its members against the previous snapshot's.

Inputs are lake files only, never Postgres: the date's audit/reconciliation rows (the `reconciliation`
view run_gate registers), earlier dates' audit/reconciliation rows (`reconciliation_history`: per
source, the latest `volume_window` dates before the load date) and the row counts of the
audit/rejected_lines partitions of all those dates (`rejected_line_counts`). A later date is never
read, so rerunning a date judges it against the same history (unless an earlier date was restated).

Soda records a measured value and a rule; `explain()` puts the counts behind a share or ratio into
the message ("how many of how many", which source) with the check's `advice` attribute (what to do);
a lost share that warns or fails also names the source's top quarantine reasons of the date ("top
reasons: invalid_status 300 of 300", from the same counts, kept in the result's `top_reasons`),
and records a volume check without enough history as a warning "not evaluated" rather than an error
that would block the first days of a lake. A source that received no records (a complete file
without any: a closed shop's day, or an incomplete export) measures a volume ratio of 0 whatever its
history, so the date is blocked unless `[checks] volume_fail_low_ratio` is 0 (the day was real).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.quality import gate_catalogs, quarantine
from pipeline.quality.results import VIEWS, CheckResult, described
from pipeline.quality.soda import add_duckdb, format_number, run_checks_file
from pipeline.transform import staging, warehouse

logger = logging.getLogger(__name__)

# The daily feeds the volume check compares with their past. Catalogs are weekly snapshots whose size
# legitimately jumps when the catalog grows; their losses are in source_loss.
VOLUME_SOURCES = tuple(staging.staging_table(source) for source in staging.DAILY_SOURCES)
# audit/reconciliation and audit/bad_records name a source by its staging table (stg_orders),
# audit/rejected_lines by its raw source as landing writes it (orders): sql/gate maps one to the other.
REJECTED_COUNTS_SCHEMA = pa.schema([
    ("load_date", pa.date32()), ("source_table", pa.string()), ("rejected_count", pa.int64()),
])
HISTORY_SCHEMA = pa.schema([("source_table", pa.string()), ("load_date", pa.date32()), ("raw_count", pa.int64())])
# The views computed from the date's audit/reconciliation (`build`), and from its facts and users catalog
# (`build_unknown_users`).
RECONCILED_VIEWS = ("source_loss", "source_volume")
FACT_VIEWS = ("unknown_users",)
RECONCILED_SOURCES = tuple(staging.staging_table(source) for source in staging.SOURCES)
QUARANTINE = "quarantined_reasons"  # the relation's name in sql/gate/source_loss.sql: the date's reason counts
USERS_SNAPSHOT = "stg_users_snapshot"  # the relation's name in sql/gate/unknown_users.sql and in LAKE_INPUTS


@dataclasses.dataclass(frozen=True)
class UsersCatalog:
    """The users catalog snapshot covering a load date: its staged file (none before the first snapshot), or
    why it cannot be read (a snapshot landed on or before the date but not staged)."""

    files: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def covered(self) -> bool:
        """Whether a snapshot covers the date (when that is unknown, the strict answer: the view is an error)."""
        return bool(self.files) or self.problem is not None


def users_catalog(load_date: dt.date) -> UsersCatalog:
    """The users snapshot covering `load_date`, found as the warehouse models find it (dim_user's city, country)."""
    try:
        return UsersCatalog(tuple(warehouse.input_files(warehouse.lake_input(USERS_SNAPSHOT), load_date)))
    except warehouse.InputPartitionMissing as exc:
        return UsersCatalog(problem=str(exc))


def _partition_key(path: str, key: str) -> str | None:
    """The value of a hive folder `<key>=<value>` in a partition file's path (None if absent)."""
    for part in path.replace("\\", "/").split("/"):
        if part.startswith(f"{key}="):
            return part.split("=", 1)[1]
    return None


def _partition_date(path: str) -> dt.date | None:
    """The load date of a partition file from its `load_date=YYYY-MM-DD` folder (None if not one)."""
    try:
        return lake.parse_date(_partition_key(path, "load_date") or "")
    except ValueError:
        return None


def history_files(load_date: dt.date, window: int) -> list[str]:
    """Per daily source, the audit/reconciliation files of the latest `window` load dates before `load_date`."""
    files: list[str] = []
    for source in VOLUME_SOURCES:
        pattern = os.path.join(lake.table_dir("audit", "reconciliation"), "load_date=*",
                               f"source_table={source}", lake.DATA_FILE)
        dated = [(day, path) for path in lake.files_matching(pattern)
                 if (day := _partition_date(path)) is not None and day < load_date]
        files += [path for _, path in sorted(dated, reverse=True)[:window]]
    return files


def rejected_line_counts(con: duckdb.DuckDBPyConnection, dates: set[dt.date]) -> pa.Table:
    """Rows of each audit/rejected_lines partition of the given dates: (load_date, raw source, count).

    One listing of the table (one request per 1,000 partitions on object storage), then one count
    per file of those dates, read from the Parquet footer.
    """
    pattern = os.path.join(lake.table_dir("audit", "rejected_lines"), "load_date=*", "source_table=*", lake.DATA_FILE)
    rows: list[tuple[dt.date, str, int]] = []
    for path in lake.files_matching(pattern):
        day, source = _partition_date(path), _partition_key(path, "source_table")
        if day in dates and source:
            (count,), = con.execute("select count(*) from read_parquet($p, hive_partitioning = false)",
                                    {"p": path}).fetchall()
            rows.append((day, source, count))
    return pa.table({
        "load_date": [r[0] for r in rows], "source_table": [r[1] for r in rows], "rejected_count": [r[2] for r in rows],
    }, schema=REJECTED_COUNTS_SCHEMA)


def build(con: duckdb.DuckDBPyConnection, load_date: dt.date, variables: dict[str, str]) -> dict[str, str]:
    """Create `source_loss` and `source_volume` on a gate connection that has the `reconciliation` view (and the
    date's quarantine reason counts, `quarantined_reasons`, for the reasons source_loss judges on their own and
    names); return the views not built, with why (both when the date's quarantine cannot be read)."""
    window, min_history = int(variables["volume_window"]), int(variables["volume_min_history"])
    history = history_files(load_date, window)
    if history:
        con.register("reconciliation_history", con.read_parquet(
            history, union_by_name=True, hive_partitioning=False).select("source_table, load_date, raw_count"))
    else:
        con.register("reconciliation_history", HISTORY_SCHEMA.empty_table())
    dates = {load_date} | {day for path in history if (day := _partition_date(path)) is not None}
    con.register("rejected_line_counts", rejected_line_counts(con, dates))
    unbuilt: dict[str, str] = {}
    try:
        quarantine.register_counts(con, QUARANTINE, load_date, list(RECONCILED_SOURCES))
    except quarantine.Unreadable as err:  # its second lines and reasons are not known: an error, never 0
        # source_volume reads source_loss's records received
        unbuilt = {view: f"{view} is computed from the date's quarantine: {err}" for view in RECONCILED_VIEWS}
    params = {"load_date": load_date, "volume_window": window, "volume_min_history": min_history,
              "volume_sources": list(VOLUME_SOURCES)}
    for view in (view for view in RECONCILED_VIEWS if view not in unbuilt):
        sql = sqlrun.sql_text("gate", view)
        con.execute(f"create or replace temp table {sqlrun.quote_ident(view)} as {sql}", sqlrun.bind(sql, params))
    logger.info("gate views for %s: %s earlier reconciliation file(s) as volume history", load_date, len(history))
    return unbuilt


def build_unknown_users(con: duckdb.DuckDBPyConnection, catalog: UsersCatalog) -> None:
    """Create `unknown_users` on a gate connection that has the date's `fact_orders` and `fact_events` views."""
    if catalog.files:
        con.register(USERS_SNAPSHOT, con.read_parquet(list(catalog.files), union_by_name=True, hive_partitioning=False))
    else:  # before the first users snapshot: an empty catalog, every user unknown
        con.register(USERS_SNAPSHOT, staging.STAGING_SCHEMAS["stg_users"].empty_table())
    sql = sqlrun.sql_text("gate", "unknown_users")
    con.execute(f"create or replace temp table unknown_users as {sql}")


def _not_computed(view: str, why: str) -> CheckResult:
    return CheckResult(check_name=f"{view} computed", table_name=view, check_type="partition", outcome="error",
                       value=None, message=f"not evaluated: {why}")


def scan(con: duckdb.DuckDBPyConnection, load_date: dt.date, variables: dict[str, str],
         checks_files: dict[str, Path], data_source: str, *, reconciled: bool,
         users: UsersCatalog | None = None) -> list[CheckResult]:
    """Build the views on the gate's connection and scan each view's SodaCL file (`checks_files`, view -> file).

    The gate passes the files and its Soda data source name (this module does not import the gate).
    source_loss and source_volume are computed from the date's reconciliation: without it (already an
    error result) each is an error too, never a pass. unknown_users is computed from the date's facts
    and `users` (`users_catalog(load_date)`); the gate passes None when a fact partition is missing.
    """
    results: list[CheckResult] = []
    built: list[str] = []
    if reconciled:
        unbuilt = build(con, load_date, variables)
        results += [_not_computed(view, why) for view, why in unbuilt.items()]
        built += [view for view in RECONCILED_VIEWS if view not in unbuilt]
    else:
        results += [_not_computed(view, f"{view} is computed from audit/reconciliation of {load_date}, which is"
                                        " missing; stage the date first, then rerun") for view in RECONCILED_VIEWS]
    if users is None:
        results += [_not_computed(view, f"{view} is computed from fact_orders and fact_events of {load_date},"
                                        " one of which is missing; build them first, then rerun")
                    for view in FACT_VIEWS]
    elif users.problem:
        results += [_not_computed(view, f"{view} needs the users snapshot covering {load_date}: {users.problem}")
                    for view in FACT_VIEWS]
    else:
        build_unknown_users(con, users)
        built += FACT_VIEWS
    catalogs = gate_catalogs.snapshots(load_date)
    if catalogs.problem:
        results.append(_not_computed(gate_catalogs.VIEW, f"{gate_catalogs.VIEW} needs the catalog snapshots"
                                                         f" covering {load_date}: {catalogs.problem}"))
    else:
        try:
            gate_catalogs.build(con, catalogs)
            built.append(gate_catalogs.VIEW)
        except quarantine.Unreadable as err:
            results.append(_not_computed(gate_catalogs.VIEW, f"{gate_catalogs.VIEW} needs the quarantined rows of"
                                                             f" the catalog snapshots covering {load_date}: {err}"))
    for view in (view for view in VIEWS if view in built):
        _, view_results = run_checks_file(
            checks_files[view], variables, lambda scan: add_duckdb(scan, con, data_source),
            data_source, default_table=view,
        )
        results.extend(explain(con, view, view_results, variables))
    return results


def _rows(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, dict[str, Any]]:
    try:
        cursor = con.execute(f"select * from {sqlrun.quote_ident(view)}")
    except duckdb.Error:  # the view could not be built: its checks already say so
        return {}
    names = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(names, row)) for row in cursor.fetchall()}


def _n(value: Any) -> str:
    """A count or median as text with thousands separators: 2,000, 1,234.5."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)):
        return f"{value:,}"
    return format_number(value) or "-"


def _share(pct: float) -> str:
    """A percentage as text: two decimals, or the first significant digit of a share they would show as 0."""
    shown = round(pct, 2)
    return f"{format_number(shown if shown or not pct else float(f'{pct:.1g}'))} %"


def _loss_detail(figure: str, source: str, row: dict[str, Any] | None, day: str, reasons: str | None = None) -> str:
    if row is None or not row["received_count"]:
        # a daily source reconciled was delivered: its file held no records (a day without orders)
        what = "no records received" if row is not None and source in VOLUME_SOURCES else "no delivery"
        return f"{source}: {what} for {day}, so nothing was thrown away"
    received = f"{_n(row['received_count'])} records received for {day} (raw rows + rejected lines)"
    raw = f"{_n(row['raw_count'])} rows read from the file of {day}"
    if figure == "duplicate":
        return (f"{source}: {_n(row['duplicate_count'])} of the {raw} were exact copies of another row, collapsed"
                f" into it (not staged): {_share(row['duplicate_pct'])}")
    if figure == "multiple_order_lines":
        return (f"{source}: {_n(row['multiple_order_lines_count'])} of the {raw} were another line (another"
                f" product_id) of an order already kept, quarantined as multiple_order_lines:"
                f" {_share(row['multiple_order_lines_pct'])}")
    if figure == "rejected":
        return (f"{source}: the reader rejected {_n(row['rejected_count'])} of the {received}:"
                f" {_share(row['rejected_pct'])}")
    why = f"; {quarantine.REASONS}{reasons}" if reasons else ""
    return (f"{source}: {_n(row['lost_count'])} of the {received} were thrown away:"
            f" {_share(row['lost_pct'])} ({_n(row['quarantined_count'])} quarantined,"
            f" {_n(row['rejected_count'])} rejected lines{why})")


def _reasons(con: duckdb.DuckDBPyConnection, source: str, row: dict[str, Any] | None, day: str) -> str | None:
    """A source's top quarantine reasons of the date (from the counts `build` read), and a key its records renamed
    (`quarantine.renamed_key`), or None."""
    if row is None or not row["quarantined_count"]:
        return None
    counts = quarantine.ordered(con.execute(f"select reason_code, row_count from {sqlrun.quote_ident(QUARANTINE)}"
                                            " where source_table = $source", {"source": source}).fetchall())
    if not counts:
        return None
    try:  # the cause, when it is a key the sender renamed (the first records of the top reason)
        renamed = quarantine.renamed_key(lake.parse_date(day), source, counts, row["received_count"])
    except (OSError, ValueError, quarantine.Unreadable) as err:
        logger.warning("gate: could not read the quarantined records of %s for %s: %s", source, day, err)
        renamed = None
    return quarantine.top_reasons(counts, row["received_count"]) + (f"; {renamed}" if renamed else "")


def _history_text(row: dict[str, Any]) -> str:
    count = row["history_count"]
    if not count:
        return "no earlier load date with records in the lake"
    span = (f"{row['history_first_date']}" if count == 1
            else f"{row['history_first_date']} to {row['history_last_date']}")
    return f"{count} earlier load date{'s' if count != 1 else ''} with records ({span})"


def _volume_detail(source: str, row: dict[str, Any] | None, day: str, variables: dict[str, str]) -> str:
    if row is None:
        return f"{source}: not reconciled for {day}"
    if not row["received_count"]:
        return (f"{source}: no records received for {day}: its file is complete but holds none (an empty JSON"
                f" array, a CSV header without rows); {_history_text(row)}")
    received = f"{_n(row['received_count'])} records received for {day} (raw rows + rejected lines)"
    if not row["is_evaluated"]:
        return (f"not evaluated: {source} has {_history_text(row)}, the volume check needs"
                f" {variables['volume_min_history']} ([checks] volume_min_history) and applies once they are"
                f" loaded; {received}")
    return (f"{source}: {received}, {format_number(round(row['volume_ratio'], 3))} x the median of"
            f" {_n(row['median_received_count'])} over {_history_text(row)}")


def explain(con: duckdb.DuckDBPyConnection, view: str, results: list[CheckResult],
            variables: dict[str, str]) -> list[CheckResult]:
    """The view's check results with the counts in their messages and 'not evaluated' volume checks as warnings.

    A check is matched to its source by its SodaCL attributes (`source_table`, `figure`); its
    `advice` attribute is added when it warns or fails. Errors keep Soda's message as it is.
    """
    if view == gate_catalogs.VIEW:
        catalog_rows = gate_catalogs.rows(con)
        return [gate_catalogs.explain_result(
            catalog_rows.get(((r.attributes or {}).get("catalog"), (r.attributes or {}).get("field"))), r,
            variables["load_date"]) for r in results]
    rows = _rows(con, view)
    day = variables["load_date"]
    explained = []
    for result in results:
        attributes = result.attributes or {}
        source, figure = attributes.get("source_table"), attributes.get("figure")
        if figure == "unknown_user" and result.outcome != "error":
            explained.append(_explain_unknown_user(rows.get(attributes.get("fact_table")), result, day))
            continue
        row = rows.get(source) if source else None
        if figure == "volume" and row is not None and not row["is_evaluated"] and result.value is None:
            # no median to compare with yet (Soda measured nothing): recorded as such, never a pass,
            # and not an error that would block the first days of a lake
            explained.append(dataclasses.replace(
                result, outcome="warn", message=_volume_detail(source, row, day, variables)))
            continue
        if not source or not figure or result.outcome == "error":
            explained.append(result)
            continue
        if figure == "volume":
            detail = _volume_detail(source, row, day, variables)
        else:  # a lost share that warns or fails names its top quarantine reasons (the counts `build` read)
            reasons = _reasons(con, source, row, day) if figure == "lost" and result.outcome in ("warn", "fail") else None
            detail = _loss_detail(figure, source, row, day, reasons)
            result = dataclasses.replace(result, top_reasons=reasons)
            if figure == "duplicate" and result.outcome == "warn" and row is not None \
                    and row["duplicate_count"] < int(variables["duplicate_warn_min_rows"]):
                result = _few_copies(result)
                detail += (f" (fewer than duplicate_warn_min_rows, {variables['duplicate_warn_min_rows']}: a resend,"
                           " not judged by the warn share)")
        advice = attributes.get("advice")
        if advice and figure == "volume" and row is not None and not row["received_count"]:
            advice = attributes.get("advice_when_empty", advice)
        explained.append(described(result, detail, advice))
    return explained


def _few_copies(result: CheckResult) -> CheckResult:
    """A duplicate share that warns from fewer copies than [checks] duplicate_warn_min_rows: a pass (the fail share
    applies to any count: Soda judged it already)."""
    return dataclasses.replace(result, outcome="pass", message=result.message.replace("warn: ", "pass: ", 1))


def _explain_unknown_user(row: dict[str, Any] | None, result: CheckResult, day: str) -> CheckResult:
    """An unknown-user share's message: how many rows of how many, which users, against which snapshot."""
    attributes = result.attributes or {}
    if row is None:
        return result
    fact = attributes.get("fact_table")
    rows = "order lines" if fact == "fact_orders" else "events"
    examples = list(row["unknown_user_examples"] or [])
    more = ", ..." if row["unknown_user_count"] > len(examples) else ""
    users = f"{_n(row['unknown_user_count'])} of the day's {_n(row['user_count'])} users" + (
        f": {', '.join(examples)}{more}" if examples else "")
    counted = f"{fact}: {_n(row['unknown_row_count'])} of the {_n(row['row_count'])} {rows} of {day}"
    if row["catalog_snapshot_date"] is None:
        detail = (f"{counted} name a user no users snapshot lists: there is none on or before {day}, so every"
                  f" user is unknown and the share cannot block the date ({users})")
    else:
        detail = (f"{counted} name a user that the users snapshot of {row['catalog_snapshot_date']}"
                  f" ({_n(row['catalog_user_count'])} users, the latest on or before {day}) does not list:"
                  f" {_share(row['unknown_user_pct'])} ({users})")
    return described(result, detail, attributes.get("advice"))
