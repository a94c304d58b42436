"""Rebuilding the serving Postgres from the lake: `python -m pipeline rebuild-serving [--from D] [--to D]
[--into-new-target]`.

For disaster recovery and for adopting a new serving database. The serving layer holds nothing the
lake does not but the quality gate's history: every table is the replay, in load-date order, of each
date's publish. audit.dq_failure_log gets each date's gate run the lake holds (its latest), recorded
under its gate's run id (the rebuild's for results older than dq_results.run_id); the gate runs before it are not in the lake and are not made up. So the
rebuild applies the migrations, then, for each load date of the lake:

- its quality gate passed (lake/audit/dq_results): `publish.publish(D)`, the very call the daily
  pipeline's Publish task makes, with the gate's warn/fail rows and the date's runtime from the run
  audit. Whatever the per-date publish writes (facts, dimensions, daily_metrics, audit rows, and any
  table added to it later, such as marts) is rebuilt with it, without a change here;
- its gate blocked it: `publish.publish_audit_only(D)`, as the gate task does (outcomes, no data);
- no gate results, and not built (no daily_metrics partition, the last a build writes): not published by
  the daily pipeline either; reported and skipped;
- no gate results, but built: its results were lost, and whether the pipeline published it cannot be
  told. Left out, named with the command that gates and publishes it against the rebuilt database
  (once the rebuild is done: a rebuild refuses a database the pipeline published to), and the
  command exits 4, so a disaster-recovery script notices.

Before each date, its task executions are copied from the run audit's lake twin into
audit.pipeline_runs (an upsert, so repeating it is harmless).

Restartable: each date's publish is one transaction (a killed run leaves no half date), and its
completion marker audit.publish_log names the run. The rebuild's run ids start with `rebuild_`; a
rerun skips the dates it already published after checking their row counts against the lake.
A target that already serves dates published by anything else, or dates this lake does not hold
(or holds with other row counts), is refused: rebuild into an empty database. An empty target other than the one
the lake's dates were last published to (the run audit's `serving_target`) is refused without `--into-new-target`;
each date rebuilt is recorded in the run audit's lake twin with its target (`record_rebuilt`), so the lost-database
guard and the next rebuild name the target rebuilt into.

Prints one line per date (date, what was done, rows, seconds) and a final line with the throughput
in days per minute. Exit codes: 0 done, 1 a date failed (rerun the same command to resume), 2 bad
arguments, 3 refused to start (lake empty, Postgres unreachable, target not empty, or another target than the
lake's without --into-new-target), 4 done but built dates were left out (their gate results are missing; each
line names the command).

A passed date whose warehouse partition is missing from the lake stops the rebuild (exit 1)
with the command that rebuilds the date's warehouse partitions without publishing it (`BuildWarehouse`);
a run of the daily pipeline would publish it, and the rebuild would then refuse the database.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable

import duckdb
import psycopg
import pyarrow as pa
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pipeline import cli, config, lake
from pipeline.lake import sqlrun
from pipeline.serving import embedded, lost_database, migrations, pg, serving_target
from pipeline.serving.facts import FACTS, PublishError
from pipeline.serving.lost_database import INTO_NEW_TARGET, REBUILD_RUNS
from pipeline.tasks import restatements

logger = logging.getLogger(__name__)

RUN_PREFIX = REBUILD_RUNS  # how a publish (and a target) tells a rebuild from a live run
BUILT_MARK = "daily_metrics"  # the last partition a date's build writes: the date was built
EXIT_LEFT_OUT = 4
_DATE_DIR = re.compile(r"load_date=(\d{4}-\d{2}-\d{2})")


class RebuildRefused(Exception):
    """The rebuild cannot start (lake empty, Postgres unreachable, target not a rebuild of this lake)."""


class PartitionsMissing(PublishError):
    """A passed date's warehouse partition is missing; rebuild the date's partitions, then rerun the rebuild."""


def gate_command(day: dt.date) -> str:
    """The command that gates a built date (and publishes it when it passes) against the configured database."""
    return f"luigi --module pipeline.tasks DailyPipeline --date {day} --local-scheduler"


def missing_partitions(day: dt.date) -> list[str]:
    """The date's warehouse partitions (each a publish reads) that are not in the lake.

    Not the marts: a publish computes a missing mart partition from the date's facts.
    """
    from pipeline.transform import warehouse

    return [table for table in warehouse.TABLES if not lake.exists(lake.partition_file("warehouse", table, day))]


def check_built(day: dt.date) -> None:
    """PartitionsMissing, naming the command that rebuilds them, if a partition of the passed date is gone."""
    if missing := missing_partitions(day):
        raise PartitionsMissing(
            f"{day} passed its quality gate but warehouse/{', warehouse/'.join(missing)} for it"
            f" {'is' if len(missing) == 1 else 'are'} missing from the lake at {config.lake_dir()}: rebuild the"
            f" date's warehouse partitions without publishing it with `luigi --module pipeline.tasks BuildWarehouse"
            f" --date {day} --local-scheduler`, then rerun the same rebuild-serving command to resume (not the"
            f" daily pipeline: it would publish the date, and the rebuild refuses a database the pipeline published to)")


@dataclasses.dataclass
class DatePlan:
    """What the lake says about one load date."""

    day: dt.date
    gate: str  # "passed", "blocked", "missing" (never gated) or "lost" (built, its gate results gone)


def new_run_id() -> str:
    """A rebuild's run id: `rebuild_<UTC yyyymmddThhmmss>_<8 hex>` (how a target tells a rebuild from a live one)."""
    return f"{RUN_PREFIX}{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:8]}"


def _dates_of(layer: str, table: str) -> set[dt.date]:
    found = set()
    for path in lake.table_files(layer, table):
        match = _DATE_DIR.search(path)
        if match:
            found.add(dt.date.fromisoformat(match.group(1)))
    return found


def lake_plan(first: dt.date | None = None, last: dt.date | None = None) -> list[DatePlan]:
    """The lake's load dates in [first, last] (dates with facts or gate results), oldest first."""
    from pipeline.quality import gate

    days = _dates_of("audit", "dq_results") | set().union(*(_dates_of("warehouse", s.lake_table) for s in FACTS))
    plans = []
    for day in sorted(d for d in days if (first is None or d >= first) and (last is None or d <= last)):
        result = gate.load_results(day)
        status = "missing" if result is None or not result.results else "blocked" if result.blocked else "passed"
        if status == "missing" and lake.exists(lake.partition_file("warehouse", BUILT_MARK, day)):
            status = "lost"
        plans.append(DatePlan(day, status))
    return plans


def _lake_counts(duck: duckdb.DuckDBPyConnection, day: dt.date) -> tuple[int, int] | None:
    """(order rows, event rows) of the date's fact partitions, as publish_log counts them; None if one is missing."""
    counts = {}
    for spec in FACTS:
        path = lake.partition_file("warehouse", spec.lake_table, day)
        if not lake.exists(path):
            return None
        counts[spec.lake_table] = duck.execute("select count(*) from read_parquet($p)", {"p": path}).fetchall()[0][0]
    return counts["fact_orders"], counts["fact_events"]


def check_target(conn: psycopg.Connection) -> set[dt.date]:
    """The dates a previous rebuild of this lake already published; RebuildRefused if the target is another's."""
    rows = conn.execute("select load_date, fact_orders_rows, fact_events_rows, run_id from audit.publish_log"
                        " order by load_date").fetchall()
    if not rows:
        return set()
    live = [row for row in rows if not str(row[3] or "").startswith(RUN_PREFIX)]
    if live:
        raise RebuildRefused(
            f"the target database already serves {len(rows)} load date(s) ({rows[0][0]} to {rows[-1][0]}), published"
            f" by the pipeline (run {live[0][3]}), not by a rebuild: rebuild into an empty database"
            f" (point ECOMM_PG_DSN at a new one) or drop this one first")
    with sqlrun.connect() as duck:
        for day, orders, events, _run in rows:
            counts = _lake_counts(duck, day)
            if counts != (orders, events):
                lake_has = "no fact partitions" if counts is None else f"{counts[0]} orders, {counts[1]} events"
                raise RebuildRefused(
                    f"the target database is not a rebuild of this lake: it holds {day} with {orders} orders,"
                    f" {events} events, the lake at {config.lake_dir()} has {lake_has}; rebuild into an empty"
                    f" database or drop this one first")
    return {row[0] for row in rows}


def check_moved(conn: psycopg.Connection) -> None:
    """RebuildRefused if this empty target is not the one the lake's dates were last published to (the run audit's
    record, `serving_target`), naming both in one line: a relative ECOMM_PG_DATA run from another folder, or a DSN
    mistyped, would otherwise be filled without a word. A target that holds dates already is check_target's."""
    serves = pg.has_table(conn, "audit.publish_log") and conn.execute(
        "select exists (select from audit.publish_log)").fetchone()[0]
    conn.rollback()  # read only; the migrations need a connection outside any transaction
    if not serves:
        refuse_moved(serving_target.of_connection(conn))


def check_unmade() -> None:
    """check_moved for an embedded target database not made yet, before a connection makes it: a refused rebuild
    leaves no empty database behind (a mistyped ECOMM_PG_DATABASE)."""
    if not pg.uses_embedded():
        return
    try:
        url = embedded.start(create=False)
        with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
            made = conn.execute("select exists (select from pg_database where datname = %s)",
                                [embedded.database()]).fetchone()[0]
    except (psycopg.OperationalError, embedded.EmbeddedServerError, OSError):
        return  # the connection that follows says why, as a refusal (exit 3)
    if not made:
        refuse_moved(serving_target.current(embedded.database(), "", int(conninfo_to_dict(url)["port"])))


def refuse_moved(here: serving_target.Target) -> None:
    """RebuildRefused if the empty target `here` is not the one the lake's dates were last published to. The
    embedded server's stop command is given only when that one is on another server (stopping this one would stop
    it too)."""
    published_to = serving_target.lake_published().target
    if published_to is None or serving_target.same(published_to, here):
        return
    how = ""
    if here["server"] == "embedded":
        path, given, base = embedded.data_origin()
        relative = ", relative to the current folder" if lost_database.by_current_folder(base) else ""
        other_server = published_to["server"] != "embedded" or published_to.get("data_folder") != here["data_folder"]
        stop = f"; `{lost_database.stop_command(path)}` stops it" if other_server else ""
        how = f" ({given}{relative}{stop})"
    raise RebuildRefused(
        f"the lake at {config.lake_dir()} was last published to {serving_target.describe(published_to)}, but this"
        f" rebuild would fill {serving_target.describe(here)}{how}: to rebuild into this one (the other was lost, or"
        f" is being replaced), rerun with {INTO_NEW_TARGET}; to use that one, set"
        f" `{serving_target.settings(published_to)}`")


def record_rebuilt(day: dt.date, run_id: str, target: str | None) -> None:
    """The run audit's lake record that this rebuild published `day` into `target` (run_audit_files.REBUILT): the
    lost-database guard and the next rebuild then name that target as where the lake's dates went."""
    from pipeline.tasks import run_audit, run_audit_files

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    row = {"run_id": run_id, "load_date": day, "task_id": run_audit_files.REBUILT, "attempt": 1, "status": "done",
           "task_family": run_audit_files.REBUILT, "started_at": now, "ended_at": now, "host": socket.gethostname(),
           "pid": os.getpid(), "in_postgres": True, "serving_target": target}  # lake only: not a task's execution
    lake.write_table(run_audit.twin_path(day, run_id, run_audit_files.REBUILT),
                     pa.Table.from_pylist([row], schema=run_audit.SCHEMA))


def _connect() -> psycopg.Connection:
    """A connection to the serving Postgres, or RebuildRefused naming where it tried."""
    try:
        return pg.connect_or_refuse()
    except pg.ServingUnreachable as err:
        raise RebuildRefused(str(err)) from err


def rebuild(first: dt.date | None = None, last: dt.date | None = None, out: Callable[[str], None] = print,
            into_new_target: bool = False) -> dict[str, int | float]:
    """Rebuild every serving table from the lake (see module doc); `out` gets the progress lines. `into_new_target`:
    into an empty target other than the one the lake's dates were last published to (else RebuildRefused)."""
    from pipeline.quality import gate, serving_reconciliation
    from pipeline.serving import compaction, pipeline_runs, publish
    from pipeline.tasks import run_audit

    plans = lake_plan(first, last)
    if not plans:
        span = f" between {first or 'the first date'} and {last or 'the last date'}" if first or last else ""
        raise RebuildRefused(f"the lake at {config.lake_dir()} has no load dates{span}: nothing to rebuild"
                             f" (is ECOMM_LAKE_DIR right?)")
    if not into_new_target:
        check_unmade()
    with _connect() as conn:
        if not into_new_target:
            check_moved(conn)
        here = serving_target.describe(serving_target.of_connection(conn))
        applied = migrations.apply_schema(conn)
        done = check_target(conn)
    out(f"rebuilding the serving layer from {config.lake_dir()} into {here}: {len(plans)} load date(s),"
        f" {plans[0].day} to {plans[-1].day}; schema up to date ({len(applied)} migration(s) applied);"
        f" {len(done)} date(s) already rebuilt")
    run_id = new_run_id()
    tally = {"published": 0, "verified": 0, "blocked": 0, "not_gated": 0, "left_out": 0}
    started = time.monotonic()
    for plan in plans:
        began = time.monotonic()
        if plan.day in done:
            tally["verified"] += 1
            out(f"{plan.day}  already rebuilt (row counts match the lake)")
            continue
        if plan.gate == "missing":
            tally["not_gated"] += 1
            out(f"{plan.day}  skipped: no quality gate results in the lake, so the pipeline never published it")
            continue
        if plan.gate == "lost":
            tally["left_out"] += 1
            out(f"{plan.day}  NOT REBUILT: built but its gate results are missing (lake/audit/dq_results), so whether"
                f" it was published cannot be told; once this rebuild is done, gate it against this database with"
                f" `{gate_command(plan.day)}` (it publishes the date if it passes)")
            continue
        result = gate.load_results(plan.day)
        rows = gate.dq_failure_rows(result)
        pipeline_runs.record_pipeline_runs(run_audit.finished_rows(plan.day))
        if plan.gate == "blocked":
            publish.publish_audit_only(plan.day, rows, run_id=run_id)
            tally["blocked"] += 1
            restating = (" (a restatement of it is pending: the lake holds only its new, blocked files, so the date"
                         " a database being replaced still served goes; `python -m pipeline summary --date"
                         f" {plan.day}` says what to fix)") if restatements.pending(plan.day) else ""
            out(f"{plan.day}  not published: its quality gate blocked it{restating}; {len(rows)} outcome(s) recorded"
                f"  {time.monotonic() - began:.2f} s")
            continue
        check_built(plan.day)
        summary = publish.publish(plan.day, audit_rows=rows, run_id=run_id,
                                  runtime=lambda day=plan.day: run_audit.date_runtime(day))
        # as the Publish task does: reconciled against the lake, then marked done (audit.publish_log.reconciled_at)
        published_at = publish.published_at(plan.day)
        serving_reconciliation.reconcile_serving(plan.day)
        publish.mark_reconciled(plan.day, published_at)
        compaction.after_publish()  # as the Publish task does ([compaction] closed_months)
        record_rebuilt(plan.day, run_id, summary.get("serving_target"))
        tally["published"] += 1
        written = sum(v for k, v in summary.items() if k.endswith("_rows") and isinstance(v, int))
        out(f"{plan.day}  published {written} rows ({summary['fact_orders_rows']} orders,"
            f" {summary['fact_events_rows']} events)  {time.monotonic() - began:.2f} s")
    seconds = time.monotonic() - started
    per_minute = tally["published"] / (seconds / 60) if seconds > 0 else 0.0
    out(f"rebuilt {len(plans)} load date(s) in {seconds:.1f} s: {tally['published']} published,"
        f" {tally['verified']} already there, {tally['blocked']} blocked by their gate, {tally['not_gated']} not"
        f" gated; {per_minute:.1f} days per minute")
    if tally["left_out"]:
        out(f"NOT COMPLETE: {tally['left_out']} built date(s) left out, their gate results missing from the lake;"
            f" run the command on each one's line above")
    return {**tally, "seconds": round(seconds, 3), "days_per_minute": round(per_minute, 2)}


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline rebuild-serving`."""
    parser = cli.Parser(prog="python -m pipeline rebuild-serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="first", type=cli.date_arg,
                        help="first load date to rebuild, YYYY-MM-DD (default: the lake's first)")
    parser.add_argument("--to", dest="last", type=cli.date_arg,
                        help="last load date to rebuild, YYYY-MM-DD (default: the lake's last)")
    parser.add_argument(INTO_NEW_TARGET, action="store_true",
                        help="rebuild into an empty database other than the one the lake's dates were last published"
                             " to (the run audit records it): the other was lost, or is being replaced")
    args = parser.parse_args(argv)
    first, last = args.first, args.last
    if first and last and first > last:
        parser.error(f"--from {first} is after --to {last}")
    # warnings only: the per-date lines are the progress report
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        tally = rebuild(first, last, out=lambda line: print(line, flush=True), into_new_target=args.into_new_target)
    except RebuildRefused as err:
        print(f"rebuild-serving: {err}", file=sys.stderr)
        return 3
    except PartitionsMissing as err:
        print(f"rebuild-serving: {err}", file=sys.stderr)
        return 1
    except (PublishError, migrations.MigrationError, psycopg.Error) as err:
        print(f"rebuild-serving: {cli.first_line(err)}; rerun the same command to resume after fixing it",
              file=sys.stderr)
        return 1
    if tally["left_out"]:
        print(f"rebuild-serving: {tally['left_out']} built date(s) left out: their gate results are missing from the"
              f" lake (see the NOT REBUILT lines)", file=sys.stderr)
        return EXIT_LEFT_OUT
    return 0
