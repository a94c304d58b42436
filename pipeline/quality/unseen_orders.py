"""Refunds and cancellations of an order no other load date delivered: created on a closed day, so the gate warns.

Staging keeps a cancelled or refunded order older than [model] late_window_days (back to status_change_window_days)
from the row alone: it is a status change of an order an earlier load date delivered. When no other load date's
fact_orders holds its order_id, it creates an order on that earlier day instead. The date's staging cannot know
(it depends only on its own files), so the quality gate counts them (sql/gate/unseen_status_changes.sql, the view
checks/warehouse/fact_orders.yml reads) and warns, naming a few ids: never fails, since dates may run out of order
and a later run of the order's own load date converges.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from pipeline import lake
from pipeline.lake import sqlrun
from pipeline.quality.results import CheckResult, described
from pipeline.transform import staging

VIEW = "unseen_status_changes"
OTHER_DATES = "fact_orders_other_dates"  # the relation's name in sql/gate/unseen_status_changes.sql
FIGURE = "unseen_status_change"
# an order is delivered on its own business day or later (a timestamp after the load date's end plus the future
# tolerance is quarantined): load dates from the status change window's first day, less a day of time zone slack
SLACK = dt.timedelta(days=2)


def _load_date(path: str) -> dt.date | None:
    for part in path.replace("\\", "/").split("/"):
        if part.startswith("load_date="):
            try:
                return lake.parse_date(part.split("=", 1)[1])
            except ValueError:
                return None
    return None


def other_dates_files(day: dt.date) -> list[str]:
    """fact_orders partitions of the other load dates that can hold the order of one of `day`'s status changes."""
    earliest = staging.timestamp_limits(day)["status_change_limit_ts"].date() - SLACK
    return [path for path in lake.files_matching(lake.table_glob("warehouse", "fact_orders"))
            if (load_date := _load_date(path)) is not None and load_date != day and load_date >= earliest]


def register(con: Any, day: dt.date) -> None:
    """Build VIEW on a connection that has the date's `fact_orders` view. The other dates' order_ids are read only
    when the date has a status change past the late window (most dates have none: their gate reads no other
    partition), from the partitions `other_dates_files` lists."""
    sql = sqlrun.sql_text("gate", VIEW)
    params = sqlrun.bind(sql, {"ancient_limit_ts": staging.timestamp_limits(day)["ancient_limit_ts"],
                               "status_change_statuses": staging.STATUS_CHANGE_STATUSES})
    create = f"create or replace temp table {sqlrun.quote_ident(VIEW)} as {sql}"
    con.register(OTHER_DATES, pa.table({"order_id": pa.array([], pa.string())}))
    con.execute(create, params)  # every status change past the late window, as if no other date delivered any
    if not con.execute(f"select count(*) from {sqlrun.quote_ident(VIEW)}").fetchall()[0][0]:
        return
    if files := other_dates_files(day):
        con.register(OTHER_DATES, con.read_parquet(files, union_by_name=True, hive_partitioning=False)
                     .select("order_id"))
        con.execute(create, params)


def explain(con: Any, result: CheckResult, day: str) -> CheckResult | None:
    """The check's message with how many and a few of the ids (None: not this check, or it did not warn)."""
    attributes = result.attributes or {}
    if attributes.get("figure") != FIGURE or result.outcome != "warn":
        return None
    count, examples = con.execute(
        f"select count(*), coalesce(list(order_id order by order_id)[1:5], []) from {sqlrun.quote_ident(VIEW)}"
    ).fetchone()
    more = ", ..." if count > len(examples) else ""
    detail = (f"{count:,} of {day}'s cancelled or refunded orders older than [model] late_window_days name an order"
              f" no other load date delivered ({', '.join(examples)}{more})")
    return described(result, detail, attributes.get("advice"))
