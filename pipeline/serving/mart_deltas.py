"""Adding a date's change to the marts: the contribution's current table, then the marts derived from it.

`apply(conn, table, delta)` takes a temp table holding, per key of a contribution mart (see
`pipeline.serving.marts`), the change of every count and sum that a publish makes, and:

1. adds it to marts.<table> (one upsert; the rows it returns are each key's state after, and since
   every column adds up, its state before is after minus the change);
2. adds it to each derived mart (`ROLLUPS`): a sum column takes the sum of the changes, a distinct
   count (active users, users per funnel step) the number of keys whose count crossed zero, upward
   minus downward. The customer marts need more than sums: a customer's first and last order date
   and cohort move when the date that held them loses its last order (`_customers`, `_cohorts`);
3. removes the rows left with nothing (a key whose last order or event went to another day).

Only the changed keys are read and written: the cost follows the date, not the history. Every row
written is checked: a negative count or amount means the bookkeeping is wrong, and the publish
fails (MartsInconsistent, rolled back) rather than serving it.
"""
from __future__ import annotations

import dataclasses
import logging

import psycopg
from psycopg import sql

from pipeline.serving.facts import PublishError
from pipeline.serving.publish_errors import Progress

logger = logging.getLogger(__name__)

SCHEMA = "marts"
ORDER_MEASURES = (
    "order_count", "paid_order_count", "pending_order_count", "cancelled_order_count", "refunded_order_count",
    "sold_order_count", "units_sold", "gross_revenue", "net_revenue", "cancelled_revenue", "refunded_revenue",
)
CUSTOMER_MEASURES = ("order_count", "paid_order_count", "units_sold", "gross_revenue", "net_revenue")
# a contribution's row exists while this count is > 0
PRESENCE = {"product_sales_daily": "order_count", "customer_orders_daily": "order_count",
            "user_activity_daily": "event_count"}


class MartsInconsistent(PublishError):
    """A mart row would hold a negative count or amount: its bookkeeping is wrong; rebuild the marts."""


@dataclasses.dataclass(frozen=True)
class Rollup:
    """A derived mart (or some of its columns) computed from a contribution by adding changes up."""

    table: str
    source: str  # the contribution mart
    key: tuple[tuple[str, str], ...]  # (column, the contribution column it is)
    sums: tuple[str, ...] = ()  # columns that sum the contribution column of the same name
    distinct: tuple[tuple[str, str], ...] = ()  # (column, contribution count): how many keys have the count > 0
    exists: tuple[str, ...] = ()  # the row is kept while one of these is > 0


ROLLUPS = (
    Rollup("daily_kpis", "product_sales_daily", (("kpi_date", "order_date"),), sums=ORDER_MEASURES,
           exists=("order_count", "event_count")),
    Rollup("daily_kpis", "user_activity_daily", (("kpi_date", "event_date"),), sums=("event_count",),
           distinct=(("active_users", "event_count"), ("purchasing_users", "purchase_count")),
           exists=("order_count", "event_count")),
    Rollup("funnel_daily", "user_activity_daily", (("event_date", "event_date"),),
           distinct=(("active_users", "event_count"), ("users_with_page_views", "page_view_count"),
                     ("users_viewed_product", "product_view_count"), ("users_added_to_cart", "add_to_cart_count"),
                     ("users_checked_out", "checkout_count"), ("users_purchased", "purchase_count")),
           exists=("active_users",)),
    Rollup("product_sales", "product_sales_daily", (("product_id", "product_id"),), sums=ORDER_MEASURES,
           exists=("order_count",)),
)


def _ids(names: tuple[str, ...] | list[str], prefix: str = "") -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(prefix + "{}").format(sql.Identifier(n)) for n in names)


def _matching(left: str, right: str, keys: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(" and ").join(sql.SQL(f"{left}.{{k}} = {right}.{{k}}").format(k=sql.Identifier(k)) for k in keys)


def key_of(conn: psycopg.Connection, table: str) -> tuple[str, ...]:
    """The key of a mart: its primary key (sql/serving/012_marts.sql), in order."""
    return tuple(name for (name,) in conn.execute(
        """select a.attname from pg_index as i
           join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
           where i.indrelid = %s::regclass and i.indisprimary
           order by array_position(i.indkey::smallint[], a.attnum)""", [f"{SCHEMA}.{table}"]).fetchall())


def _measures(conn: psycopg.Connection, table: str) -> list[str]:
    keys = key_of(conn, table)
    return [name for (name,) in conn.execute(
        "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped"
        " order by attnum", [f"{SCHEMA}.{table}"]).fetchall() if name not in keys]


def _negative(columns: list[str] | tuple[str, ...]) -> sql.Composable:
    return sql.SQL(" or ").join(sql.SQL("{} < 0").format(sql.Identifier(c)) for c in columns)


def _verify(conn: psycopg.Connection, table: str, rows: sql.Composable, columns: list[str] | tuple[str, ...]) -> None:
    """Raise MartsInconsistent if the statement `rows` (rows written) holds a negative value."""
    bad = conn.execute(sql.SQL("with written as ({}) select count(*) from written where {}").format(
        rows, _negative(columns))).fetchone()[0]
    if bad:
        raise MartsInconsistent(f"marts.{table}: {bad} row(s) would hold a negative count or amount; the marts"
                                " disagree with the facts: rebuild them with `python -m pipeline rebuild-marts`,"
                                " then publish the date again")


def apply(conn: psycopg.Connection, table: str, delta: sql.Identifier, progress: Progress) -> int:
    """Add a publish's change (temp table `delta`) to marts.<table> and its derived marts; return the keys changed."""
    keys, measures = key_of(conn, table), _measures(conn, table)
    after = sql.Identifier(f"_mart_after_{table}")
    progress.at(f"{SCHEMA}.{table}")
    conn.execute(sql.SQL("drop table if exists {}").format(after))
    conn.execute(sql.SQL(
        """create temp table {after} on commit drop as
           with up as (insert into {target} as t ({keys}, {measures}) select {keys}, {measures} from {delta}
                       on conflict ({keys}) do update set {sets} returning t.*)
           select * from up""").format(
        after=after, target=sql.Identifier(SCHEMA, table), keys=_ids(keys), measures=_ids(measures), delta=delta,
        sets=sql.SQL(", ").join(sql.SQL("{c} = t.{c} + excluded.{c}").format(c=sql.Identifier(m)) for m in measures)))
    changed = conn.execute(sql.SQL("select count(*) from {}").format(after)).fetchone()[0]
    _verify(conn, table, sql.SQL("select * from {}").format(after), measures)
    for rollup in ROLLUPS:
        if rollup.source == table:
            progress.at(f"{SCHEMA}.{rollup.table}")
            _rollup(conn, rollup, delta, after, keys)
    empty = sql.SQL("select {} from {} where {} = 0").format(_ids(keys), after, sql.Identifier(PRESENCE[table]))
    if table == "customer_orders_daily":
        progress.at(f"{SCHEMA}.customers")
        _customers_before(conn, delta)
        _customers(conn, delta, after)
    conn.execute(sql.SQL("delete from {} where ({}) in ({})").format(sql.Identifier(SCHEMA, table), _ids(keys), empty))
    if table == "customer_orders_daily":
        _customers_moved(conn, delta, after)
        progress.at(f"{SCHEMA}.cohort_retention")
        _cohorts(conn, delta)
    return changed


def _rollup(conn: psycopg.Connection, rollup: Rollup, delta: sql.Identifier, after: sql.Identifier,
            keys: tuple[str, ...]) -> None:
    columns = [c for c, _ in rollup.key] + list(rollup.sums) + [c for c, _ in rollup.distinct]
    values = [sql.SQL("a.{} as {}").format(sql.Identifier(src), sql.Identifier(c)) for c, src in rollup.key]
    values += [sql.SQL("sum(d.{c}) as {c}").format(c=sql.Identifier(c)) for c in rollup.sums]
    values += [sql.SQL("sum(case when a.{n} > 0 then 1 else 0 end - case when a.{n} - d.{n} > 0 then 1 else 0 end)"
                       " as {c}").format(n=sql.Identifier(src), c=sql.Identifier(c)) for c, src in rollup.distinct]
    target_keys = tuple(c for c, _ in rollup.key)
    merged = [c for c in columns if c not in target_keys]
    statement = sql.SQL(
        """insert into {target} as t ({columns}) select {values} from {after} as a join {delta} as d on {match}
           group by {group} on conflict ({tkeys}) do update set {sets} returning t.*""").format(
        target=sql.Identifier(SCHEMA, rollup.table), columns=_ids(columns), values=sql.SQL(", ").join(values),
        after=after, delta=delta, match=_matching("a", "d", keys), group=_ids([src for _, src in rollup.key], "a."),
        tkeys=_ids(target_keys),
        sets=sql.SQL(", ").join(sql.SQL("{c} = t.{c} + excluded.{c}").format(c=sql.Identifier(c)) for c in merged))
    _verify(conn, rollup.table, statement, merged)
    conn.execute(sql.SQL("delete from {target} where ({tkeys}) in (select distinct {src} from {after} as a)"
                         " and not ({kept})").format(
        target=sql.Identifier(SCHEMA, rollup.table), tkeys=_ids(target_keys),
        src=_ids([src for _, src in rollup.key], "a."), after=after,
        kept=sql.SQL(" or ").join(sql.SQL("{} > 0").format(sql.Identifier(c)) for c in rollup.exists)))


# --------------------------------------------------------------------------------------- customers
def _customers_before(conn: psycopg.Connection, delta: sql.Identifier) -> None:
    """The touched customers' cohorts before the change (the cohort table moves them if it changes)."""
    conn.execute("drop table if exists _mart_cohort_before")
    conn.execute(sql.SQL("create temp table _mart_cohort_before on commit drop as select c.user_id, c.cohort_week"
                         " from marts.customers as c where c.user_id in (select d.user_id from {} as d)").format(delta))


def _customers(conn: psycopg.Connection, delta: sql.Identifier, after: sql.Identifier) -> None:
    """Sums added; first and last order dates widened by the days that gained their first order.

    A day that lost its last order may have held the first or last date: `_customers_moved` then
    reads them again. The sentinels only ever meet an existing row (a new customer has a day with
    orders), where least/greatest keep the row's own date.
    """
    appeared = "case when a.order_count > 0 then d.order_date end"
    sums = sql.SQL(", ").join(sql.SQL("sum(d.{c})").format(c=sql.Identifier(c)) for c in CUSTOMER_MEASURES)
    sets = sql.SQL(", ").join(sql.SQL("{c} = t.{c} + excluded.{c}").format(c=sql.Identifier(c)) for c in CUSTOMER_MEASURES)
    statement = sql.SQL(
        f"""insert into marts.customers as t (user_id, first_order_date, last_order_date, cohort_week, {{columns}})
           select d.user_id, coalesce(min({appeared}), date '9999-12-31'), coalesce(max({appeared}), date '0001-01-01'),
               cast(date_trunc('week', coalesce(min({appeared}), date '9999-12-31')) as date), {{sums}}
           from {{delta}} as d join {{after}} as a on a.user_id = d.user_id and a.order_date = d.order_date
           group by d.user_id
           on conflict (user_id) do update set
               first_order_date = least(t.first_order_date, excluded.first_order_date),
               last_order_date = greatest(t.last_order_date, excluded.last_order_date),
               cohort_week = cast(date_trunc('week', least(t.first_order_date, excluded.first_order_date)) as date),
               {{sets}}
           returning t.*""").format(columns=_ids(CUSTOMER_MEASURES), sums=sums, delta=delta, after=after, sets=sets)
    _verify(conn, "customers", statement, CUSTOMER_MEASURES)


def _customers_moved(conn: psycopg.Connection, delta: sql.Identifier, after: sql.Identifier) -> None:
    """Customers with a day that lost its last order: first/last dates read again; no order left: no row."""
    conn.execute(sql.SQL(
        """update marts.customers as t
           set first_order_date = r.first_order_date, last_order_date = r.last_order_date,
               cohort_week = cast(date_trunc('week', r.first_order_date) as date)
           from (select c.user_id, min(c.order_date) as first_order_date, max(c.order_date) as last_order_date
                 from marts.customer_orders_daily as c
                 where c.user_id in (select a.user_id from {after} as a where a.order_count = 0)
                 group by c.user_id) as r
           where t.user_id = r.user_id""").format(after=after))
    conn.execute(sql.SQL("delete from marts.customers where order_count = 0 and user_id in (select d.user_id from {} as d)")
                 .format(delta))


def _cohorts(conn: psycopg.Connection, delta: sql.Identifier) -> None:
    """The cohort table's change: customers whose cohort stayed move in the weeks whose orders crossed
    zero; a new, lost or moved cohort takes every week of the customer out of the old and into the new."""
    conn.execute("drop table if exists _mart_cohort_users, _mart_cohort_weeks, _mart_cohort_changes")
    conn.execute(sql.SQL(
        """create temp table _mart_cohort_users on commit drop as
           select u.user_id, b.cohort_week as cohort_before, c.cohort_week as cohort_after
           from (select distinct d.user_id from {delta} as d) as u
           left join _mart_cohort_before as b on b.user_id = u.user_id
           left join marts.customers as c on c.user_id = u.user_id""").format(delta=delta))
    conn.execute(sql.SQL(
        """create temp table _mart_cohort_weeks on commit drop as
           select w.user_id, w.order_week, w.changed,
               (select coalesce(sum(c.order_count), 0) from marts.customer_orders_daily as c
                where c.user_id = w.user_id and c.order_date >= w.order_week and c.order_date < w.order_week + 7)
                   as orders_after
           from (select d.user_id, cast(date_trunc('week', d.order_date) as date) as order_week,
                        sum(d.order_count) as changed
                 from {delta} as d group by d.user_id, cast(date_trunc('week', d.order_date) as date)) as w"""
    ).format(delta=delta))
    conn.execute(
        """create temp table _mart_cohort_changes on commit drop as
           select changes.cohort_week, changes.weeks_since_first_order, sum(changes.n) as active_customers
           from (
               select u.cohort_after as cohort_week, (w.order_week - u.cohort_after) / 7 as weeks_since_first_order,
                   case when w.orders_after > 0 then 1 else 0 end
                       - case when w.orders_after - w.changed > 0 then 1 else 0 end as n
               from _mart_cohort_weeks as w join _mart_cohort_users as u on u.user_id = w.user_id
               where u.cohort_before = u.cohort_after
               union all
               select u.cohort_before, (b.order_week - u.cohort_before) / 7, -1
               from _mart_cohort_users as u
               cross join lateral (
                   select x.order_week from (
                       select cast(date_trunc('week', c.order_date) as date) as order_week, c.order_count as orders
                       from marts.customer_orders_daily as c where c.user_id = u.user_id
                       union all
                       select w.order_week, -w.changed from _mart_cohort_weeks as w where w.user_id = u.user_id
                   ) as x group by x.order_week having sum(x.orders) > 0) as b
               where u.cohort_before is not null and u.cohort_before is distinct from u.cohort_after
               union all
               select u.cohort_after, (a.order_week - u.cohort_after) / 7, 1
               from _mart_cohort_users as u
               cross join lateral (
                   select distinct cast(date_trunc('week', c.order_date) as date) as order_week
                   from marts.customer_orders_daily as c where c.user_id = u.user_id) as a
               where u.cohort_after is not null and u.cohort_before is distinct from u.cohort_after
           ) as changes
           group by changes.cohort_week, changes.weeks_since_first_order
           having sum(changes.n) <> 0""")
    _verify(conn, "cohort_retention", sql.SQL(
        """insert into marts.cohort_retention as t (cohort_week, weeks_since_first_order, active_customers)
           select cohort_week, weeks_since_first_order, active_customers from _mart_cohort_changes
           on conflict (cohort_week, weeks_since_first_order)
               do update set active_customers = t.active_customers + excluded.active_customers
           returning t.*"""), ("active_customers",))
    conn.execute("""delete from marts.cohort_retention where active_customers = 0 and (cohort_week, weeks_since_first_order)
                    in (select cohort_week, weeks_since_first_order from _mart_cohort_changes)""")
