"""What the daily report shows, read from the Postgres serving layer (and the gate's passes from the lake).

The numbers come from the same files BI users run (`queries/daily_kpis.sql`, `conversion_funnel.sql`,
`revenue_by_category_daily.sql`, `top_products_daily.sql`, `new_vs_returning_customers.sql`,
`cancellation_refund_rates.sql`), wrapped as `select * from (<query>) as q where <date filter>` with
the dates bound and the queries' reporting window swapped for the 30 days ending at the date, plus the date's rows of warehouse.daily_metrics, audit.dq_failures,
audit.bad_records, audit.rejected_lines and audit.publish_log. Postgres keeps only the checks that
warned, failed or errored; how many passed is read from the lake's gate results for the date
(`lake/audit/dq_results`) when the lake is at hand. Postgres gets a date's quarantined rows and
rejected lines when it publishes the date: for a date not published (the gate blocked it), and for a
published date whose restatement is pending or that the gate judged again after its publish (the checks
shown are the new version's, Postgres's quarantine the old one's), they are read from the lake's
audit/bad_records and audit/rejected_lines, or shown as not available when the lake is not at hand, never
as 0.

Comparisons. The day's KPIs are compared with the day before and with the same weekday a week
before, each only when both dates were published as load dates of their own (audit.publish_log). A
calendar date nobody loaded holds at most the late rows of other dates' files (7 orders the day
before the first load date, say): a change against that says nothing, so the page says why there is
no comparison instead.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pipeline.lake import views
from pipeline.quality import gate as checks
from pipeline.quality import quarantine
from pipeline.serving import pg
from pipeline.tasks import restatements

logger = logging.getLogger(__name__)

TREND_DAYS = 14
TOP = 5  # categories and products shown
COMPARISONS = (  # key, days back, what the base is
    ("day", 1, "the day before"),
    ("week", 7, "the same weekday a week before"),
)


class NothingToReport(Exception):
    """Postgres has nothing for the date: it was neither published nor checked."""


@dataclasses.dataclass
class Comparison:
    """A date the day's KPIs are compared with, or why they are not."""

    key: str  # "day" or "week"
    label: str  # "the day before"
    day: dt.date
    kpis: dict[str, Any] | None  # its daily_kpis.sql row when the comparison holds, else None
    missing: str | None  # why there is no comparison; None when there is one

    @property
    def holds(self) -> bool:
        return self.missing is None


@dataclasses.dataclass
class ReportData:
    """Everything the page shows for one date."""

    day: dt.date
    source: str  # where the numbers come from (a DSN without password)
    kpis: dict[str, Any] | None  # daily_kpis.sql row of the day
    comparisons: list[Comparison]  # the day before, the same weekday a week before
    trend: list[dict[str, Any]]  # daily_kpis.sql rows of the 14 days up to the day (missing days absent)
    funnel: dict[str, Any] | None  # conversion_funnel.sql row of the day
    categories: list[dict[str, Any]]  # revenue_by_category_daily.sql rows of the day, top TOP by net revenue
    products: list[dict[str, Any]]  # top_products_daily.sql rows of the day, product_rank <= TOP
    customers: dict[str, Any] | None  # new_vs_returning_customers.sql row of the day
    cancellations: dict[str, Any] | None  # cancellation_refund_rates.sql row of the day
    metrics: dict[str, Any] | None  # warehouse.daily_metrics row (run_date = the day)
    published: dict[str, Any] | None  # audit.publish_log row
    check_outcomes: list[dict[str, Any]]  # audit.dq_failures rows (warn, fail, error)
    checks_passed: int | None  # from the lake's gate results; None when they are not available
    # source_table, reason_code, row_count; None (and rejected_lines None) when not known: a date not published
    # whose lake files cannot be read here (`quarantine_note` says why)
    quarantine: list[dict[str, Any]] | None
    rejected_lines: int | None
    quarantine_note: str | None = None  # where the quarantine was read when not from Postgres, or why it is unknown

    def count_outcome(self, outcome: str) -> int:
        return sum(1 for row in self.check_outcomes if row["outcome"] == outcome)

    @property
    def trend_days(self) -> list[dt.date]:
        return [self.day - dt.timedelta(days=n) for n in range(TREND_DAYS - 1, -1, -1)]


# The day-by-day queries show the reporting window, the 30 days ending at the latest complete day
# (marts.reporting_window). The report of a date asks for the 30 days ending at that date instead, as
# queries/README.md tells an analyst to, so that an older date's report still has its numbers (and,
# as the queries, never a day past the latest complete one).
REPORTING_WINDOW = "marts.reporting_window"
REPORT_WINDOW = ("(select cast(%s as date) - 29 as first_date,"
                 " least(cast(%s as date), latest.latest_complete_date) as last_date"
                 " from marts.latest_complete_day as latest) as reporting_window")


def _query(name: str, where: str, day: dt.date, params: list[Any]) -> tuple[str, list[Any]]:
    """A query file over the 30 days ending at `day`, filtered by `where`, and its parameters.

    psycopg placeholders; % in the file escaped; `params` are `where`'s.
    """
    text = views.query_text(name).replace("%", "%%")
    windows = text.count(REPORTING_WINDOW)
    text = text.replace(REPORTING_WINDOW, REPORT_WINDOW)
    return f"select * from ({text}) as q where {where}", [day, day] * windows + params


def _rows(conn: psycopg.Connection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def _one(conn: psycopg.Connection, sql: str, params: list[Any]) -> dict[str, Any] | None:
    rows = _rows(conn, sql, params)
    return rows[0] if rows else None


def describe(conn: psycopg.Connection) -> str:
    """user@host:port/database of a connection (never a password)."""
    info = conn.info
    return f"{info.user}@{info.host}:{info.port}/{info.dbname}"


def comparisons(day: dt.date, by_date: dict[dt.date, dict[str, Any]], published: set[dt.date],
                blocked: dict[dt.date, int] | None = None) -> list[Comparison]:
    """The day before and the same weekday a week before: comparable only if both dates were loaded.

    `blocked`: dates not published whose quality gate blocked them, with their failed checks.
    """
    found = []
    for key, days_back, label in COMPARISONS:
        base = day - dt.timedelta(days=days_back)
        row = by_date.get(base)
        if day not in published:
            missing = f"{day} itself is not published"
        elif base in published:
            missing = None
        elif (failed := (blocked or {}).get(base)) is not None:
            missing = (f"{base} was loaded, but the quality gate blocked it ({failed} failed check"
                       f"{'' if failed == 1 else 's'}: python -m pipeline summary --date {base})")
        elif row is not None:
            orders, events = row["order_count"], row["event_count"]
            missing = (f"{base} was not loaded as a day of its own (Postgres holds only {orders:,}"
                       f" order{'' if orders == 1 else 's'} and {events:,} event{'' if events == 1 else 's'}"
                       " for it, late rows from other dates' files)")
        else:
            missing = f"{base} was not loaded (Postgres has nothing for it)"
        found.append(Comparison(key, label, base, row if missing is None else None, missing))
    return found


def fetch(conn: psycopg.Connection, day: dt.date) -> ReportData:
    """Read the report's numbers for `day` from the serving database (NothingToReport first: a date never
    loaded, e.g. 0001-01-01, is said so before any date arithmetic around it)."""
    run_first = (f"run the pipeline for {day} first"
                 f" (luigi --module pipeline.tasks DailyPipeline --date {day} --local-scheduler)")
    if not pg.has_table(conn, "audit.publish_log"):
        raise NothingToReport(
            f"Postgres ({describe(conn)}) holds no serving tables yet: nothing was ever published there; {run_first}")
    metrics = _one(conn, "select * from warehouse.daily_metrics where run_date = %s", [day])
    published = _one(conn, "select * from audit.publish_log where load_date = %s", [day])
    outcomes = _rows(conn, "select check_name, table_name, check_type, outcome, value, message from audit.dq_failures"
                           " where run_date = %s order by case outcome when 'error' then 0 when 'fail' then 1"
                           " else 2 end, table_name, check_name", [day])
    if published is None and metrics is None and not outcomes:
        late = _one(conn, *_query("daily_kpis", "q.kpi_date = %s", day, [day]))
        if late is not None:  # a calendar day other dates' files have late rows of, never a load date itself
            raise NothingToReport(
                f"{day} is not a load date Postgres publishes (it is not in audit.publish_log): it holds only"
                f" {late['order_count']:,} late order(s) and {late['event_count']:,} event(s) from other dates' files;"
                f" report a published date, or, if {day} has files of its own, {run_first}")
        raise NothingToReport(
            f"Postgres ({describe(conn)}) has nothing for {day}: it is not in audit.publish_log and has"
            f" no quality outcomes; {run_first}")
    first = day - dt.timedelta(days=TREND_DAYS - 1)
    trend = _rows(conn, *_query("daily_kpis", "q.kpi_date between %s and %s order by q.kpi_date", day, [first, day]))
    by_date = {row["kpi_date"]: row for row in trend}
    bases = [day - dt.timedelta(days=days_back) for _, days_back, _ in COMPARISONS]
    published_dates = {row["load_date"] for row in _rows(
        conn, "select load_date from audit.publish_log where load_date = any(%s)", [[day, *bases]])}
    blocked = {row["run_date"]: row["n"] for row in _rows(
        conn, "select run_date, count(*) as n from audit.dq_failures where run_date = any(%s)"
              " and outcome in ('fail', 'error') group by run_date", [bases])}
    funnel = _one(conn, *_query("conversion_funnel", "q.event_date = %s", day, [day]))
    categories = _rows(conn, *_query("revenue_by_category_daily", "q.order_date = %s"
                                     " order by q.net_revenue desc, q.category limit %s", day, [day, TOP]))
    products = _rows(conn, *_query("top_products_daily", "q.order_date = %s and q.product_rank <= %s"
                                   " order by q.product_rank", day, [day, TOP]))
    customers = _one(conn, *_query("new_vs_returning_customers", "q.order_date = %s", day, [day]))
    cancellations = _one(conn, *_query("cancellation_refund_rates", "q.order_date = %s", day, [day]))
    gate_run = _lake_gate(day)
    if (newer := _lake_version(day, published, gate_run)) is not None:  # Postgres gets a date's quarantine when it
        quarantine, rejected_lines, quarantine_note = _lake_quarantine(day, newer)  # publishes it: the lake before
    else:
        quarantine = _rows(conn, "select source_table, reason_code, count(*) as row_count from audit.bad_records"
                                 " where load_date = %s group by source_table, reason_code"
                                 " order by count(*) desc, source_table, reason_code", [day])
        rejected = _one(conn, "select count(*) as n from audit.rejected_lines where load_date = %s", [day])
        rejected_lines, quarantine_note = rejected["n"] if rejected else 0, None
    return ReportData(
        day=day, source=describe(conn), kpis=by_date.get(day),
        comparisons=comparisons(day, by_date, published_dates, blocked), trend=trend, funnel=funnel,
        categories=categories, products=products, customers=customers, cancellations=cancellations,
        metrics=metrics, published=published, check_outcomes=outcomes,
        checks_passed=None if gate_run is None else gate_run.passed,
        quarantine=quarantine, rejected_lines=rejected_lines, quarantine_note=quarantine_note,
    )


def _lake_version(day: dt.date, published: dict[str, Any] | None, gate_run: Any) -> str | None:
    """Why the date's quarantine is read from the lake, not Postgres: the date is not published, or it is but a
    restatement of it waits for its publish, or the gate judged the date again after its publish (the checks
    shown are then the new version's, the quarantine in Postgres the published one's); None: Postgres's."""
    if published is None:
        return f"{day} is not published"
    at = published["published_at"].astimezone(dt.timezone.utc)
    served = f"Postgres serves the version published at {at:%Y-%m-%d %H:%M} UTC"
    try:
        if restatements.pending(day):
            return f"{day} is published, but its restatement is pending (not published): {served}"
    except OSError as err:  # the lake is optional for the report: say so, go on
        logger.warning("could not read the restatement record of %s (%s)", day, err)
    if gate_run is not None and gate_run.checked_at.replace(tzinfo=dt.timezone.utc) > at:
        return (f"the quality gate judged {day} again at {gate_run.checked_at:%Y-%m-%d %H:%M} UTC, after its"
                f" publish, and it was not published again: {served}")
    return None


def _lake_quarantine(day: dt.date, why: str) -> tuple[list[dict[str, Any]] | None, int | None, str]:
    """The quarantined rows by reason and rejected lines of a date whose Postgres copy is not the version the gate
    judged last (`why`: `_lake_version`), from the lake's audit files, and where they come from; (None, None, why)
    when the lake cannot say (never a 0 that is not known)."""
    try:
        found = quarantine.of_date(day)
    except quarantine.NotInLake as err:  # the lake is optional for the report: say so, go on
        logger.warning("could not read the lake's quarantine of %s (%s): not shown", day, err)
        return None, None, (f"{why}, so Postgres does not hold the quarantine of the version shown, and the lake's"
                            f" audit/bad_records could not be read here: {err}")
    rows = [{"source_table": source, "reason_code": reason, "row_count": n} for source, reason, n in found.reasons]
    return rows, found.rejected_lines, (f"{why}: its quarantine is read from the lake's audit/bad_records and"
                                        f" audit/rejected_lines ({found.where}), the version the quality gate judged"
                                        f" last, of {', '.join(found.sources)}; Postgres gets them when the date is"
                                        " published")


def _lake_gate(day: dt.date) -> Any:
    """The date's gate results in the lake (how many checks passed: Postgres keeps no passes; when the gate
    judged the date last); None when they are not available."""
    try:
        return checks.load_results(day)
    except Exception as err:  # noqa: BLE001 - the lake is optional for the report: say so, go on
        logger.warning("could not read the lake's gate results for %s (%s): passed checks not shown", day, err)
        return None


def load(day: dt.date) -> ReportData:
    """fetch() on the configured serving Postgres (ECOMM_PG_DSN, PG* or the embedded server)."""
    with pg.connect_or_refuse() as conn:
        conn.read_only = True
        return fetch(conn, day)
