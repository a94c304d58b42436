"""What the daily report shows, read from the Postgres serving layer (and the gate's passes from the lake).

The numbers come from the same files BI users run (`queries/daily_kpis.sql`, `conversion_funnel.sql`),
wrapped as `select * from (<query>) as q where <date filter>` with the dates bound, plus the date's
rows of warehouse.daily_metrics, audit.dq_failures, audit.bad_records, audit.rejected_lines and
audit.publish_log. Postgres keeps only the checks that warned, failed or errored; how many passed is
read from the lake's gate results for the date (`lake/audit/dq_results`) when the lake is at hand.
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
from pipeline.serving import pg

logger = logging.getLogger(__name__)

TREND_DAYS = 14


class NothingToReport(Exception):
    """Postgres has nothing for the date: it was neither published nor checked."""


@dataclasses.dataclass
class ReportData:
    """Everything the page shows for one date."""

    day: dt.date
    source: str  # where the numbers come from (a DSN without password)
    kpis: dict[str, Any] | None  # daily_kpis.sql row of the day
    previous: dict[str, Any] | None  # ... of the day before (for the deltas)
    trend: list[dict[str, Any]]  # daily_kpis.sql rows of the 14 days up to the day (missing days absent)
    funnel: dict[str, Any] | None  # conversion_funnel.sql row of the day
    metrics: dict[str, Any] | None  # warehouse.daily_metrics row (run_date = the day)
    published: dict[str, Any] | None  # audit.publish_log row
    check_outcomes: list[dict[str, Any]]  # audit.dq_failures rows (warn, fail, error)
    checks_passed: int | None  # from the lake's gate results; None when they are not available
    quarantine: list[dict[str, Any]]  # source_table, reason_code, row_count
    rejected_lines: int

    def count_outcome(self, outcome: str) -> int:
        return sum(1 for row in self.check_outcomes if row["outcome"] == outcome)

    @property
    def trend_days(self) -> list[dt.date]:
        return [self.day - dt.timedelta(days=n) for n in range(TREND_DAYS - 1, -1, -1)]


def _query(name: str, where: str) -> str:
    """A query file as a subquery filtered by `where` (psycopg placeholders; % in the file escaped)."""
    return f"select * from ({views.query_text(name).replace('%', '%%')}) as q where {where}"


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


def fetch(conn: psycopg.Connection, day: dt.date) -> ReportData:
    """Read the report's numbers for `day` from the serving database."""
    first = day - dt.timedelta(days=TREND_DAYS - 1)
    trend = _rows(conn, _query("daily_kpis", "q.kpi_date between %s and %s order by q.kpi_date"), [first, day])
    by_date = {row["kpi_date"]: row for row in trend}
    previous = by_date.get(day - dt.timedelta(days=1))
    funnel = _one(conn, _query("conversion_funnel", "q.event_date = %s"), [day])
    metrics = _one(conn, "select * from warehouse.daily_metrics where run_date = %s", [day])
    published = _one(conn, "select * from audit.publish_log where load_date = %s", [day])
    outcomes = _rows(conn, "select check_name, table_name, check_type, outcome, value, message from audit.dq_failures"
                           " where run_date = %s order by case outcome when 'error' then 0 when 'fail' then 1"
                           " else 2 end, table_name, check_name", [day])
    quarantine = _rows(conn, "select source_table, reason_code, count(*) as row_count from audit.bad_records"
                             " where load_date = %s group by source_table, reason_code"
                             " order by count(*) desc, source_table, reason_code", [day])
    rejected = _one(conn, "select count(*) as n from audit.rejected_lines where load_date = %s", [day])
    if published is None and metrics is None and not outcomes:
        raise NothingToReport(
            f"Postgres ({describe(conn)}) has nothing for {day}: it is not in audit.publish_log and has"
            f" no quality outcomes; run the pipeline for it first"
            f" (luigi --module pipeline.tasks DailyPipeline --date {day} --local-scheduler)")
    return ReportData(
        day=day, source=describe(conn), kpis=by_date.get(day), previous=previous, trend=trend,
        funnel=funnel, metrics=metrics, published=published, check_outcomes=outcomes,
        checks_passed=_lake_passes(day), quarantine=quarantine, rejected_lines=rejected["n"] if rejected else 0,
    )


def _lake_passes(day: dt.date) -> int | None:
    """How many of the date's checks passed, from the lake's gate results (Postgres keeps no passes)."""
    try:
        result = checks.load_results(day)
    except Exception as err:  # noqa: BLE001 - the lake is optional for the report: say so, go on
        logger.warning("could not read the lake's gate results for %s (%s): passed checks not shown", day, err)
        return None
    return None if result is None else result.passed


def load(day: dt.date) -> ReportData:
    """fetch() on the configured serving Postgres (ECOMM_PG_DSN, PG* or the embedded server)."""
    with pg.connect() as conn:
        conn.read_only = True
        return fetch(conn, day)
