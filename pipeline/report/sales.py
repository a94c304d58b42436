"""The daily report's sales section: top categories and products, new and returning customers,
cancellations and refunds (each from its file in queries/, see pipeline.report.data)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.report import fmt
from pipeline.report import svg as report_svg
from pipeline.report.data import ReportData
from pipeline.report.svg import esc

Money = Callable[[Any], str]


def _table(head: list[tuple[str, bool]], rows: list[str]) -> str:
    cells = "".join(f'<th{" class=num" if numeric else ""}>{esc(name)}</th>' for name, numeric in head)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _num(value: Any, shown: str, name: str = "value") -> str:
    return f'<td class="num" data-{name}="{esc("" if value is None else value)}">{esc(shown)}</td>'


def _categories(data: ReportData, money: Money) -> str:
    head = "<h3>Top categories by net revenue</h3>"
    if not data.categories:
        if data.kpis and data.kpis["order_count"]:  # orders, but outside the query's window
            why = (f"queries/revenue_by_category_daily.sql has no category for {data.day}: it shows days up to the"
                   " latest complete day.")
        else:
            why = "No orders on this date."
        return f'{head}<p class="note" data-categories="none">{esc(why)}</p>'
    rows = [f'<tr data-category="{esc(r["category"])}"><td>{esc(r["category"])}</td>'
            + _num(r["order_count"], fmt.count(r["order_count"]), "orders")
            + _num(r["total_revenue"], money(r["total_revenue"]), "gross")
            + _num(r["net_revenue"], money(r["net_revenue"]), "net") + "</tr>" for r in data.categories]
    chart = report_svg.bar_list(
        "categories", f"Net revenue of the top {len(data.categories)} categories, {data.day}",
        [(r["category"], r["net_revenue"]) for r in data.categories], fmt=money, key="category")
    return head + chart + _table([("category", False), ("orders", True), ("gross revenue", True),
                                  ("net revenue", True)], rows)


def _products(data: ReportData, money: Money) -> str:
    head = "<h3>Top products by net revenue</h3>"
    if not data.products:
        return f'{head}<p class="note" data-products="none">No orders on this date.</p>'
    rows = [f'<tr data-product="{esc(r["product_id"])}"><td>{r["product_rank"]}</td><td>{esc(r["product_name"])}'
            f'</td><td>{esc(r["category"])}</td>'
            + _num(r["units_sold"], fmt.count(r["units_sold"]), "units")
            + _num(r["order_count"], fmt.count(r["order_count"]), "orders")
            + _num(r["net_revenue"], money(r["net_revenue"]), "net") + "</tr>" for r in data.products]
    return head + _table([("#", False), ("product", False), ("category", False), ("units", True),
                          ("orders", True), ("net revenue", True)], rows)


def _customers(data: ReportData, money: Money) -> str:
    head = "<h3>New and returning customers</h3>"
    c = data.customers
    if not c:
        return f'{head}<p class="note" data-customers="none">No orders on this date.</p>'
    rows = [f'<tr data-customers="{kind}"><td>{kind}</td>'
            + _num(c[f"{kind}_customer_count"], fmt.count(c[f"{kind}_customer_count"]), "count")
            + _num(c[f"{kind}_customer_revenue"], money(c[f"{kind}_customer_revenue"]), "gross")
            + _num(c[f"{kind}_customer_net_revenue"], money(c[f"{kind}_customer_net_revenue"]), "net") + "</tr>"
            for kind in ("new", "returning")]
    note = (f'<p class="note">{fmt.count(c["customer_count"])} customers ordered; <span data-new-share='
            f'"{c["new_customer_share"]}">{esc(fmt.percent(c["new_customer_share"]))}</span> of them for the first'
            " time (their first order in the warehouse).</p>")
    return head + _table([("customers", False), ("count", True), ("gross revenue", True),
                          ("net revenue", True)], rows) + note


def _cancellations(data: ReportData, money: Money) -> str:
    head = "<h3>Cancellations and refunds</h3>"
    c = data.cancellations
    if not c:
        return f'{head}<p class="note" data-cancellations="none">No orders on this date.</p>'
    rows = [f'<tr data-status="{status}"><td>{status}</td>'
            + _num(c[f"{status}_count"], fmt.count(c[f"{status}_count"]), "count")
            + _num(c[f"{rate}_rate"], fmt.percent(c[f"{rate}_rate"]), "rate")
            + _num(c[f"{status}_revenue"], money(c[f"{status}_revenue"]), "revenue") + "</tr>"
            for status, rate in (("cancelled", "cancellation"), ("refunded", "refund"))]
    return head + _table([("orders", False), ("count", True), ("% of the day's orders", True),
                          ("revenue taken back", True)], rows)


def section(data: ReportData, money: Money) -> str:
    """The sales section's HTML (every amount through `money`, which adds the currency)."""
    return "".join(part(data, money) for part in (_categories, _products, _customers, _cancellations))
