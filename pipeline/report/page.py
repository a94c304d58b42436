"""The daily report: one self-contained HTML page per date, from the Postgres serving layer.

    python -m pipeline report --date 2025-12-15 [--out reports/daily_report_2025-12-15.html]

The page needs nothing but a browser: inline CSS, inline SVG charts (`pipeline.report.svg`), no
script, no font, no image, no link to fetch. It shows the day's KPIs (orders, gross and net revenue,
average order value, events, active users, conversion) with the change from the day before and from
the same weekday a week before (in %, conversion in percentage points; only against dates loaded as
days of their own: see pipeline.report.data), the revenue of the 14 days up to the date, the top categories and products,
new and returning customers, cancellations and refunds, the funnel, the data-quality status (checks
passed, warned, failed; quarantined rows by reason, from the lake's audit files for a date not published
yet) and the rows per layer. Sales and events are by
business day ([model] business_timezone, UTC unless set), pipeline figures by load date; money is in
[report] currency (USD unless set). Every figure is also in a `data-*` attribute, exactly as Postgres
returned it, for tools that read the page.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import pwd
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipeline import cli, config, lake, resources
from pipeline.report import data as report_data
from pipeline.report import fmt, sales, settings
from pipeline.report import svg as report_svg
from pipeline.report.data import Comparison, NothingToReport, ReportData
from pipeline.report.fmt import count, percent
from pipeline.report.svg import esc
from pipeline.serving import pg

logger = logging.getLogger(__name__)

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0; background: #f6f7f9; }
main { max-width: 800px; margin: 0 auto; padding: 24px 28px 40px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 10px; border-bottom: 1px solid #e3e3e3; padding-bottom: 4px; }
.meta, .note { color: #666; font-size: 12px; }
.banner { padding: 8px 12px; border-radius: 6px; margin: 12px 0; }
.banner.bad { background: #fdecea; color: #7b241c; } .banner.good { background: #eaf6ee; color: #245c37; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; margin-top: 16px; }
.kpi { border: 1px solid #e3e3e3; border-radius: 8px; padding: 10px 12px; }
.kpi .label { display: block; color: #666; font-size: 12px; }
.kpi .value { display: block; font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.kpi .value .cur { font-size: 12px; font-weight: 400; color: #666; }
.kpi .delta { display: block; font-size: 12px; color: #666; } .delta.up { color: #245c37; } .delta.down { color: #a93226; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eee; font-size: 13px; vertical-align: top; }
td.num, th.num { text-align: right; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.pill.pass { background: #eaf6ee; color: #245c37; } .pill.warn { background: #fdf3e1; color: #8a5a0b; }
.pill.fail, .pill.error { background: #fdecea; color: #7b241c; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 6px 0; }
"""


# ------------------------------------------------------------------------------------- formatting
KPIS = (  # column of daily_kpis.sql, label, kind of figure
    ("order_count", "Orders", "count"),
    ("gross_revenue", "Gross revenue", "money"),
    ("net_revenue", "Net revenue", "money"),
    ("avg_order_value", "Average order value", "money"),
    ("event_count", "Events", "count"),
    ("active_users", "Active users", "count"),
    ("purchasing_users", "Buyers", "count"),
    ("conversion_rate", "Conversion", "percent"),
)
VERSUS = {"day": "vs day before", "week": "vs same day last week"}


def _delta(current: Any, base: Any, comparison: Comparison, kind: str) -> str:
    """The change from a comparison's date: in % of its figure, a rate's in percentage points (the difference of
    the two rates shown); from 0 or from no figure at all (average order value of a day without orders), said so."""
    versus, day = VERSUS[comparison.key], comparison.day
    if current is None:
        return ""
    if base is None or (kind != "percent" and Decimal(base) == 0):
        said = "– no figure" if base is None else "= still 0" if Decimal(current) == 0 else "▲ from 0"
        return f'<span class="delta" data-compare="{comparison.key}" data-delta="" title="{day}">{said} {versus}</span>'
    difference = Decimal(current) - Decimal(base)
    change = difference if kind == "percent" else difference * 100 / Decimal(base)
    direction = "up" if change > 0 else "down" if change < 0 else "flat"
    arrow = {"up": "▲", "down": "▼", "flat": "="}[direction]
    if kind == "percent":
        size = f"{abs(change):.2f} pt"
    else:
        size = f"{abs(change):.1f} %" if abs(change) >= Decimal("0.05") or not change else "&lt; 0.1 %"
    return (f'<span class="delta {direction}" data-compare="{comparison.key}" data-delta="{change:.2f}"'
            f' title="{day}">{arrow} {size} {versus}</span>')


def _kpi_cards(data: ReportData, currency: str) -> str:
    kpis = data.kpis or {}
    cards = []
    for key, label, kind in KPIS:
        value = kpis.get(key)
        if kind == "money":  # the code small, so that the amount fits the card
            shown = esc(fmt.amount(value)) if value is None else f'<span class="cur">{currency}</span> {fmt.amount(value)}'
        else:
            shown = esc(count(value) if kind == "count" else percent(value))
        deltas = "".join(_delta(value, c.kpis.get(key), c, kind) for c in data.comparisons if c.holds and c.kpis)
        cards.append(
            f'<div class="kpi" data-kpi="{key}" data-value="{esc("" if value is None else value)}">'
            f'<span class="label">{esc(label)}</span><span class="value">{shown}</span>'
            f"{deltas or '<span class=delta>&nbsp;</span>'}</div>")
    return f'<div class="kpis">{"".join(cards)}</div>'


def _comparison_notes(data: ReportData) -> str:
    """Which dates the deltas compare with, and why a comparison is missing."""
    held = [f"{c.label} ({c.day.strftime('%a')} {c.day})" for c in data.comparisons if c.holds]
    notes = [f'<p class="note" data-compared="{" ".join(c.key for c in data.comparisons if c.holds)}">'
             f"Changes are against {esc(' and '.join(held))}.</p>"] if held else []
    notes += [f'<p class="note" data-no-comparison="{c.key}">No comparison with {esc(c.label)}: {esc(c.missing)}.</p>'
              for c in data.comparisons if not c.holds]
    return "".join(notes)


def _trend(data: ReportData, money: Any) -> str:
    by_date = {row["kpi_date"]: row for row in data.trend}
    days = data.trend_days
    gross = [by_date[d]["gross_revenue"] if d in by_date else None for d in days]
    net = [by_date[d]["net_revenue"] if d in by_date else None for d in days]
    return report_svg.column_chart(
        "revenue-trend", f"Gross and net revenue, {days[0]} to {days[-1]}", [d.isoformat() for d in days],
        [("gross revenue", gross), ("net revenue", net)], labels=[d.strftime("%m-%d") for d in days],
        highlight=data.day.isoformat(), fmt=money)


FUNNEL_STEPS = (
    ("active_users", "Active users"),
    ("users_viewed_product", "Viewed a product"),
    ("users_added_to_cart", "Added to cart"),
    ("users_checked_out", "Checked out"),
    ("users_purchased", "Purchased"),
)


def _funnel(data: ReportData) -> str:
    if not data.funnel:
        return '<p class="note">No events on this date.</p>'
    first = data.funnel["active_users"] or 0
    rows = [(label, data.funnel[key]) for key, label in FUNNEL_STEPS]
    notes = [f"{Decimal(100 * value) / first:.1f} % of active" if first else "" for _, value in rows]
    chart = report_svg.bar_list("funnel", f"Funnel on {data.day}", rows, fmt=count, notes=notes, key="step")
    rates = (f'<p class="note">Add-to-cart rate {esc(percent(data.funnel["atc_rate"]))} · cart-to-purchase'
             f' {esc(percent(data.funnel["conversion_rate"]))} · visit-to-purchase'
             f' {esc(percent(data.funnel["visit_to_purchase_rate"]))}</p>')
    return chart + rates


def _quality(data: ReportData) -> str:
    warned, failed, errored = (data.count_outcome(o) for o in ("warn", "fail", "error"))
    status = "fail" if failed or errored else "warn" if warned else "pass"
    passed = data.checks_passed
    parts = [
        f'<p>Quality gate: <span class="pill {status}" data-gate="{status}">{status.upper()}</span> '
        f'<span data-checks-passed="{esc("" if passed is None else passed)}">{esc(count(passed))} passed</span> · '
        f'<span data-checks-warned="{warned}">{warned} warned</span> · '
        f'<span data-checks-failed="{failed}">{failed} failed</span> · '
        f'<span data-checks-errored="{errored}">{errored} errored</span></p>',
        report_svg.stacked_bar("checks", f"Quality checks of {data.day}", [
            ("passed", passed or 0, "pass"), ("warned", warned, "warn"), ("failed", failed, "fail"),
            ("errored", errored, "error")]),
    ]
    if passed is None:
        parts.append('<p class="note">Passed checks come from the lake\'s gate results, not available here;'
                     " Postgres keeps only the checks that warned, failed or errored.</p>")
    if data.check_outcomes:
        rows = "".join(
            f'<tr data-check="{esc(r["check_name"])}"><td><span class="pill {esc(r["outcome"])}">{esc(r["outcome"])}'
            f'</span></td><td>{esc(r["table_name"])}</td><td>{esc(r["check_name"])}</td>'
            f'<td class="num">{esc(r["value"] if r["value"] is not None else "–")}</td>'
            f'<td>{esc(r["message"] or "")}</td></tr>'
            for r in data.check_outcomes)
        parts.append("<table><thead><tr><th>outcome</th><th>table</th><th>check</th><th class=num>value</th>"
                     f"<th>message</th></tr></thead><tbody>{rows}</tbody></table>")
    if data.quarantine is None:  # not published, and the lake not at hand: not known, never a 0
        parts.append('<h3>Quarantined rows: <span data-quarantined="">not available yet</span> · rejected lines:'
                     ' <span data-rejected-lines="">not available yet</span></h3>'
                     f'<p class="note" data-quarantine-note>{esc(data.quarantine_note or "")}</p>')
        return "".join(parts)
    total = sum(r["row_count"] for r in data.quarantine)
    parts.append(f'<h3>Quarantined rows: <span data-quarantined="{total}">{count(total)}</span>'
                 f' · rejected lines: <span data-rejected-lines="{data.rejected_lines}">'
                 f"{count(data.rejected_lines)}</span></h3>")
    if data.quarantine_note:  # read from the lake: the date (or the version the gate judged last) is not published
        parts.append(f'<p class="note" data-quarantine-note>{esc(data.quarantine_note)}</p>')
    parts.append(report_svg.bar_list(
        "quarantine", f"Quarantined rows by reason, {data.day}",
        [(f'{r["source_table"]}: {r["reason_code"]}', r["row_count"]) for r in data.quarantine],
        fmt=count, key="reason", series_class="series-3"))
    return "".join(parts)


LAYER_COLUMNS = (("raw", "raw_{}_count"), ("staged", "staging_{}_count"), ("quarantined", "quarantined_{}_count"),
                 ("duplicates", "duplicate_{}_count"), ("facts", "fact_{}_count"))


def _layers(data: ReportData) -> str:
    m = data.metrics
    if not m:
        return '<p class="note">No daily_metrics row: the date is not published.</p>'
    head = "".join(f'<th class="num">{esc(name)}</th>' for name, _ in LAYER_COLUMNS)
    body = "".join(
        f'<tr data-source="{source}"><th>{source}</th>'
        + "".join(f'<td class="num" data-layer="{name}" data-value="{esc(m[col.format(source)])}">'
                  f"{count(m[col.format(source)])}</td>" for name, col in LAYER_COLUMNS)
        + "</tr>" for source in ("orders", "events"))
    chart = report_svg.column_chart(
        "layers", f"Rows per layer, load date {data.day}", [name for name, _ in LAYER_COLUMNS],
        [(source, [m[col.format(source)] for _, col in LAYER_COLUMNS]) for source in ("orders", "events")],
        fmt=count, height=220)
    runtime = m.get("runtime_seconds")
    extra = (f'<p class="note">Unknown-product share {Decimal(m["unknown_product_share"] or 0) * 100:.2f} %'
             + (f' · pipeline runtime <span data-runtime="{runtime}">{runtime:.1f} s</span>' if runtime else "")
             + "</p>")
    return f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>{chart}{extra}"


def _banner(data: ReportData) -> str:
    if data.published:
        at = data.published["published_at"].astimezone(dt.timezone.utc)  # Postgres gives the session's zone
        return (f'<p class="banner good" data-published="true">Published {esc(at.strftime("%Y-%m-%d %H:%M UTC"))}'
                f' (run {esc(data.published.get("run_id") or "–")}).</p>')
    return ('<p class="banner bad" data-published="false">Not published: the quality gate blocked this date or'
            " the pipeline has not finished it. The checks below say why.</p>")


def render(data: ReportData, generated_at: dt.datetime | None = None, currency: str | None = None) -> str:
    """The report page for `data`, as one HTML document; money in `currency` (default: [report] currency)."""
    generated = (generated_at or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    code = settings.currency(currency)
    zone = config.business_zone().key  # the days the pipeline grouped sales and events by
    money = functools.partial(fmt.money, currency=code)
    day = data.day
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Daily report {day}</title>
<style>{CSS}</style>
</head>
<body>
<main data-report-date="{day}">
<h1>Daily report · {day} ({day.strftime("%A")})</h1>
<p class="meta">From the serving Postgres ({esc(data.source)}) · generated {generated}</p>
{_banner(data)}
<section id="kpis"><h2>The day in numbers</h2>{_kpi_cards(data, code)}
{_comparison_notes(data)}
<p class="note">Orders and revenue by order date, events and users by event date, business days in
<span data-business-timezone="{esc(zone)}">{esc(zone)}</span>. Gross revenue: every
order; net: sold statuses only. Conversion: users with a purchase / active users. Amounts in
<span data-currency="{code}">{code}</span>.</p></section>
<section id="trend"><h2>Revenue, 14 days to {day}</h2>{_trend(data, money)}</section>
<section id="sales"><h2>Sales of {day}</h2>{sales.section(data, money)}</section>
<section id="funnel"><h2>Funnel</h2>{_funnel(data)}</section>
<section id="quality"><h2>Data quality (load date {day})</h2>{_quality(data)}</section>
<section id="layers"><h2>Rows per layer (load date {day})</h2>{_layers(data)}</section>
<p class="note">Figures from queries/daily_kpis.sql, conversion_funnel.sql, revenue_by_category_daily.sql,
top_products_daily.sql, new_vs_returning_customers.sql and cancellation_refund_rates.sql (the same files run on
the lake), warehouse.daily_metrics and the audit schema.</p>
</main>
</body>
</html>
"""


def default_out(day: dt.date) -> Path:
    return resources.work_dir() / "reports" / f"daily_report_{day.isoformat()}.html"


class BadOut(ValueError):
    """--out names a folder, or a file in a folder that does not exist (only the default folder is made)."""


def check_out(given: str | Path, day: dt.date) -> Path:
    """`given` as the page's path if it can be written there, else BadOut saying what to give instead."""
    text = str(given)
    if not text.strip():
        raise BadOut(f"--out is empty: give the page's file name, e.g. {default_out(day)}, or leave --out out")
    out = Path(text)
    if out.is_dir():
        raise BadOut(f"--out {out} is a folder: give the page's file name, e.g. {out / default_out(day).name}")
    if text.endswith(("/", os.sep)):
        raise BadOut(f"--out {text} names a folder (it ends with {text[-1]}): give the page's file name, e.g."
                     f" {out / default_out(day).name}")
    if not out.parent.is_dir():
        raise BadOut(f"--out {out}: the folder {out.parent} does not exist; create it first, or give another path")
    return out


def check_default_out(day: dt.date) -> Path:
    """The default page path if this user may write there (reports/ in the checkout, made when the page is written),
    else BadOut naming the folder and `--out`: a service user's root-owned checkout, a read-only one."""
    target = default_out(day)
    there = next(folder for folder in target.parents if folder.exists())  # what a write would make reports/ in
    if not there.is_dir():
        raise BadOut(f"the report's default folder {target.parent} cannot be made: {there} is a file, not a folder;"
                     f" move it away, or give a path you may write with --out, e.g. --out DIR/{target.name}")
    if os.access(there, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):  # as a write would
        return target
    read_only = bool(os.statvfs(there).f_flag & os.ST_RDONLY)
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (a container's)
        user = f"id {os.geteuid()}"
    why = "is on a read-only file system" if read_only else f"may not be written by user {user}"
    made = "" if there == target.parent else ", where it would be made,"
    raise BadOut(f"the report's default folder {target.parent} cannot be written ({there}{made} {why}): give a path"
                 f" you may write with --out, e.g. --out DIR/{target.name}")


class NotWritten(OSError):
    """The page could not be written (permissions, disk full); no temporary file is left."""


def write(day: dt.date, out: Path | None = None, currency: str | None = None) -> Path:
    """Write the report of `day` (atomically) and return its path; money in `currency` (default: [report]).

    Only the default folder (reports/) is created; an `out` in a missing folder, or naming a folder,
    is BadOut. A failed write leaves no temporary file behind (NotWritten).
    """
    code = settings.currency(currency)  # a wrong setting fails before Postgres is asked anything
    return write_to(day, check_out(out, day) if out is not None else check_default_out(day), code)


def write_to(day: dt.date, target: Path, currency: str | None = None) -> Path:
    """write() to a path check_out or check_default_out returned."""
    code = settings.currency(currency)
    html = render(report_data.load(day), currency=code)
    tmp = Path(lake.temp_path(str(target)))  # makes the default folder
    try:
        tmp.write_text(html, encoding="utf-8")
        lake.promote(str(tmp), str(target))
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise NotWritten(f"cannot write the report to {target}: {err.strerror or err}") from err
        raise
    logger.info("wrote the daily report of %s to %s", day, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(prog="python -m pipeline report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--date", required=True, type=cli.date_arg, help="the date to report, YYYY-MM-DD")
    parser.add_argument("--out", help="where to write the page (default: reports/daily_report_<date>.html)")
    parser.add_argument("--currency", type=settings.currency_arg,
                        help="ISO 4217 code of the amounts (default: [report] currency in luigi.cfg,"
                             " USD unless set)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S %Z")  # the local clock, naming its zone
    try:
        day = lake.parse_date(args.date)
        # before Postgres is asked anything
        target = check_out(args.out, day) if args.out is not None else check_default_out(day)
    except ValueError as err:  # BadOut too
        parser.error(str(err))
    try:
        path = write_to(day, target, args.currency)
    except config.BadSetting as err:  # as the daily command: a setting's code ([report] currency too)
        print(f"error: {err}", file=sys.stderr)
        return 35
    except (NothingToReport, NotWritten) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except pg.ServingUnreachable as err:
        print(f"error: {err}", file=sys.stderr)
        return pg.UNREACHABLE_EXIT
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
