"""The dimensions merge by one declaration (pipeline.transform.merges) in both engines.

The lake's current views (DuckDB, every partition at once) and the Postgres publish (one date at a
time, in any order) are rendered from the same rules, so they hold the same rows.
"""
from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import psycopg
import pytest

from pipeline.lake import sqlrun
from pipeline.serving import feeds, publish
from pipeline.transform import warehouse
from tests.support.serving import PRODUCT_SCHEMA, USER_SCHEMA, event, order, write_facts, write_rows

DAYS = [dt.date(2025, 12, 14) + dt.timedelta(days=n) for n in range(4)]
USER_COLUMNS = "user_id, first_seen_date, first_order_date, last_seen_date, city, country"
PRODUCT_COLUMNS = "product_id, product_name, category, brand, current_price, effective_from, is_inferred"
HISTORY_COLUMNS = "product_id, version, product_name, effective_from, effective_to, is_current"


def _contributions(seed: int) -> tuple[dict, dict, dict]:
    """Per date, dim_user and dim_product partitions with the nasty cases: nulls, a city without a country,
    a product inferred on some dates and catalogued on others."""
    rng = random.Random(seed)

    def some_date() -> dt.date | None:
        return rng.choice([None, DAYS[0] + dt.timedelta(days=rng.randint(-3, 5))])

    users, products, history = {}, {}, {}
    for day in DAYS:
        users[day] = [{"user_id": f"U{n}", "first_seen_date": some_date(), "first_order_date": some_date(),
                       "last_seen_date": some_date(), "city": rng.choice([None, None, "Oslo", "Rome", "Lyon"]),
                       "country": rng.choice([None, "NO", "IT", "FR"]), "load_date": day}
                      for n in range(12) if rng.random() < 0.7]
        products[day] = [{"product_key": f"P{n}-{day}", "product_id": f"P{n}",
                          "product_name": f"name {rng.randint(1, 9)}", "category": "C", "brand": "B",
                          "current_price": Decimal(rng.randint(100, 999)) / 100, "effective_from": some_date(),
                          "is_inferred": rng.random() < 0.4, "load_date": day}
                         for n in range(8) if rng.random() < 0.7]
        history[day] = [{"product_id": f"P{n}", "version": version, "product_name": f"name {version}",
                         "category": "C", "brand": "B", "current_price": Decimal("1.00"), "effective_from": day,
                         "effective_to": None, "is_current": version == versions, "load_date": day}
                        for n in range(rng.randint(1, 5)) for versions in [rng.randint(1, 3)]
                        for version in range(1, versions + 1)]
    return users, products, history


def _write(day: dt.date, users: list, products: list, history: list = ()) -> None:
    write_facts(day, [order(f"O{day.day}", day)], [event(f"E{day.day}", day)])
    write_rows("warehouse", "dim_user", day, users, USER_SCHEMA)
    write_rows("warehouse", "dim_product", day, products, PRODUCT_SCHEMA)
    if history:
        write_rows("warehouse", "dim_product_history", day, history)


def _lake() -> tuple[list, ...]:
    with sqlrun.connect() as con:
        warehouse.create_current_views(con)
        return (sorted(con.execute(f"select {USER_COLUMNS} from dim_user").fetchall()),
                sorted(con.execute(f"select {PRODUCT_COLUMNS}, load_date from dim_product").fetchall()),
                sorted(con.execute(f"select {HISTORY_COLUMNS}, load_date from dim_product_history").fetchall()))


def _postgres(dsn: str) -> tuple[list, ...]:
    with psycopg.connect(dsn) as conn:
        return (sorted(conn.execute(f"select {USER_COLUMNS} from warehouse.dim_user").fetchall()),
                sorted(conn.execute(f"select {PRODUCT_COLUMNS}, valid_as_of from warehouse.dim_product").fetchall()),
                sorted(conn.execute(f"select {HISTORY_COLUMNS}, valid_as_of from warehouse.dim_product_history"
                                    ).fetchall()))


@pytest.mark.parametrize("seed", [1, 2])
def test_postgres_holds_the_lake_s_current_dimensions_whatever_the_publish_order(
        seed, fresh_db, serving_lake, dsn_server, monkeypatch) -> None:
    users, products, history = _contributions(seed)
    for day in DAYS:
        _write(day, users[day], products[day], history[day])
    lake_rows = _lake()
    assert all(lake_rows)
    for day in (DAYS[2], DAYS[0], DAYS[3], DAYS[1]):
        publish.publish(day)
    assert _postgres(fresh_db.dsn) == lake_rows
    in_order = dsn_server.create_database(f"{fresh_db.database}_b")
    monkeypatch.setenv("ECOMM_PG_DSN", in_order)
    for day in DAYS:
        publish.publish(day)
    assert _postgres(in_order) == lake_rows
    # a date published again with other locations (its users snapshot changed): the date's new word wins
    moved = [{**user, "city": "Bergen", "country": "NO"} for user in users[DAYS[3]]]
    write_rows("warehouse", "dim_user", DAYS[3], moved, USER_SCHEMA)
    publish.publish(DAYS[3])
    assert _postgres(in_order) == _lake()


@pytest.mark.parametrize("seed", [3, 4])
def test_a_date_published_again_with_other_contributions_leaves_what_the_lake_merges(
        seed, fresh_db, serving_lake) -> None:
    """Users and products only a date's earlier version named go; dates and versions only it gave fall back.

    As a restatement does: the date's facts (which name its users and products) and dimension
    partitions both change. Postgres cannot take a contribution back by merging, so it merges the
    date's keys again from every published date (feeds.replay_keys).
    """
    users, products, history = _contributions(seed)
    for day in DAYS:
        _write(day, users[day], products[day], history[day])
    for day in DAYS:
        publish.publish(day)
    assert _postgres(fresh_db.dsn) == _lake()
    day = DAYS[1]
    assert users[day] or products[day], "the date's earlier version names someone"
    named = ([order(f"U{n}", day, user_id=u["user_id"]) for n, u in enumerate(users[day])]
             + [order(f"P{n}", day, product_id=p["product_id"]) for n, p in enumerate(products[day])])
    write_facts(day, named, [event("E1", day)])
    publish.publish(day)  # Postgres's facts of the date name the earlier version's users and products
    new_users = [{**u, "load_date": day} for u in _contributions(seed + 100)[0][DAYS[2]]]
    new_products = [{**p, "load_date": day} for p in _contributions(seed + 200)[1][DAYS[0]]]
    write_facts(day, [order(f"N{n}", day, user_id=u["user_id"]) for n, u in enumerate(new_users)] or [order("N", day)],
                [event("E1", day)])
    write_rows("warehouse", "dim_user", day, new_users, USER_SCHEMA)
    write_rows("warehouse", "dim_product", day, new_products, PRODUCT_SCHEMA)
    publish.publish(day)
    assert _postgres(fresh_db.dsn) == _lake()


def _calendar(day: dt.date, load_date: dt.date) -> dict:
    """A dim_date lake row of `day` (what sql/warehouse/dim_date.sql computes), contributed by `load_date`."""
    return {"date_id": int(day.strftime("%Y%m%d")), "full_date": day, "year": day.year,
            "quarter": (day.month - 1) // 3 + 1, "month": day.month, "month_name": day.strftime("%B"),
            "day_of_month": day.day, "day_of_week": day.isoweekday(), "day_name": day.strftime("%A"),
            "week_of_year": day.isocalendar().week, "iso_year": day.isocalendar().year,
            "is_weekend": day.isoweekday() >= 6, "load_date": load_date}


def test_a_day_only_a_replaced_date_named_leaves_dim_date(fresh_db, serving_lake) -> None:
    """dim_date keeps a calendar day while a published date names it (KeyMerge), whatever was published before."""
    late, shared = DAYS[0] - dt.timedelta(days=10), DAYS[0]
    for day in DAYS:
        write_facts(day, [order(f"O{day.day}", day)], [event(f"E{day.day}", day)])
        write_rows("warehouse", "dim_date", day, [_calendar(day, day)])
    replaced = DAYS[2]  # its first version has a late order of `late` and one of a day DAYS[0] names too
    write_facts(replaced, [order("L1", late, load_date=replaced), order("L2", shared, load_date=replaced)],
                [event("E", replaced)])
    write_rows("warehouse", "dim_date", replaced, [_calendar(d, replaced) for d in (late, shared, replaced)])
    for day in DAYS:
        publish.publish(day)
    write_facts(replaced, [order("O", replaced)], [event("E", replaced)])
    write_rows("warehouse", "dim_date", replaced, [_calendar(replaced, replaced)])
    publish.publish(replaced)

    columns = ", ".join(c for c in _calendar(late, late) if c != "load_date")
    with sqlrun.connect() as con:
        warehouse.create_current_views(con)
        lake_days = sorted(con.execute(f"select {columns} from dim_date").fetchall())
    with psycopg.connect(fresh_db.dsn) as conn:
        served = sorted(conn.execute(f"select {columns} from warehouse.dim_date").fetchall())
    assert served == lake_days
    assert [row[1] for row in served] == DAYS  # `late` went; `shared` stays, DAYS[0] names it


def test_a_serving_column_without_a_merge_rule_is_refused(fresh_db, serving_lake) -> None:
    """A column added to dim_user must get a rule; it is not silently overwritten (or dropped) by a publish."""
    _write(DAYS[0], [{"user_id": "U1", "first_seen_date": DAYS[0], "first_order_date": None,
                      "last_seen_date": DAYS[0], "city": None, "country": None, "load_date": DAYS[0]}], [])
    publish.publish(DAYS[0])
    with psycopg.connect(fresh_db.dsn) as conn:
        conn.execute("alter table warehouse.dim_user add column segment text")
    write_rows("warehouse", "dim_user", DAYS[0], [{"user_id": "U1", "first_seen_date": DAYS[0],
               "first_order_date": None, "last_seen_date": DAYS[0], "city": None, "country": None,
               "segment": "vip", "load_date": DAYS[0]}])
    with pytest.raises(feeds.MergeRuleMissing, match=r"warehouse.dim_user has column\(s\) segment without a merge rule"):
        publish.publish(DAYS[0])
