"""The fact side of a publish: a date's partition is built beside the live one and swapped in.

For each fact (orders, events) and load date D, inside the publish transaction:

1. `load_stage`: the lake partition is streamed with binary COPY ... FREEZE into a new, unindexed
   table `warehouse.<fact>_all_YYYYMMDD_load` (a CHECK constraint pins load_date to D), then the
   parent's indexes are built on it: sorted builds on a fresh table cost a fraction of maintaining
   the indexes of a large table row by row, and nothing a reader can see is touched yet. FREEZE
   (allowed because the table was created in this transaction) spares the index builds and the
   first readers the hint-bit writes that would otherwise dirty every page of the day once more.
2. `supersede`: the current-version bookkeeping (`<fact>_superseded`) is recomputed for the ids
   that D adds or removes. Re-delivered ids are found only in partitions whose key range
   (`warehouse.fact_partitions`) overlaps D's, through their primary-key indexes: O(day), however
   long the history.
3. `swap`: the old partition of D (if any) is dropped, the new one renamed into place and attached.
   Attaching takes only SHARE UPDATE EXCLUSIVE on the parent (readers go on); dropping an old
   partition takes ACCESS EXCLUSIVE until commit, so on a republish readers wait for the final
   milliseconds of the transaction instead of seeing a mix.

A closed month may have been compacted into one partition `<fact>_all_mYYYYMM`
(`pipeline.serving.compaction`). A date of such a month has no partition of its own: `date_rows`
finds its rows wherever they are (the daily partition, or the month's rows of that load_date), for
`supersede` and the marts, and `replace_in_month` replaces them in the monthly partition (a delete
and an insert, invisible to readers until the commit) in place of step 3.

Step 1 may also have happened earlier, in its own committed transaction, while the date's quality
gate ran (`preload`): the table then waits in schema `preload` (no USAGE for BI) with a row in
`preload.fact_loads` naming the lake file version it was read from. The publish transaction takes
it only if the lake file still has that version (`take_preload`), and moves it into `warehouse` in
`swap`; otherwise it loads inline as above. `drop_preloads` removes the date's other preloads
(stale ones, a concurrent run's, one left by a killed run) under the date's lock.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Iterable

import psycopg
import pyarrow as pa
from psycopg import sql

from pipeline import faults
from pipeline.serving import binary_copy

logger = logging.getLogger(__name__)

SCHEMA = "warehouse"
PRELOAD_SCHEMA = "preload"


class PublishError(RuntimeError):
    """A date could not be published; its transaction was rolled back, Postgres is unchanged."""


class PublishLocked(PublishError):
    """A lock the publish needs stayed held: by a BI session (`locks.LockWaitTimeout`) or another
    pipeline process (`locks.PipelineLockBusy`); the message names who holds it."""


class LakePartitionInvalid(PublishError):
    """A lake partition lacks a column the serving table needs, or breaks the table's key."""


class DuplicateFactKey(LakePartitionInvalid):
    """A lake fact partition holds the same business key twice (the model's grain is broken)."""


@dataclasses.dataclass(frozen=True)
class FactSpec:
    """A partitioned fact: its lake table, business key and which load date's version is current."""

    lake_table: str  # fact_orders
    key: str  # order_id
    current: str  # "latest" or "earliest" load_date wins

    @property
    def parent(self) -> str:
        return f"{self.lake_table}_all"

    @property
    def superseded(self) -> str:
        return f"{self.lake_table}_superseded"

    def partition(self, load_date: dt.date) -> str:
        return f"{self.parent}_{load_date:%Y%m%d}"

    def stage(self, load_date: dt.date) -> str:
        return f"{self.partition(load_date)}_load"

    def month_partition(self, load_date: dt.date) -> str:
        """The partition of the date's month once compacted (`pipeline.serving.compaction`)."""
        return f"{self.parent}_m{load_date:%Y%m}"


def month_bounds(load_date: dt.date) -> tuple[dt.date, dt.date]:
    """[first day of the date's month, first day of the next)."""
    first = load_date.replace(day=1)
    return first, (first + dt.timedelta(days=32)).replace(day=1)


FACTS = (
    FactSpec("fact_orders", "order_id", "latest"),
    FactSpec("fact_events", "event_id", "earliest"),
)


def _ident(name: str, schema: str = SCHEMA) -> sql.Identifier:
    return sql.Identifier(schema, name)


def _staged(loaded: dict[str, object]) -> sql.Identifier:
    """The stage table `load_stage` filled (in warehouse, or in preload for a preload)."""
    return _ident(str(loaded["table"]), str(loaded["schema"]))


def _parent_indexes(conn: psycopg.Connection, spec: FactSpec) -> list[tuple[str, str, bool, list[str]]]:
    """(name suffix, access method, is primary key, key column expressions) of the parent's indexes. Key columns'
    names from pg_attribute: pg_get_indexdef (asked only for an expression column) opens the index, so it waited
    for a concurrent publish that holds the parent's indexes while it swaps another date's partition."""
    rows = conn.execute(
        """select c.relname, am.amname, i.indisprimary,
                  array(select coalesce(quote_ident(a.attname), pg_get_indexdef(i.indexrelid, k, true))
                        from generate_series(1, i.indnkeyatts) as k
                        left join pg_attribute as a
                            on a.attrelid = i.indrelid and a.attnum = i.indkey[k - 1] and i.indkey[k - 1] <> 0
                        order by k)
           from pg_index as i
           join pg_class as c on c.oid = i.indexrelid
           join pg_am as am on am.oid = c.relam
           where i.indrelid = %s::regclass
           order by i.indisprimary desc, c.relname""",
        [f"{SCHEMA}.{spec.parent}"],
    ).fetchall()
    out = []
    for name, method, primary, columns in rows:
        suffix = name[len(spec.parent):] if name.startswith(spec.parent) else f"_{name}"
        out.append((suffix, method, primary, list(columns)))
    return out


def create_stage(conn: psycopg.Connection, spec: FactSpec, load_date: dt.date, stage: sql.Identifier,
                  until: dt.date | None = None) -> None:
    """The stage table: the parent's columns, comments and a CHECK pinning load_date to the date (to `until`).

    Built from the catalogs rather than `LIKE parent`, which would hold a lock on the parent until
    commit and could deadlock with a concurrent publish that is swapping another date's partition.
    """
    columns = conn.execute(
        """select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, col_description(a.attrelid, a.attnum)
           from pg_attribute as a
           where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped
           order by a.attnum""",
        [f"{SCHEMA}.{spec.parent}"],
    ).fetchall()
    definitions = [
        sql.SQL("{} {}{}").format(sql.Identifier(name), sql.SQL(pg_type), sql.SQL(" not null" if not_null else ""))
        for name, pg_type, not_null, _ in columns
    ]
    definitions.append(sql.SQL("constraint load_date_in_partition check (load_date >= {} and load_date < {})").format(
        sql.Literal(load_date), sql.Literal(until or load_date + dt.timedelta(days=1))))
    conn.execute(sql.SQL("create table {} ({})").format(stage, sql.SQL(", ").join(definitions)))
    for name, _, _, comment in columns:
        if comment:
            conn.execute(sql.SQL("comment on column {}.{} is {}").format(
                stage, sql.Identifier(name), sql.Literal(comment)))


def build_indexes(conn: psycopg.Connection, spec: FactSpec, load_date: dt.date, table: str,
                  schema: str = SCHEMA) -> None:
    """Build the parent's indexes on `schema.table`, named `<table><suffix>` (DuplicateFactKey on a repeated key)."""
    target = _ident(table, schema)
    stage = table
    for suffix, method, primary, keys in _parent_indexes(conn, spec):
        built = time.perf_counter()
        name = sql.Identifier(f"{stage}{suffix}")
        cols = sql.SQL(", ").join(sql.SQL(k) for k in keys)  # already quoted (quote_ident, pg_get_indexdef)
        if primary:
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("alter table {} add constraint {} primary key ({})").format(
                        target, name, cols))
            except psycopg.errors.UniqueViolation as err:
                raise DuplicateFactKey(
                    f"lake {spec.lake_table} for {load_date} repeats a {spec.key}: {err.diag.message_detail};"
                    f" rebuild the partition (its grain is one row per {spec.key})"
                ) from None
        else:
            conn.execute(sql.SQL("create index {} on {} using {} ({})").format(
                name, target, sql.Identifier(method), cols))
        logger.debug("%s: index %s built in %.3fs", stage, suffix, time.perf_counter() - built)


def load_stage(
    conn: psycopg.Connection, spec: FactSpec, load_date: dt.date, columns: list[binary_copy.PgColumn],
    batches: Iterable[pa.RecordBatch], *, schema: str = SCHEMA, table: str | None = None,
) -> dict[str, object]:
    """COPY the date's rows into a new stage table and index it; return where, rows and key range.

    The stage table is `schema.table`, by default `warehouse.<partition>_load`.
    """
    stage = table or spec.stage(load_date)
    target = _ident(stage, schema)
    create_stage(conn, spec, load_date, target)
    began = time.perf_counter()
    rows = binary_copy.copy_batches(conn, target, columns, batches, freeze=True)  # created just above
    faults.point("publish.copy", tag=spec.lake_table)
    copied = time.perf_counter()
    build_indexes(conn, spec, load_date, stage, schema)
    logger.debug("%s: %s rows copied in %.3fs, indexed in %.3fs", stage, rows, copied - began,
                 time.perf_counter() - copied)
    low, high = conn.execute(sql.SQL("select min({k}), max({k}) from {t}").format(
        k=sql.Identifier(spec.key), t=target)).fetchone()
    return {"schema": schema, "table": stage, "rows": rows, "min_id": low, "max_id": high}


def supersede(conn: psycopg.Connection, spec: FactSpec, load_date: dt.date, loaded: dict[str, object]) -> int:
    """Recompute `<fact>_superseded` for the ids D adds or removes; return the ids re-examined."""
    key, stage, reg = sql.Identifier(spec.key), _staged(loaded), _ident(spec.superseded)
    conn.execute("create temp table if not exists _hits (id text, load_date date) on commit drop")
    conn.execute("create temp table if not exists _affected (id text primary key) on commit drop")
    conn.execute("create temp table if not exists _versions (id text, load_date date) on commit drop")
    conn.execute("truncate _hits, _affected, _versions")
    if loaded["rows"]:
        candidates = conn.execute(
            """select load_date, greatest(min_id, %(lo)s), least(max_id, %(hi)s)
               from warehouse.fact_partitions
               where fact_table = %(t)s and load_date <> %(d)s and min_id <= %(hi)s and max_id >= %(lo)s""",
            {"t": spec.parent, "d": load_date, "lo": loaded["min_id"], "hi": loaded["max_id"]},
        ).fetchall()
        for other, low, high in candidates:
            rows = date_rows(conn, spec, other)
            if rows is None:
                raise PublishError(f"warehouse.fact_partitions lists {spec.parent} of {other} but Postgres has neither"
                                   f" its daily nor its monthly partition; republish {other}")
            conn.execute(sql.SQL(
                "insert into _hits (id, load_date) select n.{k}, %s from {stage} as n join {other} as p"
                " on p.{k} = n.{k} where n.{k} between %s and %s"
            ).format(k=key, stage=stage, other=rows), [other, low, high])
    conn.execute(sql.SQL(
        "insert into _affected select id from _hits union"
        " select {k} from {reg} where load_date = %(d)s or current_load_date = %(d)s"
    ).format(k=key, reg=reg), {"d": load_date})
    conn.execute(sql.SQL(
        """insert into _versions
           select id, load_date from _hits
           union select s.{k}, s.load_date from {reg} as s join _affected as a on a.id = s.{k} where s.load_date <> %(d)s
           union select s.{k}, s.current_load_date from {reg} as s join _affected as a on a.id = s.{k}
               where s.current_load_date <> %(d)s
           union select a.id, %(d)s from _affected as a where exists (select 1 from {stage} as n where n.{k} = a.id)"""
    ).format(k=key, reg=reg, stage=stage), {"d": load_date})
    # what the marts need to follow the change (pipeline.serving.marts): the re-examined ids' superseded
    # versions before and after, in a temp table that outlives this call until the commit
    conn.execute("create temp table if not exists _supersede_changes"
                 " (fact_table text, id text, load_date date, side text) on commit drop")
    noted = sql.SQL("insert into _supersede_changes select %(t)s, s.{k}, s.load_date, %(side)s from {reg} as s"
                    " join _affected as a on a.id = s.{k}").format(k=key, reg=reg)
    conn.execute(noted, {"t": spec.parent, "side": "before"})
    conn.execute(sql.SQL("delete from {reg} as s using _affected as a where s.{k} = a.id").format(k=key, reg=reg))
    pick = sql.SQL("max" if spec.current == "latest" else "min")
    conn.execute(sql.SQL(
        """insert into {reg} ({k}, load_date, current_load_date)
           select id, load_date, current_load_date
           from (select id, load_date, {pick}(load_date) over (partition by id) as current_load_date from _versions) as v
           where load_date <> current_load_date"""
    ).format(k=key, reg=reg, pick=pick))
    conn.execute(noted, {"t": spec.parent, "side": "after"})
    conn.execute(
        """insert into warehouse.fact_partitions (fact_table, load_date, row_count, min_id, max_id)
           values (%(t)s, %(d)s, %(n)s, %(lo)s, %(hi)s)
           on conflict (fact_table, load_date) do update set row_count = excluded.row_count,
               min_id = excluded.min_id, max_id = excluded.max_id, published_at = now()""",
        {"t": spec.parent, "d": load_date, "n": loaded["rows"], "lo": loaded["min_id"], "hi": loaded["max_id"]},
    )
    return conn.execute("select count(*) from _affected").fetchone()[0]


def date_rows(conn: psycopg.Connection, spec: FactSpec, load_date: dt.date) -> sql.Composable | None:
    """The date's published rows as a FROM item (None: none): its daily partition, or its rows of the compacted month."""
    daily, monthly = conn.execute("select to_regclass(%s) is not null, to_regclass(%s) is not null", [
        f"{SCHEMA}.{spec.partition(load_date)}", f"{SCHEMA}.{spec.month_partition(load_date)}"]).fetchone()
    if daily:
        return _ident(spec.partition(load_date))
    if monthly:  # the primary key (key, load_date) finds the date's rows of an id
        return sql.SQL("(select * from {} where load_date = {})").format(
            _ident(spec.month_partition(load_date)), sql.Literal(load_date))
    return None


def published_rows(conn: psycopg.Connection, spec: FactSpec, load_date: dt.date) -> int | None:
    """Rows of the date's live partition (None: the date has no partition)."""
    row = conn.execute(
        "select row_count from warehouse.fact_partitions where fact_table = %s and load_date = %s",
        [spec.parent, load_date],
    ).fetchone()
    return None if row is None else row[0]


def swap(conn: psycopg.Connection, spec: FactSpec, load_date: dt.date, loaded: dict[str, object]) -> bool:
    """Put the stage table in place of the date's partition; True if an old one was replaced.

    In a compacted month (`pipeline.serving.compaction`) the date's rows of the monthly partition
    are replaced instead (`replace_in_month`, done before the swap) and the stage table is gone.
    """
    final, stage = spec.partition(load_date), str(loaded["table"])
    if loaded.get("in_month") is not None:
        return bool(loaded["in_month"])
    replaced = conn.execute("select to_regclass(%s) is not null", [f"{SCHEMA}.{final}"]).fetchone()[0]
    if replaced:
        conn.execute(sql.SQL("drop table {}").format(_ident(final)))
    if loaded["schema"] != SCHEMA:  # a preload: its indexes, constraints and grants move with it
        conn.execute(sql.SQL("alter table {} set schema {}").format(_staged(loaded), sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL("alter table {} rename to {}").format(_ident(stage), sql.Identifier(final)))
    for (index,) in conn.execute(
        "select c.relname from pg_index as i join pg_class as c on c.oid = i.indexrelid where i.indrelid = %s::regclass",
        [f"{SCHEMA}.{final}"],
    ).fetchall():
        if index.startswith(stage):
            conn.execute(sql.SQL("alter index {} rename to {}").format(
                _ident(index), sql.Identifier(final + index[len(stage):])))
    conn.execute(sql.SQL("alter table {} attach partition {} for values from ({}) to ({})").format(
        _ident(spec.parent), _ident(final), sql.Literal(load_date), sql.Literal(load_date + dt.timedelta(days=1))))
    conn.execute(sql.SQL("comment on table {} is {}").format(_ident(final), sql.Literal(
        f"Partition of {SCHEMA}.{spec.parent} for load_date {load_date}: see the parent for grain and columns.")))
    return replaced


def replace_in_month(conn: psycopg.Connection, spec: FactSpec, load_date: dt.date, loaded: dict[str, object]) -> None:
    """A date of a compacted month: its rows of the monthly partition replaced by the stage table's (no-op otherwise).

    Row changes, not catalog changes: readers see the old rows until the commit, so this needs no
    lock beyond the rows'. Call it after everything that reads the date's old rows (the marts).
    Marks `loaded["in_month"]` (whether rows were replaced) for `swap`.
    """
    month = spec.month_partition(load_date)
    if not conn.execute("select to_regclass(%s) is not null", [f"{SCHEMA}.{month}"]).fetchone()[0]:
        return
    columns = sql.SQL(", ").join(sql.Identifier(c) for (c,) in conn.execute(
        "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped"
        " order by attnum", [f"{SCHEMA}.{spec.parent}"]).fetchall())
    deleted = conn.execute(sql.SQL("delete from {} where load_date = %s").format(_ident(month)), [load_date]).rowcount
    conn.execute(sql.SQL("insert into {} ({}) select {} from {} order by {}").format(
        _ident(month), columns, columns, _staged(loaded), sql.Identifier(spec.key)))
    conn.execute(sql.SQL("drop table {}").format(_staged(loaded)))
    loaded["in_month"] = deleted > 0
    logger.info("%s of %s replaced in the compacted %s: %d row(s) out, %s in", spec.parent, load_date, month,
                deleted, loaded["rows"])


# ------------------------------------------------------------------------------------- preloads
def preload_name(spec: FactSpec, load_date: dt.date, token: str) -> str:
    """A preload's table name: unique per run, so that two runs of a date never collide."""
    return f"{spec.partition(load_date)}_{token}"


def register_preload(conn: psycopg.Connection, spec: FactSpec, load_date: dt.date, loaded: dict[str, object],
                     lake_file: str, lake_version: str) -> None:
    """Record a preloaded stage table (in the transaction that filled it)."""
    conn.execute(
        """insert into preload.fact_loads (stage_table, fact_table, load_date, lake_file, lake_version, row_count,
               min_id, max_id)
           values (%s, %s, %s, %s, %s, %s, %s, %s)""",
        [loaded["table"], spec.parent, load_date, lake_file, lake_version, loaded["rows"], loaded["min_id"],
         loaded["max_id"]],
    )


def take_preload(conn: psycopg.Connection, spec: FactSpec, load_date: dt.date, lake_file: str,
                 lake_version: str | None) -> dict[str, object] | None:
    """The newest preload of the date read from this version of the lake file (None: none usable).

    Its row in preload.fact_loads is deleted (the table itself moves into warehouse in `swap`).
    """
    row = conn.execute(
        """delete from preload.fact_loads
           where stage_table = (select stage_table from preload.fact_loads
                                where fact_table = %s and load_date = %s and lake_file = %s and lake_version = %s
                                    and to_regclass(format('preload.%%I', stage_table)) is not null
                                order by loaded_at desc limit 1)
           returning stage_table, row_count, min_id, max_id""",
        [spec.parent, load_date, lake_file, lake_version],
    ).fetchone()
    if row is None:
        return None
    table, rows, low, high = row
    return {"schema": PRELOAD_SCHEMA, "table": table, "rows": rows, "min_id": low, "max_id": high}


def drop_preloads(conn: psycopg.Connection, load_date: dt.date) -> list[str]:
    """Drop every remaining preload of the date (the caller holds the date's lock); return their names."""
    dropped = [name for (name,) in conn.execute(
        "delete from preload.fact_loads where load_date = %s returning stage_table", [load_date]).fetchall()]
    for name in dropped:
        conn.execute(sql.SQL("drop table if exists {}").format(_ident(name, PRELOAD_SCHEMA)))
    if dropped:
        logger.info("dropped %d unused preload(s) of %s: %s", len(dropped), load_date, ", ".join(dropped))
    return dropped
