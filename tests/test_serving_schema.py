"""Serving-schema migrations on a real Postgres: order, idempotence, locking, checksums, comments."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from pipeline.serving import migrations
from pipeline.tasks import runbook
from tests.support.serving import uncommented

ALL_FILES = [m.path.name for m in migrations.migrations()]


def test_migrations_are_numbered_files_in_order() -> None:
    versions = [m.version for m in migrations.migrations()]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert any("roles" in m.name for m in migrations.migrations()), "roles have their own migration"


def test_apply_is_recorded_and_idempotent(fresh_db) -> None:
    with fresh_db.connect() as conn:
        assert migrations.apply_schema(conn) == ALL_FILES
        assert migrations.apply_schema(conn) == []
        recorded = conn.execute("select version, name, checksum from audit.schema_migrations order by version").fetchall()
    assert [(v, n) for v, n, _ in recorded] == [(m.version, m.name) for m in migrations.migrations()]
    assert [c for _, _, c in recorded] == [m.checksum for m in migrations.migrations()]


def test_refuses_a_connection_inside_a_transaction(fresh_db) -> None:
    with fresh_db.connect() as conn:
        conn.execute("select 1")
        with pytest.raises(migrations.MigrationError, match="outside any transaction"):
            migrations.apply_schema(conn)


def _copy_sql(tmp_path: Path, upto: int | None = None) -> Path:
    target = tmp_path / "serving"
    target.mkdir()
    for migration in migrations.migrations():
        if upto is None or migration.version <= upto:
            shutil.copy(migration.path, target / migration.path.name)
    return target


def test_a_later_migration_adds_a_column_without_losing_data(fresh_db, tmp_path: Path) -> None:
    sql_dir = _copy_sql(tmp_path)
    with fresh_db.connect() as conn:
        migrations.apply_schema(conn, sql_dir)
        conn.execute("insert into warehouse.dim_user (user_id, city, country) values ('USER_1', 'Oslo', 'NO')")
        conn.execute("insert into warehouse.daily_metrics (run_date, orders_count) values ('2025-12-14', 42)")
        conn.commit()
        (sql_dir / "900_user_segment.sql").write_text(
            "alter table warehouse.dim_user add column if not exists segment text not null default 'unknown';\n"
            "comment on column warehouse.dim_user.segment is 'Marketing segment.';\n"
        )
        assert migrations.apply_schema(conn, sql_dir) == ["900_user_segment.sql"]
        assert conn.execute("select user_id, city, segment from warehouse.dim_user").fetchall() == [
            ("USER_1", "Oslo", "unknown")]
        assert conn.execute("select orders_count from warehouse.daily_metrics").fetchone() == (42,)
        conn.rollback()
        assert migrations.apply_schema(conn, sql_dir) == []


def test_an_edited_applied_migration_is_refused(fresh_db, tmp_path: Path) -> None:
    sql_dir = _copy_sql(tmp_path)
    with fresh_db.connect() as conn:
        migrations.apply_schema(conn, sql_dir)
        first = sorted(sql_dir.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited after it was applied\n")
        with pytest.raises(migrations.MigrationChanged, match=first.name):
            migrations.apply_schema(conn, sql_dir)


def test_line_endings_do_not_count_as_an_edit(fresh_db, tmp_path: Path) -> None:
    sql_dir = _copy_sql(tmp_path)
    with fresh_db.connect() as conn:
        migrations.apply_schema(conn, sql_dir)
        first = sorted(sql_dir.glob("*.sql"))[0]
        first.write_bytes(first.read_bytes().replace(b"\n", b"\r\n"))
        assert migrations.apply_schema(conn, sql_dir) == []


def test_misnamed_or_duplicate_versions_are_refused(tmp_path: Path) -> None:
    sql_dir = _copy_sql(tmp_path, upto=1)
    (sql_dir / "2_bad.sql").write_text("select 1;")
    with pytest.raises(migrations.MigrationFileInvalid, match="NNN_"):
        migrations.migrations(sql_dir)
    (sql_dir / "2_bad.sql").unlink()
    (sql_dir / "001_again.sql").write_text("select 1;")
    with pytest.raises(migrations.MigrationFileInvalid, match="share version 001"):
        migrations.migrations(sql_dir)


def test_a_failing_migration_is_rolled_back_with_its_record(fresh_db, tmp_path: Path) -> None:
    sql_dir = _copy_sql(tmp_path)
    (sql_dir / "900_broken.sql").write_text(
        "create table warehouse.half_done (x int);\nselect * from no_such_table;\n")
    with fresh_db.connect() as conn:
        with pytest.raises(migrations.MigrationError, match="900_broken.sql") as failed:
            migrations.apply_schema(conn, sql_dir)
        # the migration's own SQL failed: not blamed on the login's rights (the owner's `migrate`)
        assert not isinstance(failed.value, migrations.MigrationNotPermitted)
        assert runbook.remedy_for(failed.value).kind == "migration failed"
        assert conn.execute("select to_regclass('warehouse.half_done')").fetchone() == (None,)
        assert conn.execute("select max(version) from audit.schema_migrations").fetchone() == (
            migrations.migrations()[-1].version,)


def test_concurrent_appliers_serialise(fresh_db) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def apply() -> None:
        try:
            with psycopg.connect(fresh_db.dsn) as conn:
                barrier.wait()
                results.append(migrations.apply_schema(conn))
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=apply) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sorted(name for applied in results for name in applied) == sorted(ALL_FILES)


def test_every_serving_table_and_column_has_a_comment(fresh_db) -> None:
    with fresh_db.connect() as conn:
        migrations.apply_schema(conn)
        assert uncommented(conn) == []
        tables = conn.execute(
            "select obj_description(c.oid, 'pg_class') from pg_class as c join pg_namespace as n"
            " on n.oid = c.relnamespace where n.nspname in ('warehouse', 'audit') and c.relkind in ('r', 'p', 'v')"
        ).fetchall()
    assert all("grain" in text.lower() for (text,) in tables), "every table comment states its grain"


def test_primary_keys_everywhere(fresh_db) -> None:
    with fresh_db.connect() as conn:
        migrations.apply_schema(conn)
        missing = conn.execute(
            """select c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
               where n.nspname in ('warehouse', 'audit') and c.relkind in ('r', 'p')
                 and not exists (select 1 from pg_constraint as k where k.conrelid = c.oid and k.contype = 'p')"""
        ).fetchall()
    assert missing == []


RELEASED = Path(__file__).with_name("released_migrations.txt")


def test_a_released_migration_never_changes_and_a_new_one_is_recorded() -> None:
    """Tests start from fresh databases, where an edited migration applies fine; a deployed database refuses it.
    tests/released_migrations.txt holds each migration as released, so an edit fails here, before a deployment."""
    released = {int(version): (name, checksum) for version, name, checksum in (
        line.split() for line in RELEASED.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#"))}
    files = {m.version: m for m in migrations.migrations()}
    for version, (name, checksum) in released.items():
        assert version in files, f"released migration {version:03d}_{name}.sql is gone: deployed databases hold it; restore it"
        assert (files[version].name, files[version].checksum) == (name, checksum), (
            f"{files[version].path.name} changed since it was released: databases that applied it refuse it"
            " (MigrationChanged); restore it and put the change in a new migration")
    new = [m for version, m in files.items() if version not in released]
    assert not new, "record the new migration(s) in tests/released_migrations.txt: " + "; ".join(
        f"{m.version:03d} {m.name} {m.checksum}" for m in new)
