"""The daily report: a self-contained HTML page that a headless Chromium renders with Postgres's numbers.

One published dataset for the module (4 generated days with dirty rows, the real pipeline, a fresh
database on the throwaway embedded Postgres). The report is written by the real command, opened in
Debian's `chromium` (installed here if missing) with the network cut off, and the rendered DOM must
hold every chart, drawn at a real size, with the figures that independent SQL reads from Postgres.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import uuid
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg
import pytest

from pipeline.quality import gate
from pipeline.report import page, svg
from pipeline.serving import publish
from tests.support import analytics_dataset
from tests.support.browser import Dom, headless
from tests.support.paths import REPO
from tests.support.postgres import PG_ENV

CHARTS = {"revenue-trend", "categories", "funnel", "checks", "quarantine", "layers"}
# appended to a copy of the page: records the rendered size of every chart and mark in the DOM
PROBE = """<script>
for (const el of document.querySelectorAll('svg[data-chart], svg[data-chart] rect[data-value]')) {
  const box = el.getBoundingClientRect();
  el.setAttribute('data-rendered', box.width.toFixed(1) + 'x' + box.height.toFixed(1));
}
</script>"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, embedded_server):
    with analytics_dataset.pipeline_dataset(tmp_path_factory.mktemp("report"), embedded_server) as built:
        yield built


@pytest.fixture(scope="module")
def day(data) -> dt.date:
    return data.dates[2]  # a date with a day before it


@pytest.fixture(scope="module")
def report_html(data, day, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("page") / "report.html"
    done = subprocess.run([sys.executable, "-m", "pipeline", "report", "--date", day.isoformat(), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    return out


@pytest.fixture(scope="module")
def dom(report_html, chromium, tmp_path_factory) -> Dom:
    probe = report_html.with_name("probed.html")
    probe.write_text(report_html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = headless(chromium, tmp_path_factory.mktemp("chromium"), "--dump-dom", probe.as_uri())
    return Dom(done.stdout)


@pytest.fixture(scope="module")
def serving(data):
    with psycopg.connect(data.dsn, autocommit=True) as conn:
        yield conn


def half_up(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_the_page_is_self_contained(report_html) -> None:
    text = report_html.read_text(encoding="utf-8")
    for needle in ("<script", "<link", "src=", "url(", "@import", "http://", "https://", "<iframe", "<img"):
        assert needle not in text.lower(), f"the page must not fetch anything ({needle!r})"
    assert text.count("<svg") == len(CHARTS)


@pytest.mark.slow
def test_chromium_renders_every_chart(dom) -> None:
    charts = {chart["attrs"]["data-chart"]: chart for chart in dom.find("svg", data_chart=None)}
    assert set(charts) == CHARTS
    for name, chart in charts.items():
        width, height = map(float, chart["attrs"]["data-rendered"].split("x"))
        assert width > 300 and height > 30, f"chart {name} rendered {width}x{height}"
    bars = dom.find("rect", data_value=None)
    assert bars and all(float(b["attrs"]["data-rendered"].split("x")[0]) > 0 for b in bars)


@pytest.mark.slow
def test_the_kpis_are_the_numbers_in_postgres(dom, serving, day) -> None:
    orders, gross, net = serving.execute(
        "select count(*), sum(revenue), sum(net_revenue) from warehouse.fact_orders where cast(order_ts as date) = %s",
        [day]).fetchone()
    events, active, buyers = serving.execute(
        "select count(*), count(distinct user_id), count(distinct user_id) filter (where event_type = 'purchase')"
        " from warehouse.fact_events where cast(event_ts as date) = %s", [day]).fetchone()
    expected = {
        "order_count": (orders, f"{orders:,}"),
        "gross_revenue": (gross, f"{gross:,.2f}"),
        "net_revenue": (net, f"{net:,.2f}"),
        "avg_order_value": (half_up(gross / orders), f"{half_up(gross / orders):,.2f}"),
        "event_count": (events, f"{events:,}"),
        "active_users": (active, f"{active:,}"),
        "purchasing_users": (buyers, f"{buyers:,}"),
        "conversion_rate": (half_up(Decimal(100 * buyers) / active), f"{half_up(Decimal(100 * buyers) / active)} %"),
    }
    assert orders > 0 and events > 0
    for key, (value, shown) in expected.items():
        card = dom.one("div", data_kpi=key)
        assert Decimal(card["attrs"]["data-value"]) == Decimal(value), key
        assert shown in card["text"], f"{key}: {shown!r} not in {card['text']!r}"


@pytest.mark.slow
def test_the_revenue_trend_has_every_day_of_postgres(dom, serving, day) -> None:
    rows = serving.execute(
        "select cast(order_ts as date), sum(revenue), sum(net_revenue) from warehouse.fact_orders"
        " where cast(order_ts as date) between %s and %s group by 1", [day - dt.timedelta(days=13), day]).fetchall()
    assert len(rows) >= 3
    for when, gross, net in rows:
        for series, value in (("gross revenue", gross), ("net revenue", net)):
            bar = dom.one("rect", data_series=series, data_category=when.isoformat())
            assert Decimal(bar["attrs"]["data-value"]) == value
    with_orders = {when.isoformat() for when, _, _ in rows}
    for bar in dom.find("rect", data_series="gross revenue"):  # a day with events only: a bar of 0
        assert bar["attrs"]["data-category"] in with_orders or Decimal(bar["attrs"]["data-value"]) == 0
    assert "highlight" in dom.one("rect", data_series="gross revenue", data_category=day.isoformat())["attrs"]["class"]


@pytest.mark.slow
def test_the_funnel_has_the_users_of_each_step(dom, serving, day) -> None:
    steps = dict(serving.execute(
        "select event_type, count(distinct user_id) from warehouse.fact_events where cast(event_ts as date) = %s"
        " group by event_type", [day]).fetchall())
    active = serving.execute("select count(distinct user_id) from warehouse.fact_events"
                             " where cast(event_ts as date) = %s", [day]).fetchone()[0]
    expected = {"Active users": active, "Viewed a product": steps["view_product"],
                "Added to cart": steps["add_to_cart"], "Checked out": steps["checkout"],
                "Purchased": steps["purchase"]}
    for step, value in expected.items():
        assert int(dom.one("rect", data_step=step)["attrs"]["data-value"]) == value


@pytest.mark.slow
def test_the_quality_section_has_the_checks_and_the_quarantine(dom, serving, day) -> None:
    outcomes = dict(serving.execute("select outcome, count(*) from audit.dq_failures where run_date = %s"
                                    " group by outcome", [day]).fetchall())
    assert outcomes.get("warn", 0) > 0, "the dataset warns every day (orders under the volume minimum)"
    assert dom.one(data_checks_warned=None)["attrs"]["data-checks-warned"] == str(outcomes.get("warn", 0))
    assert dom.one(data_checks_failed=None)["attrs"]["data-checks-failed"] == str(outcomes.get("fail", 0))
    assert dom.one(data_checks_passed=None)["attrs"]["data-checks-passed"] == str(gate.load_results(day).passed)
    assert dom.one(data_gate=None)["attrs"]["data-gate"] == "warn"
    assert len(dom.find("tr", data_check=None)) == sum(outcomes.values())
    reasons = serving.execute("select source_table || ': ' || reason_code, count(*) from audit.bad_records"
                              " where load_date = %s group by 1", [day]).fetchall()
    assert reasons
    for reason, rows in reasons:
        assert int(dom.one("rect", data_reason=reason)["attrs"]["data-value"]) == rows
    assert dom.one(data_quarantined=None)["attrs"]["data-quarantined"] == str(sum(n for _, n in reasons))


@pytest.mark.slow
def test_rows_per_layer_are_daily_metrics(dom, serving, day) -> None:
    with serving.cursor(row_factory=psycopg.rows.dict_row) as cur:
        metrics = cur.execute("select * from warehouse.daily_metrics where run_date = %s", [day]).fetchone()
    for source in ("orders", "events"):
        for layer, column in page.LAYER_COLUMNS:
            cell = [e for e in dom.find("td", data_layer=layer) if e in _row_cells(dom, source)]
            assert len(cell) == 1
            assert int(cell[0]["attrs"]["data-value"]) == metrics[column.format(source)]
            assert f"{metrics[column.format(source)]:,}" in cell[0]["text"]


def _row_cells(dom: Dom, source: str) -> list[dict]:
    elements = dom.elements
    start = elements.index(dom.one("tr", data_source=source))
    cells = []
    for element in elements[start + 1:]:
        if element["tag"] == "tr":
            break
        cells.append(element)
    return cells


@pytest.mark.slow
def test_the_change_from_the_day_before_is_postgres_s(dom, serving, day) -> None:
    def kpis(when: dt.date) -> tuple[int, Decimal, int]:
        orders, gross = serving.execute("select count(*), sum(revenue) from warehouse.fact_orders"
                                        " where cast(order_ts as date) = %s", [when]).fetchone()
        events = serving.execute("select count(*) from warehouse.fact_events where cast(event_ts as date) = %s",
                                 [when]).fetchone()[0]
        return orders, gross, events

    now, before = kpis(day), kpis(day - dt.timedelta(days=1))
    for key, current, base in zip(("order_count", "gross_revenue", "event_count"), now, before, strict=True):
        change = (Decimal(current) - Decimal(base)) * 100 / Decimal(base)
        assert [e["attrs"]["data-delta"] for e in _card(dom, key) if e["attrs"].get("data-compare") == "day"] == [
            f"{change:.2f}"], key
    assert not dom.find(data_compare="week"), "a week before the dataset nothing was loaded"


def _card(dom: Dom, key: str) -> list[dict]:
    """The elements inside a KPI card (up to the next card or section)."""
    start = dom.elements.index(dom.one("div", data_kpi=key))
    inside = []
    for element in dom.elements[start + 1:]:
        if "data-kpi" in element["attrs"] or element["tag"] in ("p", "section"):
            break
        inside.append(element)
    return inside


@pytest.mark.slow
def test_the_first_loaded_day_is_not_compared_with_the_late_orders_before_it(data, serving, tmp_path) -> None:
    first, before = data.dates[0], data.dates[0] - dt.timedelta(days=1)
    late = serving.execute("select count(*) from warehouse.fact_orders where cast(order_ts as date) = %s",
                           [before]).fetchone()[0]
    assert late > 0, "the first load date's files hold late orders of the day before (the issue's 7 orders)"
    assert serving.execute("select count(*) from audit.publish_log where load_date = %s", [before]).fetchone() == (0,)
    out = tmp_path / "first.html"
    done = subprocess.run([sys.executable, "-m", "pipeline", "report", "--date", first.isoformat(), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    page_dom = Dom(out.read_text(encoding="utf-8"))
    assert not page_dom.find(data_delta=None), "no change against a day that holds only late orders"
    assert f"{before} was not loaded as a day of its own" in page_dom.one("p", data_no_comparison="day")["text"]


@pytest.mark.slow
def test_the_sales_section_is_the_day_s_orders_in_postgres(dom, serving, day) -> None:
    categories = serving.execute(
        "select coalesce(p.category, 'Unknown'), count(*), sum(o.net_revenue) from warehouse.fact_orders as o"
        " left join warehouse.dim_product as p on p.product_id = o.product_id where cast(o.order_ts as date) = %s"
        " group by 1 order by 3 desc, 1 limit 5", [day]).fetchall()
    shown = dom.find("tr", data_category=None)
    assert [row["attrs"]["data-category"] for row in shown] == [name for name, _, _ in categories]
    for row, (name, orders, net) in zip(shown, categories, strict=True):
        assert Decimal(dom.one("rect", data_category=name)["attrs"]["data-value"]) == net
        assert f"USD {net:,.2f}" in row["text"] and f"{orders:,}" in row["text"]
    products = serving.execute(
        "select product_id, sum(net_revenue) from warehouse.fact_orders where cast(order_ts as date) = %s"
        " group by 1 order by 2 desc, sum(revenue) desc, 1 limit 5", [day]).fetchall()
    assert [(r["attrs"]["data-product"], f"USD {net:,.2f}" in r["text"])
            for r, (_, net) in zip(dom.find("tr", data_product=None), products, strict=True)] == [
        (product, True) for product, _ in products]
    new, returning = serving.execute(
        "with first_order as (select user_id, min(cast(order_ts as date)) as day from warehouse.fact_orders"
        " group by user_id) select count(distinct o.user_id) filter (where f.day = %s),"
        " count(distinct o.user_id) filter (where f.day < %s) from warehouse.fact_orders as o"
        " join first_order as f on f.user_id = o.user_id where cast(o.order_ts as date) = %s", [day, day, day]).fetchone()
    assert returning > 0 and new > 0
    assert f"{new:,}" in dom.one("tr", data_customers="new")["text"]
    assert f"{returning:,}" in dom.one("tr", data_customers="returning")["text"]
    for status in ("cancelled", "refunded"):
        n, revenue = serving.execute("select count(*), coalesce(sum(revenue), 0) from warehouse.fact_orders"
                                     " where cast(order_ts as date) = %s and status = %s", [day, status]).fetchone()
        assert f"{n:,}" in dom.one("tr", data_status=status)["text"]
        assert f"USD {revenue:,.2f}" in dom.one("tr", data_status=status)["text"]


@pytest.mark.slow
def test_the_page_names_the_business_time_zone_its_days_are_in(report_html, day, tmp_path) -> None:
    """It said "(UTC)" whatever [model] business_timezone grouped the orders and events by."""
    assert Dom(report_html.read_text(encoding="utf-8")).one("span", data_business_timezone="UTC")["text"] == "UTC"
    settings = tmp_path / "zone.cfg"
    settings.write_text("[model]\nbusiness_timezone = America/New_York\n")
    out = tmp_path / "zoned.html"
    done = subprocess.run([sys.executable, "-m", "pipeline", "report", "--date", day.isoformat(), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "LUIGI_CONFIG_PATH": str(settings)})
    assert done.returncode == 0, done.stderr
    zone = Dom(out.read_text(encoding="utf-8")).one("span", data_business_timezone="America/New_York")
    assert zone["text"] == "America/New_York"


def test_the_publish_time_is_utc_whatever_the_session_s_time_zone(report_html, day, tmp_path) -> None:
    """It printed the session's local time (PGTZ, or the server's timezone setting) labelled UTC."""
    banner = Dom(report_html.read_text(encoding="utf-8")).one("p", data_published="true")["text"]
    out = tmp_path / "tokyo.html"
    done = subprocess.run([sys.executable, "-m", "pipeline", "report", "--date", day.isoformat(), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "PGTZ": "Asia/Tokyo"})
    assert done.returncode == 0, done.stderr
    assert Dom(out.read_text(encoding="utf-8")).one("p", data_published="true")["text"] == banner


@pytest.mark.slow
@pytest.mark.parametrize("day", ["2024-01-01", "0001-01-01"])  # the first calendar day: no trend dates before it
def test_a_date_with_nothing_in_postgres_is_refused(data, tmp_path, day) -> None:
    out = tmp_path / "none.html"
    done = subprocess.run([sys.executable, "-m", "pipeline", "report", "--date", day, "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"has nothing for {day}" in done.stderr and "run the pipeline" in done.stderr
    assert not out.exists()


def test_a_database_nothing_was_ever_published_to_is_refused_in_one_line(embedded_server, tmp_path) -> None:
    """A new serving database (no migration ran): not psycopg's UndefinedTable traceback, but what to do."""
    database = f"report_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(embedded_server.dsn(), autocommit=True) as conn:
        conn.execute(f'create database "{database}"')
    env = {name: value for name, value in os.environ.items() if name not in PG_ENV}
    env.update(ECOMM_PG_DATA=str(embedded_server.data_dir), ECOMM_PG_PORT=str(embedded_server.port),
               ECOMM_PG_DATABASE=database)
    out = tmp_path / "none.html"
    done = subprocess.run([sys.executable, "-m", "pipeline", "report", "--date", "2025-12-15", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    [line] = done.stderr.strip().splitlines()
    assert f"/{database}) holds no serving tables yet: nothing was ever published there; run the pipeline for" \
        " 2025-12-15 first (luigi --module pipeline.tasks DailyPipeline --date 2025-12-15 --local-scheduler)" in line
    assert not out.exists()


@pytest.mark.slow
def test_a_date_the_gate_blocked_reports_why(data, tmp_path) -> None:
    blocked = data.dates[-1] + dt.timedelta(days=1)
    publish.publish_audit_only(blocked, [
        {"check_name": "orders row_count", "table_name": "stg_orders", "check_type": "row_count",
         "outcome": "fail", "value": "0", "message": "no orders <at all>"}])
    out = tmp_path / "blocked.html"
    command = [sys.executable, "-m", "pipeline", "report", "--date", blocked.isoformat(), "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    rendered = Dom(out.read_text(encoding="utf-8"))
    assert rendered.one(data_published=None)["attrs"]["data-published"] == "false"
    assert rendered.one(data_gate=None)["attrs"]["data-gate"] == "fail"
    assert "no orders <at all>" in rendered.one("tr", data_check="orders row_count")["text"]
    assert rendered.one("div", data_kpi="order_count")["attrs"]["data-value"] == ""


def test_svg_text_is_escaped_and_axes_are_round() -> None:
    drawn = svg.bar_list("t", "a <title>", [("<b>&", 3)])
    assert "<b>" not in drawn and "&lt;b&gt;&amp;" in drawn
    assert [svg.nice_max(v) for v in (0, 0.7, 3, 11, 2_006_272.35)] == [1.0, 1.0, 5, 20, 2_500_000]
    assert svg.compact(1_250_000) == "1.25M" and svg.compact(625) == "625"


def test_the_chromium_fixture_installs_when_missing(chromium) -> None:
    assert os.access(chromium, os.X_OK) and shutil.which("chromium") == chromium


@pytest.mark.slow
def test_a_date_older_than_the_queries_window_still_has_its_numbers(data, serving, tmp_path) -> None:
    # the day-by-day queries show the 30 days ending at the latest complete day; a later date published
    # two months on puts data.dates[2] outside that window, and its report must still show its KPIs
    from tests.support.serving import order, write_facts

    day, later = data.dates[2], data.dates[-1] + dt.timedelta(days=60)
    write_facts(later, [order("LATER_O1", later)], [])
    publish.publish(later)
    assert serving.execute("select first_date from marts.reporting_window").fetchone()[0] > day
    orders = serving.execute("select order_count from marts.daily_kpis where kpi_date = %s", [day]).fetchone()[0]
    out = tmp_path / "older.html"
    command = [sys.executable, "-m", "pipeline", "report", "--date", day.isoformat(), "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    rendered = Dom(out.read_text(encoding="utf-8"))
    assert rendered.one("div", data_kpi="order_count")["attrs"]["data-value"] == str(orders) and orders > 0
    assert rendered.find("tr", data_category=None), "the day's categories"
