"""Every file in queries/ gives the same answer on the lake (DuckDB) and on Postgres.

One dataset for the module: 4 generated days with dirty rows (quarantine, duplicates, late and
restated orders, unknown products, warned checks) run through the real pipeline (Luigi, DuckDB,
Parquet, SodaCL, publish) into a throwaway lake and a fresh database on the throwaway embedded
Postgres, plus one hand-made load date with the cases the seed's queries got wrong. Each query then
runs unchanged on `pipeline.lake.views.open_lake()` and on Postgres as the read-only login bi_reader,
and the results must be identical: same columns, same Python types, Decimals equal exactly, floats
(only where a float is the natural type) within 1e-12, rows in the same order where the query has
an ORDER BY, as multisets otherwise.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from pipeline.lake import views
from pipeline.serving import migrations, publish
from tests.support import analytics_dataset
from tests.support.paths import REPO
from tests.support.serving import event, order, write_facts, write_rows

QUERIES = sorted(views.queries())
SEED_QUERIES = ("revenue_by_category_daily", "conversion_funnel", "repeat_customers", "pipeline_health")
REQUIRED = SEED_QUERIES + (
    "daily_revenue_moving_average", "top_products", "aov_by_category", "cohort_retention",
    "cancellation_refund_rates", "data_quality_trend",
)

# The hand-made load date, before the generated ones: its events (2025-12-01) have no add-to-cart,
# its orders fall on 2025-12-02 (a day without events) and their average is a half-cent tie,
# 2.01 / 2 = 1.005, which a double-precision average rounds to 1.00 (exact: 1.01).
EDGE_DAY = dt.date(2025, 12, 1)
ORDER_DAY = dt.date(2025, 12, 2)


def _edge_rows() -> tuple[list[dict], list[dict]]:
    def placed(order_id: str, day: dt.date, price: str, quantity: int, status: str) -> dict:
        revenue = Decimal(price) * quantity
        return order(order_id, EDGE_DAY, user_id="EDGE_U1", order_ts=dt.datetime.combine(day, dt.time(9)),
                     date_id=int(day.strftime("%Y%m%d")), quantity=quantity, unit_price=Decimal(price),
                     revenue=revenue, net_revenue=revenue if status == "paid" else Decimal("0.00"), status=status)

    orders = [
        placed("EDGE_O1", ORDER_DAY, "1.00", 1, "paid"),
        placed("EDGE_O2", ORDER_DAY, "1.01", 1, "cancelled"),
        placed("EDGE_O3", ORDER_DAY + dt.timedelta(days=1), "0.50", 3, "paid"),  # a repeat customer
    ]
    events = [
        event("EDGE_E1", EDGE_DAY, user_id="EDGE_U1", product_id=None, event_type="page_view"),
        event("EDGE_E2", EDGE_DAY, user_id="EDGE_U2", product_id=None, event_type="page_view"),
        event("EDGE_E3", EDGE_DAY, user_id="EDGE_U2", event_type="view_product"),
    ]
    return orders, events


# The reporting window of the dataset is the 30 days ending at the latest generated day: 2025-11-17 to
# 2025-12-16. A load date on its first day brings an order of that day and two late orders (and a late
# event): one 3 days before the window (inside the 7-day moving average of the window's first day) and
# one a month before. The day-by-day queries must leave both days out, and the moving average still count the first.
FIRST_DAY = dt.date(2025, 11, 17)


def _window_edge_rows() -> tuple[list[dict], list[dict]]:
    def placed(order_id: str, day: dt.date) -> dict:
        return order(order_id, FIRST_DAY, user_id=f"WIN_U_{order_id}", product_id="PROD_0002",
                     order_ts=dt.datetime.combine(day, dt.time(10)), date_id=int(day.strftime("%Y%m%d")))

    orders = [placed("WIN_O1", FIRST_DAY), placed("WIN_O2", FIRST_DAY - dt.timedelta(days=3)),
              placed("WIN_O3", dt.date(2025, 10, 15))]
    early = FIRST_DAY - dt.timedelta(days=3)
    events = [event("WIN_E1", FIRST_DAY, user_id="WIN_U_WIN_O1", product_id="PROD_0002", event_type="add_to_cart"),
              event("WIN_E2", FIRST_DAY, user_id="WIN_U_WIN_O2", event_type="purchase",
                    event_ts=dt.datetime.combine(early, dt.time(10)), date_id=int(early.strftime("%Y%m%d")))]
    return orders, events


# A load date a week before the window, with a quarantined row: the per-load-date data-quality trend
# starts at the window too.
BEFORE_DAY = FIRST_DAY - dt.timedelta(days=7)


def _before_rows() -> tuple[list[dict], list[dict]]:
    write_rows("audit", "bad_records", BEFORE_DAY, [{
        "source_table": "stg_orders", "record_id": "ORD_X", "reason_code": "invalid_price", "message": "bad",
        "failing_value": "abc", "raw_record": '{"price": "abc"}', "source_file": "orders.json", "row_number": 3,
        "load_date": BEFORE_DAY}], source_table="stg_orders")
    return [order("BEFORE_O1", BEFORE_DAY, user_id="BEFORE_U1")], []


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, embedded_server):
    root = tmp_path_factory.mktemp("queries")
    with analytics_dataset.pipeline_dataset(root, embedded_server) as built:
        for day, (orders, events) in ((EDGE_DAY, _edge_rows()), (FIRST_DAY, _window_edge_rows()),
                                      (BEFORE_DAY, _before_rows())):
            write_facts(day, orders, events)
            publish.publish(day)
        yield built


@pytest.fixture(scope="module")
def lake(data):
    con = views.open_lake(data.lake)
    yield con
    con.close()


@pytest.fixture(scope="module")
def serving(data):
    with psycopg.connect(data.reader_dsn(), autocommit=True) as conn:
        yield conn


def run_both(lake, serving, sql: str) -> tuple[list[str], list[tuple], list[str], list[tuple]]:
    lake_cursor = lake.execute(sql)
    lake_columns = [d[0] for d in lake_cursor.description]
    lake_rows = lake_cursor.fetchall()
    pg_cursor = serving.execute(sql)
    pg_columns = [d.name for d in pg_cursor.description]
    return lake_columns, lake_rows, pg_columns, pg_cursor.fetchall()


def has_top_level_order_by(sql: str) -> bool:
    """Whether the statement's outermost SELECT ends in ORDER BY (comments stripped)."""
    text = re.sub(r"--[^\n]*", "", sql)
    depth, outer = 0, []
    for char in text:
        depth += char == "("
        if depth == 0:
            outer.append(char)
        depth -= char == ")"
    return re.search(r"\border\s+by\b", "".join(outer), re.IGNORECASE) is not None


def same_value(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if type(a) is not type(b):  # a Decimal on one engine and a float on the other is not portable
        return False
    if isinstance(a, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    return a == b


def sort_key(row: tuple) -> tuple:
    return tuple((value is None, type(value).__name__, repr(value)) for value in row)


@pytest.mark.slow
@pytest.mark.parametrize("name", QUERIES)
def test_query_gives_identical_results_on_the_lake_and_on_postgres(name: str, lake, serving) -> None:
    sql = views.query_text(name)
    lake_columns, lake_rows, pg_columns, pg_rows = run_both(lake, serving, sql)
    assert lake_columns == pg_columns
    assert lake_rows, f"{name} returns no rows: the comparison would prove nothing"
    assert len(lake_rows) == len(pg_rows), f"{name}: {len(lake_rows)} rows on the lake, {len(pg_rows)} on Postgres"
    if not has_top_level_order_by(sql):
        lake_rows, pg_rows = sorted(lake_rows, key=sort_key), sorted(pg_rows, key=sort_key)
    for number, (lake_row, pg_row) in enumerate(zip(lake_rows, pg_rows, strict=True)):
        for column, a, b in zip(lake_columns, lake_row, pg_row, strict=True):
            assert same_value(a, b), (
                f"{name} row {number} column {column}: lake {a!r} ({type(a).__name__}),"
                f" Postgres {b!r} ({type(b).__name__})\n lake {lake_row}\n   pg {pg_row}")


def test_the_issue_s_queries_are_all_there_with_their_question() -> None:
    assert set(REQUIRED) <= set(QUERIES)
    for name in QUERIES:
        text = views.query_text(name)
        first = text.splitlines()[0]
        assert first.startswith("-- Question: ") and first.endswith("?"), f"{name}: first line must be the question"
        assert "grain" in text.lower(), f"{name}: the header states the grain"
        code = re.sub(r"--[^\n]*", "", text).lower()
        # answers must not depend on the day they run
        assert not re.search(r"current_date|current_timestamp|\bnow\(|localtimestamp|today\(", code), name
        assert not code.rstrip().endswith(";"), f"{name}: no trailing semicolon (queries are embedded as subqueries)"


@pytest.mark.parametrize("page", ["queries/README.md", "docs/analytics.md"])
def test_the_query_tables_list_every_query_with_its_own_question(page: str) -> None:
    """The tables of queries in queries/README.md and docs/analytics.md: one row per file of queries/, its question as
    the file's first line asks it (stated once, in the file)."""
    text = (REPO / page).read_text(encoding="utf-8")
    rows = {m[1]: m[2].strip() for m in re.finditer(r"^\| `(\w+)\.sql` \| ([^|]+) \|", text, re.M)}
    assert set(rows) == set(QUERIES), f"{page}: rows for {sorted(set(rows) - set(QUERIES))}, none for {sorted(set(QUERIES) - set(rows))}"
    for name in QUERIES:
        assert rows[name] == views.question(name), f"{page}, {name}: the table asks {rows[name]!r}, the file {views.question(name)!r}"


def _rows(lake, serving, sql: str) -> tuple[list[tuple], list[tuple]]:
    _, lake_rows, _, pg_rows = run_both(lake, serving, sql)
    return lake_rows, pg_rows


def _filtered(name: str, where: str) -> str:
    return f"select * from ({views.query_text(name)}) as q where {where}"


@pytest.mark.slow
def test_the_funnel_survives_a_day_without_add_to_carts(lake, serving) -> None:
    for rows in _rows(lake, serving, _filtered("conversion_funnel", "q.event_date = date '2025-12-01'")):
        assert rows == [(EDGE_DAY, 2, 2, 1, 0, 0, 0, Decimal("0.00"), None, Decimal("0.00"))]


@pytest.mark.slow
def test_averages_round_half_up_exactly_where_a_double_would_not(lake, serving) -> None:
    # 2025-12-02: EDGE_O1 1.00 + EDGE_O2 1.01 = 2.01 over 2 orders = 1.005 -> 1.01; no events that day
    for rows in _rows(lake, serving, _filtered("daily_kpis", "q.kpi_date = date '2025-12-02'")):
        assert rows == [(ORDER_DAY, 2, Decimal("2.01"), Decimal("1.00"), Decimal("1.01"), 0, 0, 0, None)]
    naive = ("select cast(sum(revenue) / count(*) as decimal(18, 2)) from warehouse.fact_orders"
             " where order_id in ('EDGE_O1', 'EDGE_O2')")
    assert lake.execute(naive).fetchone() == (Decimal("1.00"),), "DuckDB divides decimals in double precision"
    assert serving.execute(naive).fetchone() == (Decimal("1.01"),), "Postgres divides numerics exactly"


@pytest.mark.slow
def test_repeat_customers_days_are_an_integer_on_both(lake, serving) -> None:
    sql = _filtered("repeat_customers", "1 = 1").replace("limit 20", "limit 20000")
    for rows in _rows(lake, serving, sql):
        edge = [row for row in rows if row[0] == "EDGE_U1"]
        assert edge == [("EDGE_U1", 3, Decimal("3.51"), Decimal("2.50"), ORDER_DAY, dt.date(2025, 12, 3), 1)]


@pytest.mark.slow
def test_the_dataset_exercises_what_the_queries_handle(lake, serving) -> None:
    checks = """select
        (select count(*) from warehouse.fact_orders_all) - (select count(*) from warehouse.fact_orders),
        (select count(*) from audit.bad_records),
        (select count(*) from audit.dq_failures where outcome = 'warn'),
        (select count(*) from warehouse.fact_orders where cast(order_ts as date) < load_date)"""
    for rows in _rows(lake, serving, checks):
        restated, quarantined, warned, late = rows[0]
        assert min(restated, quarantined, warned, late) > 0, dict(restated=restated, quarantined=quarantined,
                                                                  warned=warned, late=late)


def test_top_level_order_by_detection() -> None:
    assert has_top_level_order_by("with a as (select 1 as x order by 1) select * from a order by x")
    assert not has_top_level_order_by("with a as (select 1 as x order by 1) select * from a")
    assert not has_top_level_order_by("select 1 -- order by x\n")


def test_query_helpers_name_every_file() -> None:
    files = sorted(p.stem for p in Path(views.QUERIES_DIR).glob("*.sql"))
    assert QUERIES == files
    assert views.question("top_products").startswith("Which 10 products")
    with pytest.raises(FileNotFoundError, match="no query"):
        views.query_text("no_such_query")


@pytest.mark.slow
def test_new_and_returning_customers_and_a_day_s_top_products(lake, serving) -> None:
    # EDGE_U1 first orders on 2025-12-02 (two orders, one customer: new), then again on 2025-12-03 (returning)
    days = "q.order_date in (date '2025-12-02', date '2025-12-03') order by q.order_date"
    for rows in _rows(lake, serving, _filtered("new_vs_returning_customers", days)):
        assert rows == [
            (ORDER_DAY, 1, 1, 0, Decimal("100.00"), Decimal("2.01"), Decimal("0.00"), Decimal("1.00"), Decimal("0.00")),
            (ORDER_DAY + dt.timedelta(days=1), 1, 0, 1, Decimal("0.00"), Decimal("0.00"), Decimal("1.50"),
             Decimal("0.00"), Decimal("1.50"))]
    for rows in _rows(lake, serving, _filtered("top_products_daily", "q.order_date = date '2025-12-02'")):
        assert [row[:3] + row[5:] for row in rows] == [
            (ORDER_DAY, 1, "PROD_0001", 2, 2, Decimal("2.01"), Decimal("1.00"))]


# ------------------------------------------------------------------------ marts against the row level
# The queries read the marts; tests/fixtures/row_level_queries/ holds the same questions asked of the
# row-level facts (the files as they were before the marts, over every day). Over the same facts, on each
# engine, both must give the same answer. The day-by-day queries show the reporting window (the 30 days
# ending at the latest complete day): the row-level answer over all days is cut to it (the definition's
# one place, marts.reporting_window). The dataset has days before the window (FIRST_DAY's late orders) for it to cut.
ROW_LEVEL = Path(__file__).parent / "fixtures" / "row_level_queries"
IN_THE_WINDOW = {"daily_kpis": "kpi_date", "conversion_funnel": "event_date", "revenue_by_category_daily":
                 "order_date", "cancellation_refund_rates": "order_date", "daily_revenue_moving_average": "order_date",
                 "new_vs_returning_customers": "order_date", "top_products_daily": "order_date"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(path.stem for path in ROW_LEVEL.glob("*.sql")))
def test_the_mart_based_answer_equals_the_row_level_one(name: str, lake, serving) -> None:
    marts_sql, row_level_sql = views.query_text(name), (ROW_LEVEL / f"{name}.sql").read_text().strip()
    assert "from marts." in marts_sql and "from marts." not in row_level_sql, name
    if name in IN_THE_WINDOW:
        row_level_sql = (f"select q.* from ({row_level_sql}) as q, marts.reporting_window as w"
                         f" where q.{IN_THE_WINDOW[name]} between w.first_date and w.last_date")
    for engine in (lake, serving):
        marts_rows, row_rows = engine.execute(marts_sql).fetchall(), engine.execute(row_level_sql).fetchall()
        assert marts_rows, f"{name} returns no rows: the comparison would prove nothing"
        if name in IN_THE_WINDOW:  # the wrapped row-level query lost its ORDER BY
            marts_rows, row_rows = sorted(marts_rows, key=sort_key), sorted(row_rows, key=sort_key)
        assert len(marts_rows) == len(row_rows), name
        for marts_row, row in zip(marts_rows, row_rows, strict=True):
            assert all(same_value(a, b) for a, b in zip(marts_row, row, strict=True)), (name, marts_row, row)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(IN_THE_WINDOW))
def test_a_day_by_day_query_shows_the_30_days_ending_at_the_latest_complete_day(name: str, data, lake, serving) -> None:
    latest, column = data.dates[-1], IN_THE_WINDOW[name]
    row_level = (ROW_LEVEL / f"{name}.sql").read_text().strip()
    for engine in (lake, serving):
        assert engine.execute("select * from marts.reporting_window").fetchall() == [(latest - dt.timedelta(days=29),
                                                                                     latest)]
        first, last = engine.execute(f"select min(q.{column}), max(q.{column}) from ({views.query_text(name)}) as q"
                                     ).fetchone()
        assert (first, last) == (FIRST_DAY, latest), name
        # the history before the window is there: the row-level question over every day shows it
        assert engine.execute(f"select min(q.{column}) from ({row_level}) as q").fetchone()[0] < latest - dt.timedelta(
            days=29), name



@pytest.mark.slow
def test_the_data_quality_trend_starts_at_the_reporting_window(data, lake, serving) -> None:
    first = data.dates[-1] - dt.timedelta(days=29)
    for engine in (lake, serving):
        assert engine.execute("select min(load_date) from audit.bad_records").fetchone()[0] == BEFORE_DAY
        days = [day for (day,) in engine.execute(
            f"select q.load_date from ({views.query_text('data_quality_trend')}) as q").fetchall()]
        assert first == FIRST_DAY and days == data.dates, days  # BEFORE_DAY's quarantined row is before the window


def test_the_latest_day_shown_is_the_latest_complete_day_not_the_sliver_after_midnight(fresh_db, serving_lake) -> None:
    # issue 17 point 6: a load date's file carries a few events from the first minutes after its
    # midnight (within the future-timestamp tolerance); that next day must not show as a latest day
    day = dt.date(2025, 12, 20)
    after_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 2))
    events = [event("E1", day, user_id="U1", event_type="view_product"),
              event("E2", day, user_id="U2", event_type="purchase"),
              event("E3", day, user_id="U3", event_type="page_view", product_id=None, event_ts=after_midnight,
                    date_id=int((day + dt.timedelta(days=1)).strftime("%Y%m%d")))]
    write_facts(day, [order("O1", day, user_id="U2")], events)
    publish.publish(day)
    with fresh_db.connect() as conn:
        assert conn.execute("select max(date_id) from warehouse.fact_events").fetchone()[0] == 20251221, "the sliver"
        for name, day_column in (("conversion_funnel", "event_date"), ("daily_kpis", "kpi_date")):
            latest = conn.execute(f"select max(q.{day_column}) from ({views.query_text(name)}) as q").fetchone()[0]
            assert latest == day, (name, latest)


def test_the_window_starts_at_the_first_complete_day_not_at_the_late_orders_before_it(fresh_db, serving_lake) -> None:
    # a warehouse's first date: its file carries an order placed two days before (a late one); that day
    # is not complete (its own file never came), and the day-by-day queries start at the first date
    day = dt.date(2025, 12, 20)
    before = day - dt.timedelta(days=2)
    late = order("O0", before, load_date=day)
    write_facts(day, [late, order("O1", day)], [event("E1", day), event("E0", before, load_date=day)])
    publish.publish(day)
    with fresh_db.connect() as conn, views.open_lake(serving_lake) as lake:
        for engine in (conn, lake):  # the lake has no dimensions here: the queries that join them run on Postgres
            assert engine.execute("select min(date_id) from warehouse.fact_orders").fetchone()[0] == 20251218
            assert engine.execute("select * from marts.reporting_window").fetchall() == [(day, day)]
            for name, column in sorted(IN_THE_WINDOW.items()) if engine is conn else [("daily_kpis", "kpi_date")]:
                shown = engine.execute(f"select min(q.{column}) from ({views.query_text(name)}) as q").fetchone()[0]
                assert shown in (day, None), (name, shown)
            # the history keeps the late order: an analyst's own window shows it
            assert engine.execute("select min(kpi_date) from marts.daily_kpis").fetchone()[0] == before


# the day-by-day queries that read a one-row-per-day mart, and that mart
ONE_ROW_PER_DAY = {"daily_kpis": "daily_kpis", "cancellation_refund_rates": "daily_kpis",
                   "daily_revenue_moving_average": "daily_kpis", "conversion_funnel": "funnel_daily"}


def test_a_day_by_day_query_reads_the_window_not_the_history(fresh_db) -> None:
    # ten years of days in the one-row-per-day marts: a query of the 30-day window must read a few
    # pages of them (the date index), not every page (a join with the window scans the mart)
    first, days = dt.date(2016, 1, 1), 3650
    with fresh_db.connect(autocommit=True) as conn:
        migrations.ensure_schema(conn)
        for mart in set(ONE_ROW_PER_DAY.values()):
            day, *measures = [name for (name,) in conn.execute(
                "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0"
                " and not attisdropped order by attnum", [f"marts.{mart}"]).fetchall()]
            conn.execute(f"insert into marts.{mart} ({day}, {', '.join(measures)})"
                         f" select %s + n, {', '.join('1' for _ in measures)} from generate_series(0, %s) as n",
                         [first, days - 1])
        conn.execute("insert into marts.complete_days select %s + n from generate_series(0, %s) as n",
                     [first, days - 1])
        conn.execute("analyze")
        for name, mart in ONE_ROW_PER_DAY.items():
            pages = conn.execute("select pg_relation_size(%s) / 8192", [f"marts.{mart}"]).fetchone()[0]
            plan = conn.execute("explain (analyze, buffers, format json) " + views.query_text(name)).fetchone()[0][0]
            rows, read = plan["Plan"]["Actual Rows"], plan["Plan"]["Shared Hit Blocks"] + plan["Plan"].get(
                "Shared Read Blocks", 0)
            assert rows == 30 and pages > 30, (name, rows, pages)  # the window, out of a mart of many pages
            assert read <= 12, (name, read, pages)
