"""The daily report's comparisons, sales figures and currency, on hand-made published days (exact numbers).

Three load dates are published from hand-made lake partitions: Monday 2025-11-03, Monday 2025-11-10
and Tuesday 2025-11-11. 2025-11-10's files also bring a late order placed on Sunday 2025-11-09, a
date nobody loaded (the first report of a real lake has such a day before it). So 2025-11-10 is
compared with the same weekday a week before (11-03) but not with the day before (11-09 holds one
late order), and 2025-11-11 with the day before (11-10) but not with a week before (11-04: nothing).
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.report import page
from pipeline.serving import publish
from tests.support.paths import REPO
from tests.support.serving import PRODUCT_SCHEMA, event, order, write_facts, write_rows
from tests.support.browser import Dom

W0, SUNDAY, W1, TUESDAY = dt.date(2025, 11, 3), dt.date(2025, 11, 9), dt.date(2025, 11, 10), dt.date(2025, 11, 11)


def _order(order_id: str, day: dt.date, user: str, product: str, quantity: int, price: str, status: str = "paid",
           placed: dt.date | None = None) -> dict:
    revenue = Decimal(price) * quantity
    when = placed or day
    return order(order_id, day, user_id=user, product_id=product, quantity=quantity, unit_price=Decimal(price),
                 revenue=revenue, net_revenue=revenue if status == "paid" else Decimal("0.00"), status=status,
                 order_ts=dt.datetime.combine(when, dt.time(10)), date_id=int(when.strftime("%Y%m%d")))


def _product(product_id: str, name: str, category: str, day: dt.date) -> dict:
    return {"product_key": f"{product_id}-1", "product_id": product_id, "product_name": name, "category": category,
            "brand": "B", "current_price": Decimal("10.00"), "effective_from": day, "is_inferred": False,
            "load_date": day}


@pytest.fixture
def published(fresh_db, serving_lake) -> None:
    """The three load dates, published; 2025-11-10 (Monday) orders: A returns, C and D are new."""
    write_rows("warehouse", "dim_product", W0, [_product("P1", "Lamp", "home", W0),
                                                 _product("P2", "Phone", "tech", W0)], PRODUCT_SCHEMA)
    write_facts(W0, [_order("O1", W0, "A", "P1", 2, "10.00"), _order("O2", W0, "B", "P2", 1, "5.00")],
                [event("E1", W0, user_id="A"), event("E2", W0, user_id="A", event_type="purchase")])
    write_facts(W1, [_order("O3", W1, "A", "P1", 3, "10.00"),
                     _order("O4", W1, "C", "P2", 1, "10.00", status="cancelled"),
                     _order("O5", W1, "D", "P2", 2, "7.50", status="refunded"),
                     _order("O6", W1, "E", "P1", 1, "4.00", placed=SUNDAY)],  # late: placed the day before
                [event("E3", W1, user_id="A"), event("E4", W1, user_id="C"),
                 event("E5", W1, user_id="A", event_type="purchase"), event("E6", W1, user_id="D")])
    write_facts(TUESDAY, [_order("O7", TUESDAY, "C", "P2", 1, "10.00")], [event("E7", TUESDAY, user_id="C")])
    for day in (W0, W1, TUESDAY):
        publish.publish(day)


def report(day: dt.date, out: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "report", "--date", day.isoformat(), "--out", str(out),
                           *options], cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=300)


def deltas(dom: Dom, compare: str) -> dict[str, str]:
    """KPI -> the data-delta of its `compare` ("day" or "week") change."""
    found = {}
    for card in dom.find("div", data_kpi=None):
        start = dom.elements.index(card)
        for element in dom.elements[start + 1:]:
            if element["attrs"].get("data-kpi") or element["tag"] == "section":
                break
            if element["attrs"].get("data-compare") == compare:
                found[card["attrs"]["data-kpi"]] = element["attrs"]["data-delta"]
    return found


def test_a_day_is_compared_only_with_dates_loaded_as_days_of_their_own(published, tmp_path: Path) -> None:
    done = report(W1, tmp_path / "monday.html")
    assert done.returncode == 0, done.stderr
    monday = Dom((tmp_path / "monday.html").read_text(encoding="utf-8"))
    # the week before: 2 orders, 25.00 gross and net, 2 events of 1 user who bought
    assert deltas(monday, "week") == {
        "order_count": "50.00", "gross_revenue": "120.00", "net_revenue": "20.00",
        "avg_order_value": "46.64",  # 18.33 against 12.50
        "event_count": "100.00", "active_users": "200.00", "purchasing_users": "0.00",
        "conversion_rate": "-66.67"}  # 33.33 % against 100.00 %
    conversion = [e for e in monday.elements if e["attrs"].get("data-compare") == "week"][-1]
    assert conversion["text"] == "▼ 66.67 pt vs same day last week", "a rate changes in points, not in %"
    assert deltas(monday, "day") == {}, "the Sunday before holds one late order: no day-over-day change"
    why = monday.one("p", data_no_comparison="day")["text"]
    assert "2025-11-09 was not loaded as a day of its own" in why and "only 1 order and 0 events" in why
    assert monday.one("p", data_compared=None)["attrs"]["data-compared"] == "week"

    assert report(TUESDAY, tmp_path / "tuesday.html").returncode == 0
    tuesday = Dom((tmp_path / "tuesday.html").read_text(encoding="utf-8"))
    assert deltas(tuesday, "day")["order_count"] == "-66.67" and deltas(tuesday, "week") == {}
    assert "2025-11-04 was not loaded" in tuesday.one("p", data_no_comparison="week")["text"]


def test_the_sales_section_has_top_categories_products_customers_and_cancellations(published, tmp_path) -> None:
    assert report(W1, tmp_path / "monday.html").returncode == 0
    dom = Dom((tmp_path / "monday.html").read_text(encoding="utf-8"))
    home, tech = dom.one("tr", data_category="home"), dom.one("tr", data_category="tech")
    assert dom.elements.index(home) < dom.elements.index(tech), "by net revenue: home 30.00, tech 0.00"
    home_cells = _cells(dom, home)
    assert [c["attrs"]["data-orders"] for c in home_cells if "data-orders" in c["attrs"]] == ["1"]
    assert [c["attrs"]["data-net"] for c in home_cells if "data-net" in c["attrs"]] == ["30.00"]
    assert [p["attrs"]["data-product"] for p in dom.find("tr", data_product=None)] == ["P1", "P2"]
    assert "Lamp" in dom.one("tr", data_product="P1")["text"] and "USD 30.00" in dom.one("tr", data_product="P1")["text"]
    new, returning = dom.one("tr", data_customers="new"), dom.one("tr", data_customers="returning")
    assert "2" in new["text"] and "USD 25.00" in new["text"], "C (10.00 cancelled) and D (15.00 refunded)"
    assert "1" in returning["text"] and "USD 30.00" in returning["text"], "A ordered on 11-03 too"
    assert dom.one(data_new_share=None)["attrs"]["data-new-share"] == "66.67"
    cancelled, refunded = dom.one("tr", data_status="cancelled"), dom.one("tr", data_status="refunded")
    assert "33.33 %" in cancelled["text"] and "USD 10.00" in cancelled["text"]
    assert "33.33 %" in refunded["text"] and "USD 15.00" in refunded["text"]
    assert dom.one(data_currency=None)["attrs"]["data-currency"] == "USD"
    assert "USD 55.00" in dom.one("div", data_kpi="gross_revenue")["text"]


def _cells(dom: Dom, row: dict) -> list[dict]:
    start = dom.elements.index(row)
    cells = []
    for element in dom.elements[start + 1:]:
        if element["tag"] == "tr":
            break
        cells.append(element)
    return cells


def test_money_is_in_the_configured_currency(published, tmp_path, luigi_settings) -> None:
    assert report(W1, tmp_path / "eur.html", "--currency", "EUR").returncode == 0
    text = (tmp_path / "eur.html").read_text(encoding="utf-8")
    assert "EUR 55.00" in text and "USD" not in text
    luigi_settings("report", currency="CHF")  # [report] currency in luigi.cfg, read in process
    written = page.write(W1, tmp_path / "chf.html")
    assert "CHF 30.00" in written.read_text(encoding="utf-8")
    wrong = report(W1, tmp_path / "no.html", "--currency", "dollars")
    assert wrong.returncode == 2 and not (tmp_path / "no.html").exists()  # a bad option: a usage error
    assert wrong.stderr.strip().splitlines()[-1].startswith(
        "python -m pipeline report: error: argument --currency: 'dollars' is not an ISO 4217 code")
    assert "Traceback" not in wrong.stderr


def test_changes_from_0_from_no_figure_and_from_a_blocked_day_are_said(published, tmp_path: Path) -> None:
    wednesday, thursday, friday, saturday = (TUESDAY + dt.timedelta(days=n) for n in range(1, 5))
    write_facts(wednesday, [], [event("E8", wednesday, user_id="A")])  # no orders: 0 of each, no average
    write_facts(thursday, [_order("O8", thursday, "A", "P1", 1, "10.00"), _order("O9", thursday, "B", "P1", 1, "9.96")],
                [event("E9", thursday, user_id="A"), event("E10", thursday, user_id="A", event_type="purchase"),
                 event("E11", thursday, user_id="B")])
    write_facts(saturday, [_order("O10", saturday, "A", "P1", 1, "10.00")], [event("E12", saturday, user_id="A")])
    for day in (wednesday, thursday, saturday):
        publish.publish(day)
    publish.publish_audit_only(friday, [{"check_name": "rows", "table_name": "stg_orders", "outcome": "fail"}])

    assert report(thursday, tmp_path / "thursday.html").returncode == 0
    dom = Dom((tmp_path / "thursday.html").read_text(encoding="utf-8"))
    said = {card["attrs"]["data-kpi"]: [e["text"] for e in dom.elements[dom.elements.index(card) + 1:][:4]
                                        if e["attrs"].get("data-compare") == "day"]
            for card in dom.find("div", data_kpi=None)}
    assert said["order_count"] == ["▲ from 0 vs day before"] and said["net_revenue"] == ["▲ from 0 vs day before"]
    assert said["avg_order_value"] == ["– no figure vs day before"]
    assert said["event_count"] == ["▲ 200.0 % vs day before"]
    assert said["conversion_rate"] == ["▲ 50.00 pt vs day before"]  # 1 of 2 users bought, 0 of 1 the day before

    assert report(saturday, tmp_path / "saturday.html").returncode == 0
    why = Dom((tmp_path / "saturday.html").read_text(encoding="utf-8")).one("p", data_no_comparison="day")["text"]
    assert f"{friday} was loaded, but the quality gate blocked it (1 failed check" in why, why


def test_a_small_change_is_escaped_html(published, tmp_path: Path) -> None:
    comparison = page.Comparison("day", "the day before", W0, {"order_count": 10_000}, None)
    assert page._delta(10_001, 10_000, comparison, "count").endswith(">▲ &lt; 0.1 % vs day before</span>")


def test_a_day_that_only_holds_late_rows_is_not_called_empty(published, tmp_path: Path) -> None:
    done = report(SUNDAY, tmp_path / "sunday.html")
    assert done.returncode == 1 and not (tmp_path / "sunday.html").exists()
    assert done.stderr.strip() == (
        f"error: {SUNDAY} is not a load date Postgres publishes (it is not in audit.publish_log): it holds only 1 late"
        " order(s) and 0 event(s) from other dates' files; report a published date, or, if 2025-11-09 has files of"
        " its own, run the pipeline for 2025-11-09 first (luigi --module pipeline.tasks DailyPipeline --date"
        " 2025-11-09 --local-scheduler)"), done.stderr
