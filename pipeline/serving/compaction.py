"""Compacting closed months of the serving facts: `python -m pipeline compact-serving [--month YYYY-MM | --before D]`.

Each fact has one partition per load date (`pipeline.serving.facts`): 365 tables a year, and a
query on the business date (`date_id`), which is not the partition key, plans, locks and probes
every one of them (docs/performance.md, "Partition count"). Compaction replaces the daily
partitions of a closed month by one monthly partition `<fact>_all_mYYYYMM`.

A month is compacted when it is closed (its last day is before the first day of the current month in
[model] business_timezone, or before `--before`) and every date of it that the lake holds is published and reconciled
(audit.publish_log.reconciled_at). Per month, in ONE transaction, so a kill or an error leaves the
daily partitions as they were:

1. the pipeline locks of every date of the month (`pipeline.serving.locks`, in date order): no
   publish of those dates runs meanwhile, and their state is checked again under the locks;
2. per fact, the monthly table is filled from the month's partitions in (load_date, key) order
   with a CHECK on its bounds (so the attach need not scan it), indexed like the parent, analyzed.
   Nothing a reader sees changes yet, and readers are not held up (they only read the daily ones);
3. the global publish lock (the bookkeeping of a publish of another date reads other dates'
   partitions: it must not find one gone), then the daily partitions detached and dropped and the
   monthly one attached, for the final milliseconds of the transaction. Both waits are bounded by
   [publish] lock_timeout; when one runs out (a BI session reading the facts, a publish holding the
   publish lock) the whole transaction is rolled back, and tried again after a backoff, [publish]
   lock_attempts times: between attempts the compaction holds no lock, so publishes never wait
   behind a compaction that waits for BI (step 2 is redone each attempt: seconds for a month).

warehouse.fact_partitions keeps its row per date (rows and key range do not change); which table
holds a date is the catalog's answer (`facts.date_rows`). A later publish of a date inside a
compacted month replaces the date's rows in the monthly partition (`facts.replace_in_month`).
A compacted month is skipped: a rerun changes nothing.

Exit codes: 0 done (or nothing to do), 1 a month failed (nothing of it changed; run again),
2 bad arguments, 3 a month was refused (open, or a date not published or not reconciled) or the
serving Postgres cannot be reached (one line, as `rebuild-serving` says it).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable

import psycopg
from psycopg import sql

from pipeline import config, faults, lake
from pipeline.cli import first_line
from pipeline.serving import locks, migrations, pg
from pipeline.serving.facts import FACTS, SCHEMA, FactSpec, build_indexes, create_stage, month_bounds
from pipeline.serving.transaction import begin_writing

logger = logging.getLogger(__name__)

_DATE_DIR = re.compile(r"load_date=(\d{4}-\d{2}-\d{2})")


class CompactionRefused(RuntimeError):
    """A month cannot be compacted (open, or a date not published or not reconciled); nothing changed."""


class CompactionFailed(RuntimeError):
    """A month's compaction failed and was rolled back: its daily partitions are as they were."""


def _connect() -> psycopg.Connection:
    """An autocommit connection to the serving Postgres (each month's transaction commits on its own)."""
    return pg.connect_or_refuse(autocommit=True)


@dataclasses.dataclass
class MonthPlan:
    """One month of published dates, and whether it can be compacted."""

    month: dt.date  # its first day
    dates: list[dt.date]
    state: str  # "ready", "compacted" or "refused"
    reason: str = ""


def this_month(now: dt.datetime | None = None) -> dt.date:
    """The first day of the month of today's date in [model] business_timezone at `now` (default: the clock), as every
    date default of the pipeline takes today: the months before it are closed (the host's local date closed one hours
    early or late)."""
    return config.business_date(now).replace(day=1)


def month_arg(text: str) -> dt.date:
    """argparse type: a month, exactly YYYY-MM; its first day."""
    try:
        return lake.parse_date(f"{text}-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month: expected YYYY-MM, e.g. 2025-11") from None


def _lake_dates(months: set[dt.date]) -> set[dt.date]:
    """The load dates of those months that the lake holds a fact partition of."""
    found = set()
    for spec in FACTS:
        for path in lake.table_files("warehouse", spec.lake_table):
            match = _DATE_DIR.search(path)
            if match and (day := dt.date.fromisoformat(match.group(1))).replace(day=1) in months:
                found.add(day)
    return found


def _exists(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", [f"{SCHEMA}.{table}"]).fetchone()[0]


def _check(conn: psycopg.Connection, month: dt.date, before: dt.date, lake_dates: set[dt.date]) -> MonthPlan:
    """The month's state in Postgres (and the lake's dates of it): ready, compacted or refused with why."""
    first, following = month_bounds(month)
    published = dict(conn.execute("select load_date, reconciled_at from audit.publish_log"
                                  " where load_date >= %s and load_date < %s order by 1", [first, following]).fetchall())
    dates = sorted(published)
    plan = MonthPlan(month, dates, "ready")
    label = f"{month:%Y-%m}"
    if all(_exists(conn, spec.month_partition(month)) for spec in FACTS):
        plan.state = "compacted"
        return plan
    if following > before:
        plan.state, plan.reason = "refused", (
            f"{label} is not closed: its last day is not before {before}; only months before it are compacted")
        return plan
    missing = sorted(day for day in lake_dates - set(published) if first <= day < following)  # this month's only
    unreconciled = [day for day in dates if published[day] is None]
    no_partition = [f"{spec.parent} of {day}" for day in dates for spec in FACTS if not _exists(conn, spec.partition(day))]
    if missing:
        plan.reason = (f"{label} has {len(missing)} load date(s) in the lake that are not published"
                       f" ({', '.join(map(str, missing[:5]))}{' ...' if len(missing) > 5 else ''});"
                       " run the pipeline for them (or fix what blocks them), then compact")
    elif unreconciled:
        plan.reason = (f"{label} has {len(unreconciled)} published date(s) not reconciled yet"
                       f" ({', '.join(map(str, unreconciled[:5]))}{' ...' if len(unreconciled) > 5 else ''});"
                       " run the pipeline for them (its Publish task reconciles them), then compact")
    elif no_partition:
        plan.reason = (f"{label}: Postgres lacks the daily partition {', '.join(no_partition[:3])};"
                       " republish those dates, then compact")
    elif not dates:
        plan.state, plan.reason = "compacted", "nothing to compact: no load date of it is published"
        return plan
    if plan.reason:
        plan.state = "refused"
    return plan


def plan(conn: psycopg.Connection, months: Iterable[dt.date] | None, before: dt.date) -> list[MonthPlan]:
    """What compaction would do for the months asked (None: every month with a published date before `before`)."""
    if months is None:
        months = sorted({day.replace(day=1) for (day,) in conn.execute(
            "select load_date from audit.publish_log where load_date < %s", [before.replace(day=1)]).fetchall()})
    months = sorted(set(months))
    compacted = {m for m in months if all(_exists(conn, spec.month_partition(m)) for spec in FACTS)}
    lake_dates = _lake_dates(set(months) - compacted) if set(months) - compacted else set()
    return [_check(conn, month, before, lake_dates) for month in months]


def _fill(conn: psycopg.Connection, spec: FactSpec, month: dt.date) -> int:
    """The month's monthly table, filled in (load_date, key) order and indexed (not attached yet); its rows."""
    first, following = month_bounds(month)
    name = spec.month_partition(month)
    create_stage(conn, spec, first, sql.Identifier(SCHEMA, name), until=following)
    columns = sql.SQL(", ").join(sql.Identifier(c) for (c,) in conn.execute(
        "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped"
        " order by attnum", [f"{SCHEMA}.{spec.parent}"]).fetchall())
    rows = conn.execute(sql.SQL(
        "insert into {month} ({cols}) select {cols} from {parent} where load_date >= %s and load_date < %s"
        " order by load_date, {key}").format(month=sql.Identifier(SCHEMA, name), cols=columns,
                                             parent=sql.Identifier(SCHEMA, spec.parent), key=sql.Identifier(spec.key)),
        [first, following]).rowcount
    expected = conn.execute("select coalesce(sum(row_count), 0) from warehouse.fact_partitions where fact_table = %s"
                            " and load_date >= %s and load_date < %s", [spec.parent, first, following]).fetchone()[0]
    if rows != expected:
        raise CompactionFailed(f"{spec.parent} of {month:%Y-%m}: its daily partitions hold {rows} rows,"
                               f" warehouse.fact_partitions says {expected}; republish the month's dates")
    build_indexes(conn, spec, first, name)
    # one more than a daily partition needs: the month is filled in load_date order, so a BRIN summary
    # finds a load-date range (a BI filter, a republish's delete) without reading the whole month
    conn.execute(sql.SQL("create index {} on {} using brin (load_date)").format(
        sql.Identifier(f"{name}_load_date_idx"), sql.Identifier(SCHEMA, name)))
    conn.execute(sql.SQL("analyze {}").format(sql.Identifier(SCHEMA, name)))
    return rows


def _swap(conn: psycopg.Connection, month: dt.date, dates: list[dt.date]) -> None:
    """Detach and drop the month's daily partitions, attach the monthly ones (the caller bounds the lock waits)."""
    first, following = month_bounds(month)
    # as publish's swap: readers wait for the catalog change and the commit, then plan again
    conn.execute(sql.SQL("lock table {} in access exclusive mode").format(
        sql.SQL(", ").join(sql.Identifier(SCHEMA, spec.parent) for spec in FACTS)))
    for spec in FACTS:
        parent, name = sql.Identifier(SCHEMA, spec.parent), spec.month_partition(month)
        for day in dates:
            daily = sql.Identifier(SCHEMA, spec.partition(day))
            conn.execute(sql.SQL("alter table {} detach partition {}").format(parent, daily))
            conn.execute(sql.SQL("drop table {}").format(daily))
        conn.execute(sql.SQL("alter table {} attach partition {} for values from ({}) to ({})").format(
            parent, sql.Identifier(SCHEMA, name), sql.Literal(first), sql.Literal(following)))
        conn.execute(sql.SQL("comment on table {} is {}").format(sql.Identifier(SCHEMA, name), sql.Literal(
            f"Partition of {SCHEMA}.{spec.parent} for the load dates of {month:%Y-%m} (compacted from daily"
            " partitions): see the parent for grain and columns.")))


class _SwapBlocked(Exception):
    """An attempt's bounded wait for the publish lock or the facts' ACCESS EXCLUSIVE ran out (rolled back)."""


def compact_month(conn: psycopg.Connection, month: dt.date, before: dt.date) -> dict[str, object]:
    """Compact one month (see module doc); CompactionRefused if it cannot be, nothing changed.

    Each attempt is one transaction whose waits for the publish lock and for the swap are bounded by
    [publish] lock_timeout; one that runs out is rolled back whole, so during the backoff before the
    next attempt ([publish] lock_backoff_seconds ..., lock_attempts in all) the compaction holds no
    lock at all: a publish waiting for the publish lock, or to swap in its date, goes first.
    """
    from pipeline.serving import retry as pg_retry
    from pipeline.serving.settings import publish as publish_settings

    settings = publish_settings()
    attempts = max(1, int(settings.lock_attempts))
    began = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            return _attempt(conn, month.replace(day=1), before, began)
        except _SwapBlocked as blocked:
            if attempt >= attempts:
                raise locks.LockWaitTimeout(
                    f"swapping in the compacted {month:%Y-%m}: {blocked} through {attempts} waits of"
                    f" {settings.lock_timeout} ([publish] lock_timeout, lock_attempts); end that session"
                    " (or give its login the BI session timeouts), then run again") from None
            delay = pg_retry.backoff(attempt, settings.lock_backoff_seconds, settings.lock_backoff_max_seconds)
            logger.warning("swapping in the compacted %s: %s; rolled back after %s (holding no lock until then, so"
                           " queued readers and publishes go first), will retry: %s", f"{month:%Y-%m}", blocked,
                           settings.lock_timeout, pg_retry.retry_note(attempt + 1, attempts, delay))
            time.sleep(delay)
    raise AssertionError("unreachable")


def _attempt(conn: psycopg.Connection, month: dt.date, before: dt.date, began: float) -> dict[str, object]:
    """One attempt of compact_month, in one transaction; _SwapBlocked (rolled back) if a bounded wait ran out."""
    from pipeline.serving.settings import publish as publish_settings

    lock_timeout = publish_settings().lock_timeout
    with conn.transaction():
        begin_writing(conn)
        dates = plan(conn, [month], before)[0].dates
        for day in dates:  # in date order, as every pipeline writer takes several
            locks.hold(conn, locks.date_key(day))
        checked = plan(conn, [month], before)[0]  # again, under the locks: a publish may have committed meanwhile
        if checked.state == "refused":
            raise CompactionRefused(checked.reason)
        if checked.state == "compacted":
            return {"month": month, "state": "compacted", "dates": 0}
        if checked.dates != dates:
            raise CompactionFailed(f"{month:%Y-%m}: a date of the month was published while the compaction waited"
                                   " for its locks; run the compaction again")
        rows = {spec.lake_table: _fill(conn, spec, month) for spec in FACTS}
        faults.point("compact.swap", tag=f"{month:%Y-%m}")
        try:  # a publish holding it may be waiting for this transaction's read locks on the facts: do not wait long
            locks.hold(conn, locks.PUBLISH_KEY, timeout=lock_timeout)
        except locks.PipelineLockBusy:
            raise _SwapBlocked(f"the publish lock stayed held by {locks.key_holder(conn, locks.PUBLISH_KEY)}") from None
        # a date of the month the lake did not have at the check may have been published since (its
        # partition would overlap the month's): start again rather than fail on the attach
        first, following = month_bounds(month)
        now = [d for (d,) in conn.execute("select load_date from audit.publish_log where load_date >= %s"
                                          " and load_date < %s order by 1", [first, following]).fetchall()]
        if now != dates:
            raise CompactionFailed(f"{month:%Y-%m}: {len(set(now) - set(dates))} date(s) of the month were published"
                                   " meanwhile; run the compaction again")
        parents = [f"{SCHEMA}.{spec.parent}" for spec in FACTS]
        try:
            with conn.transaction():
                conn.execute("select set_config('lock_timeout', %s, true)", [lock_timeout])
                _swap(conn, month, dates)
        except psycopg.errors.LockNotAvailable:
            raise _SwapBlocked(f"{', '.join(parents)} stayed locked by {locks.holders(conn, parents)}") from None
    seconds = time.monotonic() - began
    logger.info("compacted %s: %d daily partitions per fact into one (%s) in %.1fs", f"{month:%Y-%m}", len(dates),
                ", ".join(f"{t} {n} rows" for t, n in rows.items()), seconds)
    return {"month": month, "state": "done", "dates": len(dates), **rows, "seconds": round(seconds, 3)}


def compact(months: Iterable[dt.date] | None = None, before: dt.date | None = None,
            out: Callable[[str], None] = print) -> dict[str, int]:
    """Compact the months asked (None: every closed month); one line per month to `out`; return the tally."""
    before = before or this_month()
    tally = {"done": 0, "compacted": 0, "refused": 0, "failed": 0}
    with _connect() as conn:
        migrations.ensure_schema(conn)
        plans = plan(conn, months, before)
        if not plans:
            out(f"nothing to compact: no published load date before {before.replace(day=1)}")
        for item in plans:
            label = f"{item.month:%Y-%m}"
            if item.state != "ready":
                tally[item.state] += 1
                said = f"refused: {item.reason}" if item.state == "refused" else item.reason or "already compacted"
                out(f"{label}  {said}")
                continue
            try:
                result = compact_month(conn, item.month, before)
            except CompactionRefused as err:
                tally["refused"] += 1
                out(f"{label}  refused: {err}")
                continue
            except (psycopg.Error, locks.PipelineLockBusy, locks.LockWaitTimeout, CompactionFailed) as err:
                tally["failed"] += 1
                out(f"{label}  failed, rolled back (its daily partitions are unchanged): {first_line(err)}")
                continue
            if result["state"] != "done":
                tally["compacted"] += 1
                out(f"{label}  already compacted (by another run meanwhile)")
                continue
            tally["done"] += 1
            out(f"{label}  compacted {result['dates']} daily partitions per fact into one: {result['fact_orders']}"
                f" order rows, {result['fact_events']} event rows  {result['seconds']:.2f} s")
    return tally


def after_publish() -> dict[str, int] | None:
    """The Publish task's automatic compaction ([compaction] closed_months): never fails the publish.

    Months count as closed once a published load date lies [compaction] after_days past their last
    day (and before the current month); a refused month is left for a later publish (a backfill of
    its other dates is still running), a failed one for the next publish or the command.
    """
    from pipeline.serving.settings import compaction as settings

    try:
        configured = settings()
        after_days = int(configured.after_days)
    except ValueError as err:  # the publish has committed: a typo in luigi.cfg (a BadSetting) must not fail it
        logger.warning("automatic compaction of closed months skipped: %s", err)
        return None
    if not configured.closed_months:
        return None
    try:
        with pg.connect() as conn:
            latest = conn.execute("select max(load_date) from audit.publish_log").fetchone()[0]
        if latest is None:
            return None
        before = min((latest - dt.timedelta(days=after_days - 1)).replace(day=1),
                     this_month())
        tally = compact(None, before, out=lambda line: logger.info("automatic compaction: %s", line))
    except (psycopg.Error, pg.EmbeddedServerError, migrations.MigrationError, pg.ServingUnreachable) as err:
        logger.warning("automatic compaction of closed months skipped: %s; the next publish tries again"
                       " (or run python -m pipeline compact-serving)", err)
        return None
    if tally["failed"]:
        logger.warning("automatic compaction: %d month(s) failed and were rolled back; the next publish tries"
                       " again (or run python -m pipeline compact-serving)", tally["failed"])
    return tally


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline compact-serving`."""
    from pipeline.cli import Parser, date_arg

    parser = Parser(prog="python -m pipeline compact-serving", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--month", type=month_arg, help="compact only this month, YYYY-MM (it must be closed)")
    which.add_argument("--before", type=date_arg,
                       help="compact the months whose last day is before this date, YYYY-MM-DD"
                            " (default: the first day of the current month in [model] business_timezone)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    before = args.before or this_month()
    try:
        tally = compact([args.month] if args.month else None, before, out=lambda line: print(line, flush=True))
    except pg.ServingUnreachable as err:  # nothing was done, as rebuild-serving's refusal to start
        print(f"compact-serving: {err}", file=sys.stderr)
        return pg.UNREACHABLE_EXIT
    except (psycopg.Error, migrations.MigrationError) as err:
        print(f"compact-serving: cannot prepare the serving Postgres: {first_line(err)}", file=sys.stderr)
        return 1
    if tally["failed"]:
        return 1
    return 3 if tally["refused"] else 0
