"""Publishing one load date from the lake into the Postgres serving schema, in one transaction.

`publish(D)` reads the date's lake partitions (paths from `pipeline.lake` only) with DuckDB and,
in ONE transaction, so that a BI reader sees the date's old state or its new one, never a mix:

1. the date's pipeline lock (`pipeline.serving.locks`, a row lock a BI login cannot take): two
   publishes of one date run one after the other, and one told to (`unless_published`) finds the
   date published by the other and does nothing;
2. each fact partition is streamed (binary COPY, no per-row statements) into a new table and
   indexed there (see `pipeline.serving.facts`), unless `preload(fact, D)` already did that, in
   its own transaction, while the date's quality gate ran: a preload read from the lake file's
   current version is taken instead, and the date's other preloads are dropped;
3. the global publish lock: the bookkeeping below is serialised across dates, so each publish
   sees every earlier one (the heavy step 2 of different dates still runs in parallel);
4. dimensions are merged order-independently (COPY into temp tables, then upserts), the date's
   daily_metrics row upserted, its audit rows (bad_records, rejected_lines, reconciliation and the
   quality gate's dq_failures) replaced;
5. the current-version bookkeeping is updated and the completion marker `audit.publish_log` written;
6. the fact tables are locked (ACCESS EXCLUSIVE, for the last milliseconds only), the new
   partitions swapped in, and the transaction commits. This is the one lock a BI session can
   hold up (any SELECT conflicts with it): each wait is bounded by [publish] lock_timeout and
   retried from a savepoint (`locks.retrying`), so BI queries never queue behind it for longer.

Every error names the table, the column and the record, mapped back to the lake row
(`pipeline.serving.publish_errors`), and says that the date was rolled back.

Replacing a published non-empty date with an empty one is refused (EmptyPublishRefused) unless
force=True. The serving schema is brought up to date once per process before the first publish.
When the connecting role may act as `ecomm_writer`, the transaction runs as that role, so what
publish creates is owned by it and publishing needs no more than that role's privileges.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import duckdb
import psycopg
from psycopg import sql

from pipeline import faults, lake
from pipeline.serving import binary_copy, locks, migrations, pg
from pipeline.serving.facts import (
    FACTS,
    PRELOAD_SCHEMA,
    DuplicateFactKey,
    FactSpec,
    LakePartitionInvalid,
    PublishError,
    drop_preloads,
    load_stage,
    preload_name,
    published_rows,
    register_preload,
    supersede,
    swap,
    take_preload,
)
from pipeline.serving.publish_errors import Progress, describe
from pipeline.serving.settings import publish as publish_settings
from pipeline.transform import sqlrun

logger = logging.getLogger(__name__)

__all__ = [
    "publish", "publish_audit_only", "is_published", "preload", "is_preloaded", "discard_preloads",
    "record_pipeline_run", "record_pipeline_runs",
    "PublishError", "EmptyPublishRefused", "LakePartitionMissing", "LakePartitionInvalid", "DuplicateFactKey",
]

STAGING_SOURCES = ("stg_orders", "stg_events", "stg_products", "stg_users")
RAW_SOURCES = ("orders", "events", "products", "users")
DQ_OUTCOMES = ("warn", "fail", "error")


class EmptyPublishRefused(PublishError):
    """Publishing would replace a published non-empty date with an empty one; pass force=True to allow it."""


class LakePartitionMissing(PublishError):
    """A lake partition the publish needs is missing; run the pipeline for the date first."""


@dataclasses.dataclass(frozen=True)
class Feed:
    """A small serving table fed from lake partitions through a temp table and a merge statement."""

    table: str  # schema.table in Postgres
    layer: str
    lake_table: str
    merge: tuple[str, ...]  # statements reading _in (the date's rows); %(d)s is the load date
    derived: Mapping[str, str] = dataclasses.field(default_factory=dict)  # column -> DuckDB expression
    defaults: tuple[str, ...] = ()  # columns left to the Postgres default
    sources: tuple[str, ...] = ()  # partition keys source_table=<each>; empty = unkeyed
    lenient: bool = False  # a column the lake lacks becomes NULL (with a warning) instead of an error
    key: tuple[str, ...] = ()  # must be unique in the date's rows
    names: tuple[str, ...] = ()  # columns that name a row in error messages (default: key)


def _upsert(table: str, columns: str, key: str, updates: str, where: str = "") -> tuple[str, ...]:
    return (f"insert into {table} as t ({columns}) select {columns} from _in"
            f" on conflict ({key}) do update set {updates}{where}",)


def _replace(table: str, columns: str) -> tuple[str, ...]:
    return (f"delete from {table} where load_date = %(d)s",
            f"insert into {table} ({columns}) select {columns} from _in")


_DATE_COLS = "date_id, full_date, year, quarter, month, month_name, day_of_month, day_of_week, day_name, week_of_year, is_weekend"
_USER_COLS = "user_id, first_seen_date, first_order_date, last_seen_date, city, country, city_as_of"
_PRODUCT_COLS = "product_id, product_name, category, brand, current_price, effective_from, is_inferred, valid_as_of"
_HISTORY_COLS = ("product_id, version, product_name, category, brand, current_price, effective_from, effective_to,"
                 " is_current, valid_as_of")
_METRIC_COLS = (
    "run_date, raw_orders_count, staging_orders_count, fact_orders_count, raw_events_count, staging_events_count,"
    " fact_events_count, quarantined_orders_count, quarantined_events_count, duplicate_orders_count,"
    " duplicate_events_count, gross_revenue, net_revenue, orders_count, events_count, unknown_product_share,"
    " dq_failed_count, runtime_seconds"
)
_NEWER_CITY = "excluded.city_as_of is not null and (t.city_as_of is null or excluded.city_as_of >= t.city_as_of)"
_LOAD_DATE = "$load_date::date"

FEEDS = (
    Feed("warehouse.dim_date", "warehouse", "dim_date", _upsert(
        "warehouse.dim_date", _DATE_COLS, "date_id",
        ", ".join(f"{c} = excluded.{c}" for c in _DATE_COLS.split(", ")[1:])), key=("date_id",)),
    # merged with min/max, city/country from the latest load date reporting either: order-independent
    Feed("warehouse.dim_user", "warehouse", "dim_user", _upsert(
        "warehouse.dim_user", _USER_COLS, "user_id",
        "first_seen_date = least(t.first_seen_date, excluded.first_seen_date),"
        " first_order_date = least(t.first_order_date, excluded.first_order_date),"
        " last_seen_date = greatest(t.last_seen_date, excluded.last_seen_date),"
        f" city = case when {_NEWER_CITY} then excluded.city else t.city end,"
        f" country = case when {_NEWER_CITY} then excluded.country else t.country end,"
        " city_as_of = greatest(t.city_as_of, excluded.city_as_of), updated_at = now()"),
        derived={"city_as_of": f"case when city is not null or country is not null then {_LOAD_DATE} end"},
        defaults=("updated_at",), key=("user_id",)),
    # the row of the greatest load date wins, but a catalog row always beats an inferred one
    Feed("warehouse.dim_product", "warehouse", "dim_product", _upsert(
        "warehouse.dim_product", _PRODUCT_COLS, "product_id",
        ", ".join(f"{c} = excluded.{c}" for c in _PRODUCT_COLS.split(", ")[1:]),
        " where (t.is_inferred and not excluded.is_inferred)"
        " or (t.is_inferred = excluded.is_inferred and excluded.valid_as_of >= t.valid_as_of)"),
        derived={"valid_as_of": _LOAD_DATE}, key=("product_id",)),
    # small: the build with the greatest load date replaces the whole table
    Feed("warehouse.dim_product_history", "warehouse", "dim_product_history", (
        "delete from warehouse.dim_product_history where %(d)s >= (select max(valid_as_of) from warehouse.dim_product_history)",
        f"insert into warehouse.dim_product_history ({_HISTORY_COLS}) select {_HISTORY_COLS} from _in"
        " where not exists (select 1 from warehouse.dim_product_history)"),
         derived={"valid_as_of": _LOAD_DATE}, key=("product_id", "version")),
    Feed("warehouse.daily_metrics", "warehouse", "daily_metrics", _upsert(
        "warehouse.daily_metrics", _METRIC_COLS, "run_date",
        ", ".join(f"{c} = excluded.{c}" for c in _METRIC_COLS.split(", ")[1:]) + ", published_at = now()"),
        derived={"run_date": _LOAD_DATE}, defaults=("published_at",), lenient=True, key=("run_date",)),
    # raw payloads of rejected data: operators only (schema quarantine; BI reads audit.* views of them)
    Feed("quarantine.bad_records", "audit", "bad_records", _replace(
        "quarantine.bad_records", "load_date, source_table, record_id, reason_code, message, failing_value, raw_record,"
        " source_file, row_number"), derived={"load_date": _LOAD_DATE, "source_table": "$source_table"},
        sources=STAGING_SOURCES, names=("source_table", "row_number")),
    Feed("quarantine.rejected_lines", "audit", "rejected_lines", _replace(
        "quarantine.rejected_lines", "load_date, source_table, source_file, line_number, raw_text, error"),
        derived={"load_date": _LOAD_DATE, "source_table": "$source_table"}, sources=RAW_SOURCES,
        names=("source_table", "line_number")),
    Feed("audit.reconciliation", "audit", "reconciliation", _replace(
        "audit.reconciliation", "load_date, source_table, raw_count, staged_count, quarantined_count,"
        " duplicate_count, is_balanced, source_records, rejected_count"),
        derived={"load_date": _LOAD_DATE, "source_table": "$source_table"}, sources=STAGING_SOURCES,
        names=("source_table",),
        lenient=True),  # lake partitions written before line accounting lack source_records/rejected_count
)


# ------------------------------------------------------------------------------------ lake side
def _lake_select(
    duck: duckdb.DuckDBPyConnection, path: str, columns: Sequence[binary_copy.PgColumn], derived: Mapping[str, str],
    lenient: bool, what: str, row_numbers: bool = False,
) -> str:
    """A DuckDB SELECT giving `columns` (cast to their Postgres types) from one partition file.

    row_numbers=True adds `_lake_row`, the row's 1-based position in the file (= its COPY line).
    """
    present = set(duck.sql("select * from read_parquet($path, hive_partitioning = false)", params={"path": path}).columns)
    parts, missing = [], []
    for col in columns:
        if col.name in derived:
            expr = derived[col.name]
        elif col.name in present:
            expr = sqlrun.quote_ident(col.name)
        else:
            missing.append(col.name)
            expr = "null"
        parts.append(f"cast({expr} as {col.duckdb_type}) as {sqlrun.quote_ident(col.name)}")
    if missing and not lenient:
        raise LakePartitionInvalid(
            f"{what} ({path}) lacks column(s) {', '.join(missing)} that Postgres needs; it has {', '.join(sorted(present))}"
        )
    if missing and not row_numbers:
        logger.warning("%s lacks %s: published as NULL", what, ", ".join(missing))
    if row_numbers:
        parts.append("file_row_number + 1 as _lake_row")
    options = ", file_row_number = true" if row_numbers else ""
    return f"select {', '.join(parts)} from read_parquet($path, hive_partitioning = false{options})"


def _batches(duck: duckdb.DuckDBPyConnection, select: str, params: dict[str, Any]):
    return duck.sql(select, params=sqlrun.bind(select, params)).to_arrow_reader(publish_settings().copy_batch_rows)


def _fact_path(table: str, day: dt.date) -> str:
    path = lake.partition_file("warehouse", table, day)
    if not lake.exists(path):
        raise LakePartitionMissing(f"warehouse/{table} for {day} is not built ({path}); run the pipeline for {day} first")
    return path


def _fact_spec(lake_table: str) -> FactSpec:
    for spec in FACTS:
        if spec.lake_table == lake_table:
            return spec
    raise ValueError(f"{lake_table!r} is not a fact table; facts: {', '.join(s.lake_table for s in FACTS)}")


def _row_count(duck: duckdb.DuckDBPyConnection, path: str) -> int:
    return duck.execute("select count(*) from read_parquet($p)", {"p": path}).fetchall()[0][0]


# ----------------------------------------------------------------------------------- serving side
def _act_as_writer(conn: psycopg.Connection) -> None:
    """Run the transaction as ecomm_writer when allowed and it owns the facts (see module doc)."""
    may = conn.execute(
        """select exists (select 1 from pg_roles where rolname = 'ecomm_writer')
                  and pg_has_role(current_user, 'ecomm_writer', 'MEMBER')
                  and pg_get_userbyid((select relowner from pg_class where oid = 'warehouse.fact_orders_all'::regclass))
                      = 'ecomm_writer'"""
    ).fetchone()[0]
    if may:
        conn.execute("set local role ecomm_writer")


def _settings(conn: psycopg.Connection) -> None:
    """Per-transaction settings of a publish or preload (first in the transaction)."""
    _act_as_writer(conn)
    settings = publish_settings()
    conn.execute(sql.SQL("set local maintenance_work_mem = {}").format(sql.Literal(settings.maintenance_work_mem)))
    # every lock wait is bounded; the ones BI can hold up are retried (locks.retrying). The
    # transaction idles on purpose between those attempts: a server-wide idle timeout must not end it.
    conn.execute("select set_config('lock_timeout', %s, true),"
                 " set_config('idle_in_transaction_session_timeout', '0', true)", [settings.lock_timeout])


@contextlib.contextmanager
def _date_transaction(conn: psycopg.Connection, day: dt.date) -> Iterator[None]:
    """A transaction on `conn` (as ecomm_writer when allowed) holding the date's pipeline lock.

    The one date lock: publish, publish_audit_only, discard_preloads and the Publish task all take it.
    """
    with conn.transaction():
        _settings(conn)
        locks.hold(conn, locks.date_key(day))
        yield


def _text_columns(columns: Sequence[binary_copy.PgColumn]) -> list[str]:
    return [c.name for c in columns if c.fixed_width is None]


def _load_fact(conn: psycopg.Connection, duck: duckdb.DuckDBPyConnection, spec: FactSpec, day: dt.date,
               path: str, progress: Progress | None = None, **where: str) -> dict[str, Any]:
    """COPY one fact's lake partition into a new, indexed stage table (`load_stage`; `where`: its name)."""
    columns = binary_copy.copy_order(binary_copy.table_columns(conn, f"warehouse.{spec.parent}"))
    what = f"lake warehouse/{spec.lake_table}"
    select = _lake_select(duck, path, columns, {}, False, what)
    if progress is not None:
        progress.at(f"warehouse.{spec.parent}", path=path, params={"path": path}, keys=(spec.key,),
                    select=lambda: _lake_select(duck, path, columns, {}, False, what, row_numbers=True),
                    text_columns=_text_columns(columns))
    t0 = time.monotonic()
    loaded = load_stage(conn, spec, day, columns, _batches(duck, select, {"path": path}), **where)
    logger.info("%s %s: %s rows copied and indexed in %.1fs", spec.parent, day, loaded["rows"], time.monotonic() - t0)
    return loaded


def _feed(conn: psycopg.Connection, duck: duckdb.DuckDBPyConnection, feed: Feed, day: dt.date,
          overrides: Mapping[str, Any], progress: Progress) -> int | None:
    """Load the feed's partitions of the date into _in and merge; None when the lake has none."""
    keys = feed.sources or (None,)
    paths = [(k, lake.partition_file(feed.layer, feed.lake_table, day, **({"source_table": k} if k else {})))
             for k in keys]
    paths = [(k, p) for k, p in paths if lake.exists(p)]
    progress.at(feed.table)
    if not paths and not feed.sources:
        logger.warning("no lake %s/%s partition for %s: %s left as it is", feed.layer, feed.lake_table, day, feed.table)
        return None
    conn.execute("drop table if exists _in")
    conn.execute(sql.SQL("create temp table _in (like {} including defaults) on commit drop").format(
        sql.Identifier(*feed.table.split("."))))
    columns = [c for c in binary_copy.table_columns(conn, feed.table) if c.name not in feed.defaults]
    rows = 0
    for source, path in paths:
        what = f"lake {feed.layer}/{feed.lake_table}"
        select = _lake_select(duck, path, columns, feed.derived, feed.lenient, what)
        params = {"path": path, "load_date": day, "source_table": source}
        progress.at(feed.table, path=path, params=params, keys=feed.names or feed.key,
                    select=lambda path=path: _lake_select(duck, path, columns, feed.derived, feed.lenient, what,
                                                          row_numbers=True),
                    text_columns=_text_columns(columns))
        rows += binary_copy.copy_batches(conn, sql.Identifier("_in"), columns, _batches(duck, select, params))
    for column, value in overrides.items():
        conn.execute(sql.SQL("update _in set {} = %s").format(sql.Identifier(column)), [value])
    if feed.key:
        dup = conn.execute(sql.SQL("select {k} from _in group by {k} having count(*) > 1 limit 1").format(
            k=sql.SQL(", ").join(map(sql.Identifier, feed.key)))).fetchone()
        if dup:
            raise LakePartitionInvalid(f"lake {feed.lake_table} for {day} repeats key {dup}; its grain is broken")
    for statement in feed.merge:
        conn.execute(statement, {"d": day})
    return rows


def _write_dq(conn: psycopg.Connection, day: dt.date, rows: Sequence[Mapping[str, Any]]) -> int:
    """Replace the date's dq_failures with `rows` (dicts from the quality gate)."""
    conn.execute("delete from audit.dq_failures where run_date = %s", [day])
    fields = ("check_name", "table_name", "check_type", "outcome", "value", "message")
    with conn.cursor() as cur, cur.copy(
        "copy audit.dq_failures (run_date, check_name, table_name, check_type, outcome, value, message) from stdin"
    ) as copy:
        for row in rows:
            if row.get("outcome") not in DQ_OUTCOMES or not row.get("check_name"):
                raise ValueError(f"dq row needs check_name and outcome in {DQ_OUTCOMES}: {dict(row)!r}")
            copy.write_row([day, *(None if row.get(f) is None else str(row.get(f)) for f in fields)])
    return len(rows)


def _failed_checks(rows: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 for row in rows if row.get("outcome") in ("fail", "error"))


def _failure(doing: str, err: BaseException, progress: Progress, duck: duckdb.DuckDBPyConnection | None) -> str:
    """'<doing> failed: <table.column, record>: <reason>; ... rolled back' (see publish_errors)."""
    what = describe(err, progress.target, duck) if isinstance(err, psycopg.Error) else str(err)
    return f"{doing} failed: {what}; it was rolled back, Postgres is unchanged"


# ------------------------------------------------------------------------------------- public API
def publish(load_date: dt.date | str, *, force: bool = False,
            audit_rows: Sequence[Mapping[str, Any]] | None = None, run_id: str | None = None,
            runtime: Callable[[], float | None] | None = None, unless_published: bool = False) -> dict[str, Any]:
    """Publish one load date from the lake to Postgres atomically; return what was written.

    `runtime`, if given, is called just before the commit; its seconds become the date's
    daily_metrics.runtime_seconds in the same transaction (see `run_audit.date_runtime`).
    `unless_published`: if the date is published when its lock is granted (another run published it
    meanwhile), drop its leftover preloads and return {"skipped": True, ...} without writing.
    """
    day = lake.parse_date(load_date)
    run_id = run_id or uuid.uuid4().hex
    started = time.monotonic()
    fact_paths = {spec: _fact_path(spec.lake_table, day) for spec in FACTS}
    summary: dict[str, Any] = {"load_date": day, "run_id": run_id, "skipped": False}
    progress = Progress()
    with sqlrun.connect() as duck, pg.connect() as conn:
        migrations.ensure_schema(conn)
        try:
            with _date_transaction(conn, day):
                if unless_published and _published(conn, day):
                    summary.update(skipped=True, preloads_dropped=len(drop_preloads(conn, day)))
                    logger.info("%s was published meanwhile by another run: nothing to do", day)
                    return summary
                counts = {spec: _row_count(duck, path) for spec, path in fact_paths.items()}
                for spec in FACTS:
                    before = published_rows(conn, spec, day)
                    if before and not counts[spec] and not force:
                        raise EmptyPublishRefused(
                            f"{day} has {before} {spec.parent} rows published but the lake partition is empty;"
                            f" rebuild the date, or publish with force=True to empty it")
                loaded = {}
                for spec in FACTS:
                    path = fact_paths[spec]
                    loaded[spec] = take_preload(conn, spec, day, path, lake.file_version(path))
                    summary[f"{spec.lake_table}_preloaded"] = loaded[spec] is not None
                    if loaded[spec] is None:
                        loaded[spec] = _load_fact(conn, duck, spec, day, path, progress)
                    summary[f"{spec.lake_table}_rows"] = loaded[spec]["rows"]
                summary["preloads_dropped"] = len(drop_preloads(conn, day))
                faults.point("publish.merge")
                locks.hold(conn, locks.PUBLISH_KEY)
                for feed in FEEDS:
                    overrides = ({"dq_failed_count": _failed_checks(audit_rows)}
                                 if feed.lake_table == "daily_metrics" and audit_rows is not None else {})
                    summary[f"{feed.lake_table}_rows"] = _feed(conn, duck, feed, day, overrides, progress)
                if audit_rows is not None:
                    progress.at("audit.dq_failures")
                    summary["dq_failures_rows"] = _write_dq(conn, day, audit_rows)
                for spec in FACTS:
                    progress.at(f"warehouse.{spec.superseded}")
                    summary[f"{spec.lake_table}_ids_rechecked"] = supersede(conn, spec, day, loaded[spec])
                progress.at("audit.publish_log")
                conn.execute(
                    """insert into audit.publish_log (load_date, published_at, fact_orders_rows, fact_events_rows, run_id)
                       values (%s, now(), %s, %s, %s)
                       on conflict (load_date) do update set published_at = excluded.published_at,
                           fact_orders_rows = excluded.fact_orders_rows, fact_events_rows = excluded.fact_events_rows,
                           run_id = excluded.run_id""",
                    [day, summary["fact_orders_rows"], summary["fact_events_rows"], run_id],
                )
                parents = [f"warehouse.{spec.parent}" for spec in FACTS]
                progress.at(", ".join(parents))

                def swap_in() -> None:
                    # Last, and only for the final catalog changes: a reader that planned its query before
                    # the commit must not run it on a snapshot taken after (it would miss the new partition
                    # while seeing publish_log, dimensions ... of the new state). Readers wait here for
                    # the swap and the commit, then plan again.
                    conn.execute(sql.SQL("lock table {} in access exclusive mode").format(
                        sql.SQL(", ").join(sql.Identifier("warehouse", spec.parent) for spec in FACTS)))
                    summary["replaced"] = any([swap(conn, spec, day, loaded[spec]) for spec in FACTS])
                    if runtime is not None:
                        summary["runtime_seconds"] = runtime()
                        conn.execute("update warehouse.daily_metrics set runtime_seconds = %s where run_date = %s",
                                     [summary["runtime_seconds"], day])

                locks.retrying(conn, f"swapping in the partitions of {day}", swap_in, parents)
                faults.point("publish.commit")
        except (psycopg.Error, locks.PipelineLockBusy, locks.LockWaitTimeout) as err:
            raise PublishError(_failure(f"publishing {day}", err, progress, duck)) from err
    summary["seconds"] = round(time.monotonic() - started, 3)
    logger.info("published %s: %s order rows, %s event rows in %.1fs (run %s)", day, summary["fact_orders_rows"],
                summary["fact_events_rows"], summary["seconds"], run_id)
    return summary


def _published(conn: psycopg.Connection, day: dt.date) -> bool:
    return conn.execute("select exists (select 1 from audit.publish_log where load_date = %s)", [day]).fetchone()[0]


@contextlib.contextmanager
def _date_locked(day: dt.date) -> Iterator[psycopg.Connection]:
    """A connection in a transaction holding the date's lock (see `_date_transaction`)."""
    with pg.connect() as conn:
        migrations.ensure_schema(conn)
        with _date_transaction(conn, day):
            yield conn


def publish_audit_only(load_date: dt.date | str, dq_rows: Sequence[Mapping[str, Any]]) -> int:
    """Record the quality gate's outcomes for a date whose data is not published; return rows written."""
    day = lake.parse_date(load_date)
    with _date_locked(day) as conn:
        written = _write_dq(conn, day, dq_rows)
        drop_preloads(conn, day)  # the data they hold failed the gate
    logger.info("recorded %s quality outcome(s) for %s (data not published)", written, day)
    return written


def preload(lake_table: str, load_date: dt.date | str, *, attempts: int = 3) -> dict[str, Any]:
    """Copy and index a date's fact partition in Postgres ahead of its publish; return what was loaded.

    Runs beside the date's quality gate and commits on its own: the table waits in schema
    `preload`, which BI cannot read, until `publish` moves it into warehouse in the date's
    transaction (or drops it). Nothing a reader sees changes here.

    The lake file's version is read before its rows; if the file was replaced meanwhile (a
    concurrent run of the date rebuilding it: rebuilds are atomic renames, so the new file is
    whole), the copy is rolled back and read again from the new version, up to `attempts` times.
    """
    day = lake.parse_date(load_date)
    spec = _fact_spec(lake_table)
    path = _fact_path(spec.lake_table, day)
    for attempt in range(1, attempts + 1):
        loaded = _preload_once(spec, day, path)
        if loaded is not None:
            return loaded
        logger.warning("%s was replaced while it was preloaded (attempt %d of %d)", path, attempt, attempts)
    raise LakePartitionMissing(f"{path} was rebuilt or removed while it was preloaded, {attempts} times; run again")


def _preload_once(spec: FactSpec, day: dt.date, path: str) -> dict[str, Any] | None:
    """One preload attempt, committed; None (and nothing kept) if the lake file changed during it."""
    version = lake.file_version(path)  # before reading: a rebuild from here on makes this copy unusable
    if version is None:
        raise LakePartitionMissing(f"warehouse/{spec.lake_table} for {day} is gone ({path}); run the pipeline for {day}")
    progress = Progress()
    with sqlrun.connect() as duck, pg.connect() as conn:
        migrations.ensure_schema(conn)
        try:
            with conn.transaction() as tx:
                _settings(conn)
                loaded = _load_fact(conn, duck, spec, day, path, progress, schema=PRELOAD_SCHEMA,
                                    table=preload_name(spec, day, uuid.uuid4().hex[:8]))
                if lake.file_version(path) != version:
                    raise psycopg.Rollback(tx)
                register_preload(conn, spec, day, loaded, path, version)
                return loaded
        except psycopg.Error as err:
            raise PublishError(_failure(f"preloading {spec.lake_table} of {day}", err, progress, duck)) from err
    return None


def is_preloaded(lake_table: str, load_date: dt.date | str, *, current: bool = True) -> bool:
    """Whether Postgres holds a preload of the fact for the date.

    current=True: only one read from the lake file's current version counts (the one a publish
    would take); current=False: any (what the Luigi task checks, see `task_base.PreloadTask`).
    """
    day = lake.parse_date(load_date)
    spec = _fact_spec(lake_table)
    path = lake.partition_file("warehouse", spec.lake_table, day)
    version = lake.file_version(path) if current else None
    if current and version is None:
        return False
    with pg.connect() as conn:
        if not conn.execute("select to_regclass('preload.fact_loads') is not null").fetchone()[0]:
            return False
        return conn.execute(
            """select exists (select 1 from preload.fact_loads
                              where fact_table = %(fact)s and load_date = %(day)s
                                  and (not %(current)s or (lake_file = %(file)s and lake_version = %(version)s))
                                  and to_regclass(format('preload.%%I', stage_table)) is not null)""",
            {"fact": spec.parent, "day": day, "current": current, "file": path, "version": version},
        ).fetchone()[0]


def discard_preloads(load_date: dt.date | str) -> int:
    """Drop the date's unused preloads (e.g. after another run published it); return how many."""
    day = lake.parse_date(load_date)
    with _date_locked(day) as conn:
        return len(drop_preloads(conn, day))


def is_published(load_date: dt.date | str) -> bool:
    """Whether the date's publish committed (audit.publish_log): the Luigi task's completion check."""
    day = lake.parse_date(load_date)
    with pg.connect() as conn:
        if not conn.execute("select to_regclass('audit.publish_log') is not null").fetchone()[0]:
            return False
        return conn.execute("select exists (select 1 from audit.publish_log where load_date = %s)", [day]).fetchone()[0]


def record_pipeline_run(run_id: str, task: str, status: str, *, run_date: dt.date | str | None = None,
                        started_at: dt.datetime | None = None, ended_at: dt.datetime | None = None,
                        rows_in: int | None = None, rows_out: int | None = None,
                        error_message: str | None = None) -> None:
    """Upsert one task's row in audit.pipeline_runs (status: running, done or failed)."""
    record_pipeline_runs([{
        "run_id": run_id, "task": task, "status": status, "run_date": run_date, "started_at": started_at,
        "ended_at": ended_at, "rows_in": rows_in, "rows_out": rows_out, "error_message": error_message}])


def record_pipeline_runs(rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert task executions (keys as `record_pipeline_run`'s arguments) in one transaction."""
    params = []
    for row in rows:
        started_at, ended_at = row.get("started_at"), row.get("ended_at")
        duration = (ended_at - started_at).total_seconds() if started_at and ended_at else None
        day = lake.parse_date(row["run_date"]) if row.get("run_date") is not None else None
        params.append([row["run_id"], day, row["task"], row["status"], started_at, ended_at, duration,
                       row.get("rows_in"), row.get("rows_out"), row.get("error_message")])
    if not params:
        return
    with pg.connect() as conn:
        migrations.ensure_schema(conn)
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                """insert into audit.pipeline_runs (run_id, run_date, task, status, started_at, ended_at,
                       duration_seconds, rows_in, rows_out, error_message)
                   values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   on conflict (run_id, task) do update set run_date = excluded.run_date, status = excluded.status,
                       started_at = coalesce(excluded.started_at, audit.pipeline_runs.started_at),
                       ended_at = excluded.ended_at, duration_seconds = excluded.duration_seconds,
                       rows_in = excluded.rows_in, rows_out = excluded.rows_out, error_message = excluded.error_message""",
                params,
            )
