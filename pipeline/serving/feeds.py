"""The small serving tables a publish feeds from lake partitions: dimensions, daily_metrics, audit rows.

A feed is declared by what is specific to it: the serving table and the lake table it comes from,
how the date's rows merge into it (`Upsert` on a key with per-column rules, `ReplaceDate`,
`LatestBuild`), and the columns computed instead of read. Its columns are the serving table's own,
read from Postgres at publish time (`binary_copy.table_columns`): `load_feed` COPYs the date's lake
rows into a temp table `_in` shaped like the table, then runs the merge. The dimensions' merge rules
come from `pipeline.transform.merges`, which renders the lake's current views from the same rules.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence

import duckdb
import psycopg
from psycopg import sql

from pipeline import lake
from pipeline.lake.sqlrun import quote_ident
from pipeline.serving import binary_copy
from pipeline.serving.facts import FACTS, LakePartitionInvalid, PublishError
from pipeline.serving.lake_rows import LOAD_DATE, SOURCE_TABLE, batches, lake_select, text_columns
from pipeline.serving.publish_errors import Progress
from pipeline.transform import merges, staging, warehouse

logger = logging.getLogger(__name__)

RAW_SOURCES = staging.SOURCES  # audit/rejected_lines is keyed by the raw source (orders)
STAGING_SOURCES = tuple(map(staging.staging_table, staging.SOURCES))  # audit/bad_records, reconciliation
CATALOG_STAGING = tuple(map(staging.staging_table, staging.CATALOGS))  # filed under their snapshot's date
LOAD_DATE_COLUMN = quote_ident(merges.LOAD_DATE)  # a partition row's own load date (replay_keys reads many dates)


class MergeRuleMissing(PublishError):
    """A serving table has a column its feed's merge gives no rule; add one in pipeline.transform.merges."""


@dataclasses.dataclass(frozen=True)
class Upsert:
    """Insert the date's rows; a row whose key is published takes `rules` (default: the date's value)."""

    key: tuple[str, ...]
    rules: Mapping[str, str] = dataclasses.field(default_factory=dict)  # column -> expression of t and excluded
    where: str = ""  # when a published row is replaced (default: always)
    every_column: bool = False  # every non-key column must have a rule (a dimension merged column by column)

    def statements(self, table: str, columns: Sequence[str], stamp: str | None) -> list[sql.Composable]:
        target, names = sql.Identifier(*table.split(".")), sql.SQL(", ").join(map(sql.Identifier, columns))
        updated = [c for c in columns if c not in self.key]
        unruled = [c for c in updated if c not in self.rules]
        if self.every_column and unruled:
            raise MergeRuleMissing(f"{table} has column(s) {', '.join(unruled)} without a merge rule;"
                                   " add them to its declaration in pipeline.transform.merges")
        sets = [sql.SQL("{} = {}").format(sql.Identifier(c), sql.SQL(self.rules.get(c, f"excluded.{quote_ident(c)}")))
                for c in updated]
        if stamp:
            sets.append(sql.SQL("{} = now()").format(sql.Identifier(stamp)))
        return [sql.SQL("insert into {table} as t ({names}) select {names} from _in"
                        " on conflict ({key}) do update set {sets}{where}").format(
            table=target, names=names, key=sql.SQL(", ").join(map(sql.Identifier, self.key)),
            sets=sql.SQL(", ").join(sets), where=sql.SQL(f" where {self.where}" if self.where else ""))]


@dataclasses.dataclass(frozen=True)
class ReplaceDate:
    """The date's rows replace what the table holds for the date (load_date)."""

    key: tuple[str, ...] = ()

    def statements(self, table: str, columns: Sequence[str], stamp: str | None) -> list[sql.Composable]:
        target, names = sql.Identifier(*table.split(".")), sql.SQL(", ").join(map(sql.Identifier, columns))
        return [sql.SQL("delete from {} where load_date = %(d)s").format(target),
                sql.SQL("insert into {} ({}) select {} from _in").format(target, names, names)]


@dataclasses.dataclass(frozen=True)
class LatestBuild:
    """The table is small and each date's build holds all of it: the build of the greatest date replaces it."""

    key: tuple[str, ...]
    as_of: str  # the column holding the load date of the build (merges.BuildMerge)

    def statements(self, table: str, columns: Sequence[str], stamp: str | None) -> list[sql.Composable]:
        target, names = sql.Identifier(*table.split(".")), sql.SQL(", ").join(map(sql.Identifier, columns))
        return [sql.SQL("delete from {t} where %(d)s >= (select max({as_of}) from {t})").format(
                    t=target, as_of=sql.Identifier(self.as_of)),
                sql.SQL("insert into {t} ({names}) select {names} from _in where not exists (select 1 from {t})").format(
                    t=target, names=names)]


@dataclasses.dataclass(frozen=True)
class Feed:
    """A small serving table fed from lake partitions through a temp table and a merge."""

    table: str  # schema.table in Postgres; its columns are the feed's
    layer: str
    lake_table: str
    merge: Upsert | ReplaceDate | LatestBuild
    derived: Mapping[str, str] = dataclasses.field(default_factory=dict)  # column -> DuckDB expression
    stamp: str | None = None  # a timestamp column left to its default (now()) and set again by every merge
    sources: tuple[str, ...] = ()  # partition keys source_table=<each>; empty = unkeyed
    lenient: bool = False  # a column the lake lacks becomes NULL (with a warning) instead of an error
    names: tuple[str, ...] = ()  # columns that name a row in error messages (default: the key)
    replay: merges.KeyMerge | merges.ColumnMerge | merges.RowMerge | None = None  # merged again when a date is replaced


def dimension(merge: merges.KeyMerge | merges.ColumnMerge | merges.RowMerge | merges.BuildMerge,
              **options: str) -> Feed:
    """The feed of a dimension merged by `merge` (pipeline.transform.merges)."""
    if isinstance(merge, merges.BuildMerge):
        return Feed(f"warehouse.{merge.table}", "warehouse", merge.table, LatestBuild(merge.key, merge.as_of),
                    merge.postgres_derived(), **options)
    how = Upsert((merge.key,), merge.postgres_rules(), merge.postgres_where(),
                 every_column=isinstance(merge, merges.ColumnMerge))
    return Feed(f"warehouse.{merge.table}", "warehouse", merge.table, how, merge.postgres_derived(), replay=merge,
                **options)


FEEDS = (
    dimension(merges.DIM_DATE),
    dimension(merges.DIM_USER, stamp="updated_at"),
    dimension(merges.DIM_PRODUCT),
    dimension(merges.DIM_PRODUCT_HISTORY),
    Feed("warehouse.daily_metrics", "warehouse", "daily_metrics", Upsert(("run_date",)), {"run_date": LOAD_DATE},
         stamp="published_at", lenient=True),
    # raw payloads of rejected data: operators only (schema quarantine; BI reads audit.* views of them)
    Feed("quarantine.bad_records", "audit", "bad_records", ReplaceDate(),
         {"load_date": LOAD_DATE, "source_table": SOURCE_TABLE}, sources=STAGING_SOURCES,
         names=("source_table", "row_number")),
    Feed("quarantine.rejected_lines", "audit", "rejected_lines", ReplaceDate(),
         {"load_date": LOAD_DATE, "source_table": SOURCE_TABLE}, sources=RAW_SOURCES,
         names=("source_table", "line_number")),
    # lake partitions written before line accounting lack source_records/rejected_count: lenient
    Feed("audit.reconciliation", "audit", "reconciliation", ReplaceDate(),
         {"load_date": LOAD_DATE, "source_table": SOURCE_TABLE}, sources=STAGING_SOURCES,
         lenient=True, names=("source_table",)),
)


def feed_columns(conn: psycopg.Connection, feed: Feed) -> list[binary_copy.PgColumn]:
    """The columns a feed loads: the serving table's, but its stamp (left to the Postgres default)."""
    return [c for c in binary_copy.table_columns(conn, feed.table) if c.name != feed.stamp]


def unpublished_snapshots(conn: psycopg.Connection, day: dt.date,
                          restated: Mapping[str, Sequence[dt.date]] | None = None) -> dict[str, list[dt.date]]:
    """The catalog snapshots before `day`, staged in the lake, whose audit rows Postgres lacks or must replace.

    A catalog's staging files its audit rows (bad_records, reconciliation) under its snapshot's
    date, which need not be a published load date (a backfill that starts after the snapshot, a
    snapshot superseded before any date was published). Each publish carries those of earlier
    snapshots that Postgres lacks, so the serving audit holds the lake's whatever order dates are
    published in. Known by the missing audit.reconciliation row: every staging writes one. A
    `restated` snapshot (staging table -> dates: landed and staged again) is carried even though
    Postgres has rows of it: they are the earlier landing's.
    """
    staged = [(table, snapshot) for table in CATALOG_STAGING
              for snapshot in warehouse.partition_dates("staging", table) if snapshot < day]
    if not staged:
        return {}
    published = set(conn.execute(
        "select source_table, load_date from audit.reconciliation where source_table = any(%s) and load_date < %s",
        [list(CATALOG_STAGING), day]).fetchall())
    again = {(table, snapshot) for table, snapshots in (restated or {}).items() for snapshot in snapshots}
    carried: dict[str, list[dt.date]] = {}
    for table, snapshot in sorted(staged):
        if (table, snapshot) not in published or (table, snapshot) in again:
            carried.setdefault(table, []).append(snapshot)
    return carried


def _partitions(feed: Feed, day: dt.date, carried: Mapping[str, Sequence[dt.date]]) -> Iterable[tuple[str | None, dt.date]]:
    """(source_table, load date) of every partition a feed reads: the date's, then carried snapshots'."""
    for key in feed.sources or (None,):
        yield key, day
    for key in feed.sources:
        for snapshot in carried.get(key, ()):
            yield key, snapshot


def load_feed(conn: psycopg.Connection, duck: duckdb.DuckDBPyConnection, feed: Feed, day: dt.date,
              progress: Progress, carried: Mapping[str, Sequence[dt.date]] | None = None) -> int | None:
    """Load the feed's partitions of the date (and `carried` snapshots') into _in and merge; None when the lake has none."""
    wanted = list(_partitions(feed, day, carried or {}))
    paths = [(k, d, lake.partition_file(feed.layer, feed.lake_table, d, **({"source_table": k} if k else {})))
             for k, d in wanted]
    paths = [(k, d, p) for k, d, p in paths if lake.exists(p)]
    progress.at(feed.table)
    if not paths and not feed.sources:
        logger.warning("no lake %s/%s partition for %s: %s left as it is", feed.layer, feed.lake_table, day, feed.table)
        return None
    table = sql.Identifier(*feed.table.split("."))
    conn.execute("drop table if exists _in")
    conn.execute(sql.SQL("create temp table _in (like {} including defaults) on commit drop").format(table))
    columns = feed_columns(conn, feed)
    rows = 0
    for source, partition_day, path in paths:
        what = f"lake {feed.layer}/{feed.lake_table}"
        select = lake_select(duck, path, columns, feed.derived, feed.lenient, what)
        params = {"path": path, "load_date": partition_day, "source_table": source}
        progress.at(feed.table, path=path, params=params, keys=feed.names or feed.merge.key,
                    select=lambda path=path: lake_select(duck, path, columns, feed.derived, feed.lenient, what,
                                                         row_numbers=True),
                    text_columns=text_columns(columns))
        rows += binary_copy.copy_batches(conn, sql.Identifier("_in"), columns, batches(duck, select, params))
    if feed.merge.key:
        dup = conn.execute(sql.SQL("select {k} from _in group by {k} having count(*) > 1 limit 1").format(
            k=sql.SQL(", ").join(map(sql.Identifier, feed.merge.key)))).fetchone()
        if dup:
            raise LakePartitionInvalid(f"lake {feed.lake_table} for {day} repeats key {dup}; its grain is broken")
    if isinstance(feed.merge, ReplaceDate):  # a carried snapshot's rows replace what Postgres holds of it
        for source, partition_day in wanted:
            if partition_day != day:
                conn.execute(sql.SQL("delete from {} where load_date = %s and source_table = %s").format(table),
                             [partition_day, source])
    for statement in feed.merge.statements(feed.table, [c.name for c in columns], feed.stamp):
        conn.execute(statement, {"d": day})
    return rows


def replay_keys(conn: psycopg.Connection, duck: duckdb.DuckDBPyConnection, feed: Feed, day: dt.date,
                published: Sequence[dt.date], progress: Progress) -> int | None:
    """Merge again, from the published dates' lake partitions, the dimension rows a replaced date named.

    Postgres merges a date's contribution into the published rows (`load_feed`), and cannot take
    one back: when a date is published again (a restatement, a forced republish) a user, product or day
    only its earlier version named, or a first or last date only it gave, would stay. So the keys
    the earlier version named (those its facts name, still attached since the swap comes last, and
    those whose latest word came from the date) and the new one names are merged again from every
    published date's partition (`published`, the new one included) by the same rules, in one DuckDB
    query, and replace their rows; a key no date names any more is deleted. Returns the number of
    keys merged again; None, leaving the date's merge as it is, when a published date's partition is
    missing from the lake (its restatement pending): `rebuild-serving` then converges.
    """
    merge = feed.replay
    if merge is None:
        return None
    available = warehouse.partition_dates(feed.layer, feed.lake_table)  # one listing, also of an object store
    wanted = sorted(set(published) | {day})
    missing = [str(d) for d in wanted if d not in available]
    if missing:
        logger.warning("%s of %s missing in the lake: %s rows of %s's earlier version stay as merged"
                       " (python -m pipeline rebuild-serving converges)", feed.lake_table, ", ".join(missing),
                       feed.table, day)
        return None
    paths = [available[d] for d in wanted]
    progress.at(feed.table)
    key = sql.Identifier(merge.key)
    earlier = {row[0] for spec in FACTS for row in conn.execute(
        sql.SQL("select distinct {k} from {t} where load_date = %s and {k} is not null").format(
            k=key, t=sql.Identifier("warehouse", spec.parent)), [day])}
    if merge.as_of is not None:  # whose latest word came from the date (a catalog's)
        earlier |= {row[0] for row in conn.execute(sql.SQL("select {k} from {t} where {as_of} = %s").format(
            k=key, t=sql.Identifier(*feed.table.split(".")), as_of=sql.Identifier(merge.as_of)), [day])}
    now = {row[0] for row in duck.execute(f"select {quote_ident(merge.key)} from read_parquet($path)",
                                          {"path": available[day]}).fetchall()}
    columns = feed_columns(conn, feed)
    key_column = next(c for c in columns if c.name == merge.key)
    named = quote_ident(merge.key)
    keys = duck.sql(f"select unnest($keys::{key_column.duckdb_type}[]) as {named}",
                    params={"keys": sorted(earlier | now)}).to_arrow_table()
    every = lake_select(duck, paths, columns, merge.postgres_derived(LOAD_DATE_COLUMN), feed.lenient,
                        f"lake {feed.layer}/{feed.lake_table}")
    duck.register("_replay_keys", keys)
    select = (f"with contributions as (\n    select * from ({every})\n"
              f"    where {named} in (select {named} from _replay_keys)\n)\n"
              f"select * from (\n{merge.postgres_replay([c.name for c in columns])}\n)")
    table = sql.Identifier(*feed.table.split("."))
    conn.execute("drop table if exists _in")
    conn.execute(sql.SQL("create temp table _in (like {} including defaults) on commit drop").format(table))
    conn.execute(sql.SQL("create temp table _replay_keys on commit drop as select {} from {} with no data").format(
        key, table))
    binary_copy.copy_batches(conn, sql.Identifier("_replay_keys"), [key_column], keys.to_batches())
    binary_copy.copy_batches(conn, sql.Identifier("_in"), columns, batches(duck, select, {"path": paths}))
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    conn.execute(sql.SQL("delete from {} where {} in (select {} from _replay_keys)").format(table, key, key))
    conn.execute(sql.SQL("insert into {} ({}) select {} from _in").format(table, names, names))
    conn.execute("drop table _replay_keys")
    duck.unregister("_replay_keys")
    return keys.num_rows
