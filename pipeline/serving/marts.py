"""The marts in Postgres: kept exact by each date's publish transaction, at a cost that does not grow with history.

A contribution mart (`pipeline.transform.marts.CONTRIBUTIONS`, e.g. marts.user_activity_daily) is a
model of counts and sums over a fact: its current table is the model over the current facts. Since
the model only adds up rows, the current table is the sum over every published load date of that
date's contribution (`lake/marts/<table>/load_date=D`, built and checked beside the gate) minus the
contributions of the fact versions that are not current (warehouse.<fact>_superseded). Publishing D
therefore changes it by

    delta = D's new contribution (the lake partition)
          - D's old contribution, on a republish (the model over the date's published partition)
          - the model over the versions this publish supersedes
          + the model over the versions it stops superseding

The last two concern only the ids `pipeline.serving.facts.supersede` re-examined (re-deliveries and
resends: few), and their rows are read from the fact partitions (a republished date's old rows from
its old partition, its new ones from the new). The model is the same SQL file DuckDB builds the lake
partition with (portable SQL), so both engines count alike. `pipeline.serving.mart_deltas` adds the
delta to the current table and to the marts derived from it (daily KPIs, the funnel, customers ...),
for the keys it touches only. Nothing here reads more than the date and the re-examined ids.

`rebuild(conn)` recomputes every mart from the current facts (the models over all of history): for a
database whose dates were published before the marts existed (the publish does it once, by itself),
for the benchmark's cloned history, and as the tests' reference.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from typing import Any

import duckdb
import psycopg
from psycopg import sql

from pipeline import lake
from pipeline.lake.sqlrun import quote_ident
from pipeline.serving import binary_copy, mart_deltas
from pipeline.serving.facts import FACTS, FactSpec, date_rows
from pipeline.serving.lake_rows import batches, lake_select, text_columns
from pipeline.serving.publish_errors import Progress
from pipeline.transform import marts as models

logger = logging.getLogger(__name__)

SCHEMA = "marts"


@dataclasses.dataclass(frozen=True)
class Contribution:
    """A contribution mart: its table (= model = lake table), the fact it reads, its key."""

    table: str
    fact: FactSpec

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{self.table}"


def _fact(lake_table: str) -> FactSpec:
    return next(spec for spec in FACTS if spec.lake_table == lake_table)


CONTRIBUTIONS = tuple(Contribution(table, _fact(models.inputs(table)[0])) for table in models.CONTRIBUTIONS)


def needs_backfill(conn: psycopg.Connection) -> bool:
    """Whether dates were published before the marts existed (a published load date that is no complete day)."""
    return conn.execute(
        """select exists (select 1 from audit.publish_log as p
                          where not exists (select 1 from marts.complete_days as c where c.complete_date = p.load_date))"""
    ).fetchone()[0]


def backfill_if_needed(conn: psycopg.Connection, progress: Progress) -> dict[str, Any]:
    """Fill the marts from the current facts if dates were published before they existed (once).

    Called in the publish transaction BEFORE the date's supersede: the marts must describe the state
    the date's change is then added to, not one that already counts part of it.
    """
    if not needs_backfill(conn):
        return {}
    progress.at("marts")
    logger.warning("the marts lack dates published before they existed: rebuilding them from the current facts"
                   " once (this publish takes longer)")
    return {"marts_rebuilt": rebuild(conn)}


def publish_date(conn: psycopg.Connection, duck: duckdb.DuckDBPyConnection, day: dt.date,
                 loaded: dict[FactSpec, dict[str, object]], progress: Progress) -> dict[str, Any]:
    """Bring every mart up to date with D's publish (in its transaction: after supersede, before the swap).

    `loaded`: the new fact partitions' stage tables (publish's `loaded`). Returns what was changed.
    """
    started = time.perf_counter()
    summary: dict[str, Any] = {}
    _complete_day(conn, duck, day, progress)
    fixes = {spec: _superseded_rows(conn, spec, day, loaded[spec]) for spec in FACTS}
    for mart in CONTRIBUTIONS:
        delta = _delta(conn, duck, mart, day, loaded[mart.fact], fixes[mart.fact], progress)
        summary[f"{mart.table}_changed"] = mart_deltas.apply(conn, mart.table, delta, progress)
    summary["marts_seconds"] = round(time.perf_counter() - started, 4)
    return summary


def _lake_partition(table: str, day: dt.date) -> str | None:
    """The date's mart partition in the lake; None (with a warning) when it was not built.

    A lake built before the marts existed (or by hand) has none: the publish then computes the
    date's contribution in Postgres from the date's facts with the same model file (slower, exact).
    """
    path = lake.partition_file(models.LAYER, table, day)
    if lake.exists(path):
        return path
    logger.warning("lake %s/%s for %s is not built (%s): computing it from the date's facts in Postgres;"
                   " run the pipeline for the date to build it beside the quality gate", models.LAYER, table, day, path)
    return None


def _complete_day(conn: psycopg.Connection, duck: duckdb.DuckDBPyConnection, day: dt.date, progress: Progress) -> None:
    """marts.complete_days gains the rows of the date's partition (sql/marts/complete_days.sql: the date itself)."""
    path = _lake_partition("complete_days", day)
    columns = binary_copy.table_columns(conn, f"{SCHEMA}.complete_days")
    progress.at(f"{SCHEMA}.complete_days", path=path)
    rows = [(day,)] if path is None else duck.execute(
        lake_select(duck, path, columns, {}, False, f"lake {models.LAYER}/complete_days"), {"path": path}).fetchall()
    for row in rows:
        conn.execute(sql.SQL("insert into marts.complete_days ({}) values ({}) on conflict do nothing").format(
            sql.SQL(", ").join(sql.Identifier(c.name) for c in columns), sql.SQL(", ").join(sql.Placeholder() * len(row))),
            row)


# ------------------------------------------------------------------------------ the delta of a date
def _model_rows(conn: psycopg.Connection, mart: Contribution, facts: sql.Composable, columns: list[str],
                sign: int) -> sql.Composable:
    """SELECT the mart's model over `facts` (a relation of its fact's rows), measures times `sign`."""
    source = facts.as_string(conn)
    select = models.over({mart.fact.lake_table: f"select * from {source} as fact_rows"}, models.model_sql(mart.table))
    keys = set(mart_deltas.key_of(conn, mart.table))
    picked = ", ".join(quote_ident(c) if c in keys or sign == 1 else f"-{quote_ident(c)}" for c in columns)
    return sql.SQL(f"select {picked} from (\n{select}\n) as contribution")  # text only: no placeholders


def _delta(conn: psycopg.Connection, duck: duckdb.DuckDBPyConnection, mart: Contribution, day: dt.date,
           loaded: dict[str, object], fixes: sql.Identifier | None, progress: Progress) -> sql.Identifier:
    """A temp table of what D's publish changes in the mart: one row per key, every measure's change."""
    raw, delta = sql.Identifier(f"_mart_raw_{mart.table}"), sql.Identifier(f"_mart_delta_{mart.table}")
    target = sql.Identifier(SCHEMA, mart.table)
    conn.execute(sql.SQL("drop table if exists {}, {}").format(raw, delta))
    conn.execute(sql.SQL("create temp table {} (like {} including defaults) on commit drop").format(raw, target))
    columns = binary_copy.table_columns(conn, mart.qualified)
    names = [c.name for c in columns]
    insert = sql.SQL("insert into {} ({}) ").format(raw, sql.SQL(", ").join(map(sql.Identifier, names)))
    path = _lake_partition(mart.table, day)
    if path is None:  # the model over the date's new fact rows (their stage table), in Postgres
        progress.at(mart.qualified)
        stage = sql.Identifier(str(loaded["schema"]), str(loaded["table"]))
        conn.execute(insert + _model_rows(conn, mart, stage, names, 1))
    else:
        what = f"lake {models.LAYER}/{mart.table}"
        select = lake_select(duck, path, columns, {}, False, what, served_whole=True)
        progress.at(mart.qualified, path=path, params={"path": path}, keys=mart_deltas.key_of(conn, mart.table),
                    select=lambda: lake_select(duck, path, columns, {}, False, what, row_numbers=True),
                    text_columns=text_columns(columns))
        binary_copy.copy_batches(conn, raw, columns, batches(duck, select, {"path": path}))
    progress.at(mart.qualified)
    old = date_rows(conn, mart.fact, day)  # its daily partition, or its rows of the compacted month
    if old is not None:
        # a republish: take back what the date's published rows contributed
        conn.execute(insert + _model_rows(conn, mart, old, names, -1))
    if fixes is not None:
        for sign in (-1, 1):
            rows = sql.SQL("(select {} from {} where sign = {})").format(
                sql.SQL(", ").join(map(sql.Identifier, _fact_columns(conn, mart.fact))), fixes, sql.Literal(sign))
            conn.execute(insert + _model_rows(conn, mart, rows, names, sign))
    keys = mart_deltas.key_of(conn, mart.table)
    measures = [n for n in names if n not in keys]
    conn.execute(sql.SQL(
        "create temp table {delta} on commit drop as select {keys}, {sums} from {raw} group by {keys}"
        " having {nonzero}").format(
        delta=delta, raw=raw, keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
        sums=sql.SQL(", ").join(sql.SQL("sum({c}) as {c}").format(c=sql.Identifier(m)) for m in measures),
        nonzero=sql.SQL(" or ").join(sql.SQL("sum({}) <> 0").format(sql.Identifier(m)) for m in measures)))
    return delta


def _fact_columns(conn: psycopg.Connection, spec: FactSpec) -> list[str]:
    return [c.name for c in binary_copy.table_columns(conn, f"warehouse.{spec.parent}")]


def _superseded_rows(conn: psycopg.Connection, spec: FactSpec, day: dt.date,
                     loaded: dict[str, object]) -> sql.Identifier | None:
    """The fact rows whose current-version status this publish changed, signed; None when there are none.

    sign -1: newly superseded (their contribution leaves the marts); +1: no longer superseded (it comes
    back). From `supersede`'s record of the superseded rows of the ids it re-examined, before and after;
    a row on both sides is unchanged unless it is of D itself, whose old and new rows differ.
    """
    changes = conn.execute(
        """select c.side, c.load_date from _supersede_changes as c
           where c.fact_table = %(t)s and (c.load_date = %(d)s or not exists (
               select 1 from _supersede_changes as o
               where o.fact_table = c.fact_table and o.id = c.id and o.load_date = c.load_date and o.side <> c.side))
           group by c.side, c.load_date order by 1, 2""",
        {"t": spec.parent, "d": day},
    ).fetchall() if conn.execute("select to_regclass('pg_temp._supersede_changes') is not null").fetchone()[0] else []
    if not changes:
        return None
    fixes = sql.Identifier(f"_mart_fix_{spec.lake_table}")
    parent = sql.Identifier("warehouse", spec.parent)
    conn.execute(sql.SQL("drop table if exists {}").format(fixes))
    conn.execute(sql.SQL("create temp table {} on commit drop as select 1::smallint as sign, p.* from {} as p"
                         " with no data").format(fixes, parent))
    for side, load_date in changes:
        if load_date == day and side == "after":  # D's new rows: still in their stage table
            source = sql.Identifier(str(loaded["schema"]), str(loaded["table"]))
        else:  # any other date's rows, and D's old ones, are in its (still attached) partition or month
            source = date_rows(conn, spec, load_date)
        conn.execute(sql.SQL(
            """insert into {fixes} select {sign}, p.* from {source} as p
               where p.{key} in (select c.id from _supersede_changes as c
                                 where c.fact_table = %(t)s and c.side = %(side)s and c.load_date = %(ld)s
                                     and (c.load_date = %(d)s or not exists (
                                         select 1 from _supersede_changes as o
                                         where o.fact_table = c.fact_table and o.id = c.id
                                             and o.load_date = c.load_date and o.side <> c.side)))"""
        ).format(fixes=fixes, sign=sql.Literal(-1 if side == "after" else 1), source=source,
                 key=sql.Identifier(spec.key)), {"t": spec.parent, "side": side, "ld": load_date, "d": day})
    return fixes


# ------------------------------------------------------------------------------------ the rebuild
def rebuild(conn: psycopg.Connection, *, derived_only: bool = False) -> dict[str, int]:
    """Recompute every mart from the current facts and the published dates; return the rows of each.

    The models over all of history (`pipeline.transform.marts.current_sql`, the text the lake's views
    run), so its cost grows with history: the publish keeps the marts by deltas instead.
    `derived_only`: recompute only the derived marts from the contributions as they are.
    """
    rows: dict[str, int] = {}
    tables = models.DERIVED if derived_only else (*models.CONTRIBUTIONS, *models.DERIVED)
    for table in tables:
        conn.execute(sql.SQL("delete from {}").format(sql.Identifier(SCHEMA, table)))
    for table in tables:  # the derived marts read the contributions
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in binary_copy.table_columns(conn, f"{SCHEMA}.{table}"))
        # in key order, so that a range of days (the queries' reporting window) lies on a few pages
        key = sql.SQL(", ").join(map(sql.Identifier, mart_deltas.key_of(conn, table)))
        cursor = conn.execute(sql.SQL("insert into {} ({}) select {} from ({}) as current_rows order by {}").format(
            sql.Identifier(SCHEMA, table), names, names, sql.SQL(models.current_sql(table)), key))
        rows[table] = cursor.rowcount
    if not derived_only:
        # the same rule as sql/marts/complete_days.sql: a published load date completes its own day
        conn.execute("delete from marts.complete_days")
        rows["complete_days"] = conn.execute(
            "insert into marts.complete_days (complete_date) select load_date from audit.publish_log").rowcount
    logger.info("rebuilt the marts from the current facts: %s", ", ".join(f"{t} {n}" for t, n in rows.items()))
    return rows
