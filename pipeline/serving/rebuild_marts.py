"""Rebuilding the Postgres marts from the served facts: `python -m pipeline rebuild-marts [--lock-timeout 10min]
[--statement-timeout 2h]`.

Each publish keeps the marts by adding the date's change (`pipeline.serving.marts`); when a mart row no
longer adds up to the facts (changed by hand or by another tool, restored apart from them), the next
publish that touches it would leave a negative count and fails instead (`MartsInconsistent`). This command
is its fix: `marts.rebuild` (every mart recomputed from the current facts and the published dates) in
ONE transaction that first takes the global `publish` lock (`pipeline.serving.locks`), the one a publish
holds while it changes the facts' bookkeeping and the marts:

- a publish running meanwhile is waited for, up to `--lock-timeout` ([publish] pipeline_lock_timeout,
  30min by default; a wait past 3 s is logged, naming the publish's session); past it nothing is changed
  (exit 1). A publish that starts meanwhile (another date's) waits for the rebuild up to its own
  [publish] pipeline_lock_timeout, then fails retryably (PublishLocked);
- a lock on a mart (a `migrate` altering one) is waited for just as long, not [publish] lock_timeout (2 s per
  statement: a publish's bound against BI sessions, which this command never waits for);
- its statements run without a time limit ([postgres] statement_timeout does not apply; --statement-timeout
  sets one for the rebuild's transaction), as it reads every served fact: history makes it long;
- BI readers see the marts as they were until the commit, then the rebuilt ones: never a half state
  (the rows are deleted and inserted in the transaction, no lock a reader waits for is taken).

It prints a line per table (its rows, and how many keys it changed: rows that differed, were missing or
were left over) and a total; to count them it keeps each mart's keys and a hash of each row, not a copy.
Exit codes: 0 rebuilt, 1 failed and rolled back (the lock stayed held, a statement ran past
--statement-timeout, a Postgres error; the marts are as they were: run it again), 2 bad arguments, 3 the
serving Postgres cannot be reached or refuses the login; a setting that cannot be used is exit 35
(`python -m pipeline`).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from pipeline import faults
from pipeline.serving import locks, mart_deltas, marts, migrations, pg
from pipeline.serving.settings import TIME_UNITS, PostgresValue
from pipeline.serving.settings import publish as publish_settings
from pipeline.serving.transaction import begin_writing
from pipeline.transform import marts as models

logger = logging.getLogger(__name__)

COMMAND = "python -m pipeline rebuild-marts"
TABLES = (*models.CONTRIBUTIONS, *models.DERIVED, "complete_days")  # every mart table `marts.rebuild` writes
HASH = sql.Identifier("_rebuild_row_hash")
ROW_HASH = sql.SQL("md5({}::text)::uuid")  # of a whole row (the text `o::text <> n::text` compared)


def _keep_before(conn: psycopg.Connection, table: str) -> sql.Identifier:
    """The mart's keys and a hash of each of its rows as they are, to count what the rebuild changes (a temp table
    dropped at commit: a copy of every mart would take as much temp space as the marts)."""
    before = sql.Identifier(f"_rebuild_before_{table}")
    keys = sql.SQL(", ").join(map(sql.Identifier, mart_deltas.key_of(conn, table)))
    conn.execute(sql.SQL("create temp table {} on commit drop as select {}, {} as {} from {} as t").format(
        before, keys, ROW_HASH.format(sql.Identifier("t")), HASH, sql.Identifier(marts.SCHEMA, table)))
    return before


def _changed(conn: psycopg.Connection, table: str, before: sql.Identifier) -> dict[str, int]:
    """Keys whose row differs now (`replaced`), is new (`added`) or is gone (`removed`)."""
    keys = mart_deltas.key_of(conn, table)
    first = sql.Identifier(keys[0])
    replaced, added, removed = conn.execute(sql.SQL(
        """select count(*) filter (where o.{first} is not null and n.{first} is not null and o.{hash} <> {now}),
                  count(*) filter (where o.{first} is null), count(*) filter (where n.{first} is null)
           from {before} as o full join {target} as n using ({keys})""").format(
        first=first, hash=HASH, now=ROW_HASH.format(sql.Identifier("n")), before=before,
        target=sql.Identifier(marts.SCHEMA, table),
        keys=sql.SQL(", ").join(map(sql.Identifier, keys)))).fetchone()
    return {"replaced": replaced, "added": added, "removed": removed}


def rebuild_marts(lock_timeout: str | None = None, statement_timeout: str = "0") -> dict[str, dict[str, int]]:
    """Rebuild every mart from the served facts in one transaction under the publish lock; per table its rows
    and changed keys. Raises locks.PipelineLockBusy (nothing changed) when the lock stays held past
    `lock_timeout` (default [publish] pipeline_lock_timeout), pg.ServingUnreachable when Postgres cannot be reached.
    Every other lock (a mart a `migrate` holds) is waited for as long; every statement may take `statement_timeout`
    (Postgres's time value, "0": no limit) instead of [postgres] statement_timeout.
    """
    waits = lock_timeout or publish_settings().pipeline_lock_timeout
    with pg.connect_or_refuse(autocommit=True) as conn:
        migrations.ensure_schema(conn)
        with conn.transaction():
            begin_writing(conn)
            # SET LOCAL: the wait for the publish lock is bounded by its timeout alone
            conn.execute("select set_config('statement_timeout', '0', true)")
            locks.hold(conn, locks.PUBLISH_KEY, timeout=lock_timeout)  # no publish changes facts or marts meanwhile
            conn.execute("select set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                         [waits, statement_timeout])
            before = {table: _keep_before(conn, table) for table in TABLES}
            rows = marts.rebuild(conn)
            faults.point("marts.rebuild")
            result = {table: {"rows": rows[table], **_changed(conn, table, before[table])} for table in TABLES}
    return result


def report(result: dict[str, dict[str, int]], seconds: float, dates: int, out: Callable[[str], None]) -> None:
    """A line per mart, then the total."""
    width = max(len(table) for table in result)
    digits = max(len(str(counts["rows"])) for counts in result.values())
    for table, counts in result.items():
        rows = f"{counts['rows']:>{digits}} {'row ' if counts['rows'] == 1 else 'rows'}"  # "changed" stays aligned
        out(f"{marts.SCHEMA}.{table:<{width}}  {rows}  changed: {counts['replaced']} replaced,"
            f" {counts['added']} added, {counts['removed']} removed")
    changed = sum(c["replaced"] + c["added"] + c["removed"] for c in result.values())
    out(f"rebuilt {len(result)} mart tables from the served facts of {dates} published load date(s) in one transaction"
        f" under the publish lock: {changed} row(s) changed, {seconds:.2f} s")


def _duration(text: str) -> str:
    """argparse type: a Postgres time value (30s, 10min), as [publish] pipeline_lock_timeout takes it."""
    try:
        return PostgresValue(TIME_UNITS).parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: {err}") from None


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline rebuild-marts`."""
    from pipeline.cli import Parser, first_line

    parser = Parser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock-timeout", type=_duration, metavar="DURATION",
                        help="how long to wait for a publish holding the publish lock, e.g. 30s, 10min (0: no limit;"
                             " default: [publish] pipeline_lock_timeout); a lock on a mart is waited for as long")
    parser.add_argument("--statement-timeout", type=_duration, metavar="DURATION", default="0",
                        help="how long one statement of the rebuild may run, e.g. 2h (default 0: no limit, whatever"
                             " [postgres] statement_timeout says)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    try:
        result = rebuild_marts(args.lock_timeout, args.statement_timeout)
    except pg.ServingUnreachable as err:  # nothing was done
        print(f"rebuild-marts: {err}", file=sys.stderr)
        return pg.UNREACHABLE_EXIT
    except locks.PipelineLockBusy as err:
        print(f"rebuild-marts: nothing was rebuilt, the marts are as they were: {err}; then run it again",
              file=sys.stderr)
        return 1
    except (psycopg.Error, migrations.MigrationError) as err:
        print(f"rebuild-marts: failed and rolled back, the marts are as they were: {first_line(err)}", file=sys.stderr)
        return 1
    report(result, time.monotonic() - started, result["complete_days"]["rows"], lambda line: print(line, flush=True))
    return 0
