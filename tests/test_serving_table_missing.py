"""A serving table dropped by hand: the next run, `migrate` and the publish name it and its repair; `migrate
--recreate-missing` recreates it from the migration that created it, `rebuild-marts` refills it, and the serving
tables then equal a clean rebuild's from the same lake."""
from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from psycopg import sql

from pipeline.serving import migrations
from pipeline.serving.rebuild_marts import TABLES
from tests.support.ops import Ops

D1, D2, D3 = (dt.date(2025, 12, 8) + dt.timedelta(days=i) for i in range(3))


def _marts(dsn: str) -> dict[str, list[tuple]]:
    with psycopg.connect(dsn) as conn:
        return {table: sorted(conn.execute(sql.SQL("select * from {}").format(sql.Identifier("marts", table)))
                              .fetchall(), key=repr) for table in TABLES}


def test_every_table_the_migrations_create_is_found_in_a_fresh_database(fresh_db) -> None:
    made = migrations.tables_created(migrations.migrations())
    assert {"marts.daily_kpis", "audit.dq_failure_log", "warehouse.fact_orders_all"} <= set(made)
    assert made["marts.daily_kpis"].path.name == "012_marts.sql"
    with fresh_db.connect() as conn:
        migrations.apply_schema(conn)
        assert conn.execute("select t from unnest(%s::text[]) as t where to_regclass(t) is null",
                            [sorted(made)]).fetchall() == []


def test_a_publish_that_meets_a_dropped_table_says_which_command_names_its_repair(fresh_db) -> None:
    """A table dropped after the process checked the schema (it checks once): the publish's failure says what to run."""
    from pipeline.serving import publish_errors
    from pipeline.serving.transaction import failure

    with fresh_db.connect() as conn:
        migrations.apply_schema(conn)
        conn.execute("drop table marts.daily_kpis")
        with pytest.raises(psycopg.errors.UndefinedTable) as caught:
            conn.execute("insert into marts.daily_kpis (kpi_date) values (current_date)")
    target = publish_errors.Progress()
    target.at("marts.daily_kpis")
    said = failure(f"publishing {D3}", caught.value, target, None)
    assert said.startswith(f"publishing {D3} failed: marts.daily_kpis")
    assert said.endswith("it was rolled back, Postgres is unchanged; a serving table is gone (dropped by hand?):"
                         " `python -m pipeline migrate` names it and its repair"), said


_SCHEMA = ("select coalesce(c.relname, '') || '.' || d.objsubid::text || ':' || d.description from pg_description as d"
           " left join pg_class as c on c.oid = d.objoid union all select viewname || ':' || definition from pg_views"
           " where schemaname in ('marts', 'warehouse', 'audit') union all select indexname || ':' || indexdef from"
           " pg_indexes where schemaname in ('marts', 'warehouse', 'audit') order by 1")


def test_recreating_a_mart_changes_nothing_else_its_migration_made(fresh_db) -> None:
    """Only the gone table's own statements run again: the views, comments and indexes later migrations changed (of
    012_marts.sql's other objects, 003_facts.sql's order_id comment) stay as they are; a warehouse table, whose rows
    no command refills, is not recreated."""
    with fresh_db.connect() as conn:
        conn.autocommit = True
        migrations.apply_schema(conn)
        before = conn.execute(_SCHEMA).fetchall()
        conn.execute("drop table marts.daily_kpis")
        with pytest.raises(migrations.ServingTableMissing, match="marts.daily_kpis"):
            migrations.apply_schema(conn)
        migrations.apply_schema(conn, recreate=True)
        assert conn.execute(_SCHEMA).fetchall() == before
        conn.execute("drop table warehouse.fact_orders_superseded cascade")
        with pytest.raises(migrations.ServingTableMissing, match="rebuild-serving into a new database"):
            migrations.apply_schema(conn, recreate=True)
        assert conn.execute("select to_regclass('warehouse.fact_orders_superseded')").fetchone() == (None,)


@pytest.mark.slow
def test_a_mart_dropped_by_hand_is_named_recreated_by_migrate_and_refilled(ops: Ops) -> None:
    ops.generate(D1, 3, orders=200, events=1200)
    for day in (D1, D2):
        done = ops.luigi("DailyPipeline", "--date", str(day), "--local-scheduler")
        assert done.returncode == 0, done.stderr[-3000:]
    with psycopg.connect(ops.dsn, autocommit=True) as conn:
        conn.execute("insert into audit.dq_failure_log (run_date, checked_at, entry, run_id, check_name, outcome)"
                     " values (%s, now(), 1, 'by_hand', 'kept', 'warn')", [D1])  # Postgres-only history
        conn.execute("drop table marts.daily_kpis")
    repair = "`python -m pipeline migrate --recreate-missing` recreates it empty"

    failed = ops.luigi("DailyPipeline", "--date", str(D3), "--local-scheduler")
    assert failed.returncode != 0, failed.stdout[-3000:]
    assert "ServingTableMissing: serving table(s) missing" in failed.stderr, failed.stderr[-3000:]
    assert "marts.daily_kpis (created by 012_marts.sql)" in failed.stderr and repair in failed.stderr
    assert "what to do (serving table missing)" in failed.stdout, failed.stdout[-3000:]
    assert ops.query("select count(*) from audit.publish_log where load_date = %s", [D3]) == [(0,)]

    checked = ops.pipeline("migrate")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    (line,) = checked.stderr.strip().splitlines()
    assert line.startswith("ServingTableMissing: serving table(s) missing though their migration is applied"
                           " (dropped by hand?): marts.daily_kpis (created by 012_marts.sql); " + repair), line
    assert "rebuild-marts" in line

    recreated = ops.pipeline("migrate", "--recreate-missing")
    assert recreated.returncode == 0, recreated.stdout + recreated.stderr
    assert "recreated, empty: marts.daily_kpis" in recreated.stdout
    refilled = ops.pipeline("rebuild-marts")
    assert refilled.returncode == 0, refilled.stdout + refilled.stderr
    done = ops.luigi("DailyPipeline", "--date", str(D3), "--local-scheduler")
    assert done.returncode == 0, done.stderr[-3000:]
    assert ops.pipeline("migrate").returncode == 0
    assert ops.query("select count(*) from audit.dq_failure_log where run_id = 'by_hand'") == [(1,)]  # kept
    assert ops.query("select has_table_privilege('bi_reader', 'marts.daily_kpis', 'select')") == [(True,)]

    clean = f"{ops.database}_clean"  # the same lake rebuilt into a new database: the serving tables to compare
    ops.extra_env["ECOMM_PG_DATABASE"] = clean
    rebuilt = ops.pipeline("rebuild-serving", "--into-new-target")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    repaired, expected = _marts(ops.dsn), _marts(ops.server.dsn(clean))
    assert repaired["daily_kpis"] and repaired == expected
