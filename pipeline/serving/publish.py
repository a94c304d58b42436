"""Publishing one load date from the lake into the Postgres serving schema, in one transaction.

`publish(D)` reads the date's lake partitions (paths from `pipeline.lake` only) with DuckDB and,
in ONE transaction, so that a BI reader sees the date's old state or its new one, never a mix:

1. the date's pipeline lock (`pipeline.serving.locks`, a row lock a BI login cannot take; taken by
   `pipeline.serving.transaction.date_transaction`): two publishes of one date run one after the
   other, and one told to (`unless_published`) finds the date published by the other and does nothing;
2. each fact partition is streamed (binary COPY, no per-row statements) into a new table and
   indexed there (see `pipeline.serving.facts`), unless a preload (`pipeline.serving.preload`) did
   that, in its own transaction, while the date's quality gate ran: a preload read from the lake
   file's current version is taken instead, and the date's other preloads are dropped;
3. the global publish lock: the bookkeeping below is serialised across dates, so each publish
   sees every earlier one (the heavy step 2 of different dates still runs in parallel);
4. dimensions are merged order-independently (COPY into temp tables, then upserts by the rules of
   `pipeline.transform.merges`; see `pipeline.serving.feeds`; a date published again has the keys it
   named before or names now merged anew from every published date), the date's daily_metrics row upserted,
   its audit rows (bad_records, rejected_lines, reconciliation and the quality gate's dq_failures)
   replaced (the gate run appended to audit.dq_failure_log, which keeps every run's), and its
   daily_metrics.dq_failed_count counted from those dq_failures
   (sql/gate/dq_failed_count.sql, the statement the lake's views run too);
5. the current-version bookkeeping is updated, the marts follow the date's change (`pipeline.serving.marts`:
   only the days, products and customers the date touches) and the completion marker
   `audit.publish_log` is written;
6. the fact tables are locked (ACCESS EXCLUSIVE, for the last milliseconds only), the new
   partitions swapped in, and the transaction commits. This is the one lock a BI session can
   hold up (any SELECT conflicts with it): each wait is bounded by [publish] lock_timeout and
   retried from a savepoint (`locks.retrying`), so BI queries never queue behind it for longer.
   A date of a compacted month (`pipeline.serving.compaction`) has no partition to swap: its rows
   of the monthly partition are replaced after step 5 instead (`facts.replace_in_month`).

Every error names the table, the column and the record, mapped back to the lake row
(`pipeline.serving.publish_errors`), and says that the date was rolled back.

Replacing a published non-empty date with an empty one is refused (EmptyPublishRefused) unless
force=True. Publishing into a database that holds no published date while the lake's run audit records dates
published before (the database was lost and re-created, or replaced) is refused (ServingDatabaseLost), except by
`rebuild-serving` (run ids `rebuild_...`), which republishes them all (`pipeline.serving.lost_database`).
The serving schema is brought up to date once per process before the first publish.
The transaction runs as `ecomm_writer` when allowed (`pipeline.serving.transaction`).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from pipeline import faults, lake
from pipeline.lake import sqlrun
from pipeline.quality.results import OUTCOMES
from pipeline.serving import locks, marts, migrations, pg, serving_target
from pipeline.serving.facts import (
    FACTS,
    DuplicateFactKey,
    LakePartitionInvalid,
    PublishError,
    PublishLocked,
    drop_preloads,
    published_rows,
    replace_in_month,
    supersede,
    swap,
    take_preload,
)
from pipeline.serving.feeds import FEEDS, load_feed, replay_keys, unpublished_snapshots
from pipeline.serving.lake_rows import LakePartitionMissing, fact_path, load_fact, row_count
from pipeline.serving.lost_database import ServingDatabaseLost, refuse_lost_database
from pipeline.serving.publish_errors import Progress
from pipeline.serving.transaction import date_locked, date_transaction, failure

logger = logging.getLogger(__name__)

__all__ = [
    "publish", "publish_audit_only", "is_published", "published_dates", "published_in", "reconciled_dates",
    "reconciled_in", "published_at", "mark_reconciled",
    "PublishError", "PublishLocked", "EmptyPublishRefused", "BuildSuperseded", "LakePartitionMissing",
    "LakePartitionInvalid",
    "DuplicateFactKey", "ServingDatabaseLost",
]

DQ_OUTCOMES = tuple(outcome for outcome in OUTCOMES if outcome != "pass")  # what audit.dq_failures keeps


class EmptyPublishRefused(PublishError):
    """Publishing would replace a published non-empty date with an empty one; pass force=True to allow it."""


class BuildSuperseded(PublishError):
    """The date's lake build changed after the publishing run built it (a restatement began meanwhile): that
    run's data is not the date's any more, and the restatement's run publishes the date."""


# The dq_failures just written, appended to the log as one gate run; `entry` orders them as the gate's
# results are (table, check), so a gate run recorded again has the same keys and adds nothing.
_LOG_GATE_RUN = """
insert into audit.dq_failure_log
    (run_date, checked_at, entry, run_id, check_name, table_name, check_type, outcome, value, message)
select
    dq_failures.run_date,
    coalesce(%(checked_at)s, now()),
    row_number() over (order by dq_failures.table_name nulls last, dq_failures.check_name, dq_failures.outcome,
                       dq_failures.value, dq_failures.message, dq_failures.id),
    %(run_id)s,
    dq_failures.check_name,
    dq_failures.table_name,
    dq_failures.check_type,
    dq_failures.outcome,
    dq_failures.value,
    dq_failures.message
from audit.dq_failures
where dq_failures.run_date = %(d)s
on conflict (run_date, checked_at, entry) do nothing
"""


def _write_dq(conn: psycopg.Connection, day: dt.date, rows: Sequence[Mapping[str, Any]], run_id: str) -> int:
    """Replace the date's dq_failures with `rows` (dicts from the quality gate) and append them to dq_failure_log.

    One place for both, in the caller's transaction, so the log's latest gate run of a date is what
    dq_failures holds. The gate run is the rows' `checked_at` (when the gate started; the transaction's
    time if they carry none): recording the same gate run again writes nothing to the log. The log names
    the rows' `run_id`, the run whose gate produced them (a run killed after its gate leaves them to the
    next run to publish); `run_id`, the recording run, only for rows that carry none.
    """
    conn.execute("delete from audit.dq_failures where run_date = %s", [day])
    fields = ("check_name", "table_name", "check_type", "outcome", "value", "message")
    with conn.cursor() as cur, cur.copy(
        "copy audit.dq_failures (run_date, check_name, table_name, check_type, outcome, value, message) from stdin"
    ) as copy:
        for row in rows:
            if row.get("outcome") not in DQ_OUTCOMES or not row.get("check_name"):
                raise ValueError(f"dq row needs check_name and outcome in {DQ_OUTCOMES}: {dict(row)!r}")
            copy.write_row([day, *(None if row.get(f) is None else str(row.get(f)) for f in fields)])
    checked = {row.get("checked_at") for row in rows}
    if len(checked) > 1:
        raise ValueError(f"dq rows of {day} come from {len(checked)} gate runs (checked_at {sorted(map(str, checked))})")
    checked_at = checked.pop() if checked else None
    if checked_at is not None and checked_at.tzinfo is None:  # the lake's timestamps are naive UTC
        checked_at = checked_at.replace(tzinfo=dt.timezone.utc)
    gate_runs = {row.get("run_id") for row in rows} - {None}
    conn.execute(_LOG_GATE_RUN, {"d": day, "checked_at": checked_at, "run_id": gate_runs.pop() if gate_runs else run_id})
    return len(rows)


def _count_failed_checks(conn: psycopg.Connection, day: dt.date) -> None:
    """daily_metrics.dq_failed_count of the date from its dq_failures (the lake's model leaves it 0)."""
    counted = sqlrun.sql_text("gate", "dq_failed_count")
    conn.execute(sql.SQL(
        "update warehouse.daily_metrics set dq_failed_count = coalesce((select failed.dq_failed_count from (\n{}\n)"
        " as failed where failed.run_date = %(d)s), 0) where run_date = %(d)s").format(sql.SQL(counted)), {"d": day})


def published_in(conn: psycopg.Connection, days: Iterable[dt.date]) -> set[dt.date]:
    """Which of the dates audit.publish_log has: the completion marker, written in the publish transaction."""
    if not pg.has_table(conn, "audit.publish_log"):
        return set()
    return _read_log(conn, "select load_date from audit.publish_log where load_date = any(%s)", [list(days)])


def published_dates_in(conn: psycopg.Connection) -> set[dt.date]:
    """Every date audit.publish_log has."""
    return _read_log(conn, "select load_date from audit.publish_log", [])


def _read_log(conn: psycopg.Connection, query: str, params: list) -> set[dt.date]:
    """The dates `query` reads from audit.publish_log, its lock waits bounded as a publish's ([publish] lock_timeout,
    lock_attempts): a session holding the log locked (a DBA's maintenance, a stuck migration) is named while the run
    waits, then fails it (LockWaitTimeout), instead of a scheduling that hangs without a word."""
    before = conn.execute("select current_setting('lock_timeout')").fetchone()[0]
    dates = locks.retrying(conn, "reading which dates are published",
                           lambda: {row[0] for row in conn.execute(query, params).fetchall()}, ["audit.publish_log"])
    # a released savepoint keeps its SET LOCAL: the rest of a publish's transaction waits as it did before
    conn.execute("select set_config('lock_timeout', %s, true)", [before])
    return dates


def reconciled_in(conn: psycopg.Connection, days: Iterable[dt.date]) -> set[dt.date]:
    """Which of the dates are published and passed their serving reconciliation since (a finished date)."""
    if not pg.has_table(conn, "audit.publish_log"):
        return set()
    return _read_log(conn, "select load_date from audit.publish_log where load_date = any(%s)"
                     " and reconciled_at is not null", [list(days)])


def reconciled_dates(days: Iterable[dt.date]) -> set[dt.date]:
    """Which of the dates are published and reconciled, in one query (raises psycopg.OperationalError if unreachable)."""
    days = list(days)
    if not days:
        return set()
    with pg.connect() as conn:
        return reconciled_in(conn, days)


def published_at(load_date: dt.date | str) -> dt.datetime | None:
    """When the date's current publish committed (None: not published)."""
    day = lake.parse_date(load_date)
    with pg.connect() as conn:
        row = conn.execute("select published_at from audit.publish_log where load_date = %s", [day]).fetchone()
    return row[0] if row else None


def mark_reconciled(load_date: dt.date | str, publish_time: dt.datetime) -> bool:
    """Record that the date's serving reconciliation passed for the publish of `publish_time`.

    Only that publish: a republish that committed during the reconciliation is left unreconciled,
    for its own run (or the next) to check. Returns whether the mark was written.
    """
    day = lake.parse_date(load_date)
    with pg.connect() as conn:
        return conn.execute("update audit.publish_log set reconciled_at = now()"
                            " where load_date = %s and published_at = %s", [day, publish_time]).rowcount == 1


def published_dates(days: Iterable[dt.date]) -> set[dt.date]:
    """Which of the dates are published, in one query (raises psycopg.OperationalError if Postgres is unreachable)."""
    days = list(days)
    if not days:
        return set()
    with pg.connect() as conn:
        return published_in(conn, days)


def is_published(load_date: dt.date | str) -> bool:
    """Whether the date's publish committed (audit.publish_log)."""
    day = lake.parse_date(load_date)
    return day in published_dates([day])


def publish(load_date: dt.date | str, *, force: bool = False,
            audit_rows: Sequence[Mapping[str, Any]] | None = None, run_id: str | None = None,
            runtime: Callable[[], float | None] | None = None, unless_published: bool = False,
            restated_snapshots: Mapping[str, Sequence[dt.date]] | None = None,
            superseded: Callable[[], str | None] | None = None) -> dict[str, Any]:
    """Publish one load date from the lake to Postgres atomically; return what was written.

    `audit_rows`: the quality gate's warn/fail/error outcomes (`gate.dq_failure_rows`), which replace the
    date's dq_failures and are appended to dq_failure_log under `run_id` (None: both are left as they are).
    `runtime`, if given, is called just before the commit; its seconds become the date's
    daily_metrics.runtime_seconds in the same transaction (see `run_audit.date_runtime`). `unless_published`: if the date is published when its lock is granted
    (another run published it meanwhile), drop its leftover preloads and return {"skipped": True, ...}
    without writing. `restated_snapshots`: catalog snapshots landed again for this publish (staging
    table -> snapshot dates, `restate --catalog`): those before the date have their audit rows
    (quarantine, reconciliation) replaced in Postgres as well, as a never-published snapshot's are.
    `superseded`: asked once the date's lock is granted, before anything is read from the lake; a reason means
    the lake's build of the date is not the one the caller built and checked (BuildSuperseded, nothing written).
    """
    day = lake.parse_date(load_date)
    run_id = run_id or uuid.uuid4().hex
    started = time.monotonic()
    summary: dict[str, Any] = {"load_date": day, "run_id": run_id, "skipped": False}
    progress = Progress()
    with sqlrun.connect() as duck, pg.connect() as conn:
        summary["serving_target"] = serving_target.encode(serving_target.of_connection(conn))  # for the run audit
        migrations.ensure_schema(conn)
        try:
            with date_transaction(conn, day):
                republishing = bool(published_in(conn, [day]))
                if unless_published and republishing:
                    summary.update(skipped=True, preloads_dropped=len(drop_preloads(conn, day)))
                    logger.info("%s was published meanwhile by another run: nothing to do", day)
                    return summary
                if superseded is not None and (why := superseded()):  # under the lock a restatement removes under
                    raise BuildSuperseded(why)
                # only now: a restatement that removed the build is BuildSuperseded above, not a missing partition
                fact_paths = {spec: fact_path(spec.lake_table, day) for spec in FACTS}
                counts = {spec: row_count(duck, path) for spec, path in fact_paths.items()}
                for spec in FACTS:
                    before = published_rows(conn, spec, day)
                    if before and not counts[spec] and not force:
                        raise EmptyPublishRefused(
                            f"{day} has {before} {spec.parent} rows published but the lake partition is empty;"
                            f" rebuild the date, or publish with force=True to empty it")
                loaded = {}
                for spec in FACTS:
                    path = fact_paths[spec]
                    loaded[spec] = take_preload(conn, spec, day, path, lake.file_version(path))
                    summary[f"{spec.lake_table}_preloaded"] = loaded[spec] is not None
                    if loaded[spec] is None:
                        loaded[spec] = load_fact(conn, duck, spec, day, path, progress)
                    summary[f"{spec.lake_table}_rows"] = loaded[spec]["rows"]
                summary["preloads_dropped"] = len(drop_preloads(conn, day))
                faults.point("publish.merge")
                locks.hold(conn, locks.PUBLISH_KEY)
                refuse_lost_database(conn, day, run_id)  # under the lock: every earlier publish is seen
                carried = unpublished_snapshots(conn, day, restated_snapshots)  # under the lock: carried once
                summary["snapshots_carried"] = sum(map(len, carried.values()))
                published_days = sorted(published_dates_in(conn)) if republishing else []
                for feed in FEEDS:
                    summary[f"{feed.lake_table}_rows"] = load_feed(conn, duck, feed, day, progress, carried)
                    if republishing and feed.replay is not None:  # what the date's earlier version alone said goes
                        summary[f"{feed.lake_table}_keys_merged_again"] = replay_keys(
                            conn, duck, feed, day, published_days, progress)
                if audit_rows is not None:
                    progress.at("audit.dq_failures")
                    summary["dq_failures_rows"] = _write_dq(conn, day, audit_rows, run_id)
                progress.at("warehouse.daily_metrics")
                _count_failed_checks(conn, day)
                summary.update(marts.backfill_if_needed(conn, progress))  # before supersede: the state before D
                for spec in FACTS:
                    progress.at(f"warehouse.{spec.superseded}")
                    summary[f"{spec.lake_table}_ids_rechecked"] = supersede(conn, spec, day, loaded[spec])
                summary.update(marts.publish_date(conn, duck, day, loaded, progress))
                for spec in FACTS:  # a date of a compacted month: its rows replaced there (after the marts read them)
                    progress.at(f"warehouse.{spec.month_partition(day)}")
                    replace_in_month(conn, spec, day, loaded[spec])
                progress.at("audit.publish_log")
                conn.execute(
                    """insert into audit.publish_log (load_date, published_at, fact_orders_rows, fact_events_rows, run_id)
                       values (%s, now(), %s, %s, %s)
                       on conflict (load_date) do update set published_at = excluded.published_at,
                           fact_orders_rows = excluded.fact_orders_rows, fact_events_rows = excluded.fact_events_rows,
                           run_id = excluded.run_id, reconciled_at = null""",
                    [day, summary["fact_orders_rows"], summary["fact_events_rows"], run_id],
                )
                parents = [f"warehouse.{spec.parent}" for spec in FACTS]
                progress.at(", ".join(parents))

                def swap_in() -> None:
                    # Last, and only for the final catalog changes: a reader that planned its query before
                    # the commit must not run it on a snapshot taken after (it would miss the new partition
                    # while seeing publish_log, dimensions ... of the new state). Readers wait here for
                    # the swap and the commit, then plan again.
                    conn.execute(sql.SQL("lock table {} in access exclusive mode").format(
                        sql.SQL(", ").join(sql.Identifier("warehouse", spec.parent) for spec in FACTS)))
                    summary["replaced"] = any([swap(conn, spec, day, loaded[spec]) for spec in FACTS])
                    if runtime is not None:
                        summary["runtime_seconds"] = runtime()
                        conn.execute("update warehouse.daily_metrics set runtime_seconds = %s where run_date = %s",
                                     [summary["runtime_seconds"], day])

                locks.retrying(conn, f"swapping in the partitions of {day}", swap_in, parents)
                faults.point("publish.commit")
        except (psycopg.Error, locks.PipelineLockBusy, locks.LockWaitTimeout) as err:
            locked = isinstance(err, (locks.PipelineLockBusy, locks.LockWaitTimeout))
            raise (PublishLocked if locked else PublishError)(failure(f"publishing {day}", err, progress, duck)) from err
    summary["seconds"] = round(time.monotonic() - started, 3)
    logger.info("published %s: %s order rows, %s event rows in %.1fs (run %s)", day, summary["fact_orders_rows"],
                summary["fact_events_rows"], summary["seconds"], run_id)
    return summary


def publish_audit_only(load_date: dt.date | str, dq_rows: Sequence[Mapping[str, Any]], run_id: str | None = None) -> int:
    """Record the quality gate's outcomes for a date whose data is not published; return rows written.

    The date's preloads stay (schema preload, unreadable by BI): a rerun that accepts the day as it is
    (a threshold option) publishes them, and a corrected file makes them stale, for its publish to drop.
    Dropping them here made luigid, which still counted the Preload tasks done, start the rerun's
    Publish without them ("Unfulfilled dependencies at run time").
    """
    day = lake.parse_date(load_date)
    with date_locked(day) as conn:
        written = _write_dq(conn, day, dq_rows, run_id or uuid.uuid4().hex)
    logger.info("recorded %s quality outcome(s) for %s (data not published)", written, day)
    return written
