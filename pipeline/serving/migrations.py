"""The Postgres serving schema: versioned migrations from `sql/serving/NNN_name.sql`, and roles.

`apply_schema(conn)` applies, in file order, every migration not yet recorded in
`audit.schema_migrations`, each together with its record (a savepoint of one transaction, which
commits the migrations that succeeded), free of [postgres] statement_timeout. The pipeline lock
`schema` (`pipeline.serving.locks`, a row lock a BI login cannot take) serialises concurrent appliers
(two pipeline workers starting at once); a migration's own lock waits are bounded and retried
(`locks.retrying`), so a BI session idle in a transaction neither stalls it nor makes BI queries
queue behind it for long. A recorded migration whose file has since changed is refused: migrations
are append-only, so add a new file (e.g. `006_add_column.sql` with `alter table ... add column if not
exists`) instead of editing one.
Roles (ecomm_reader, ecomm_writer, bi_reader) are created by their own migration.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import random
import re
import time
from pathlib import Path

import psycopg
from psycopg import pq

from pipeline import resources
from pipeline.serving import locks

logger = logging.getLogger(__name__)

SERVING_SQL_DIR = resources.SQL_DIR / "serving"
MIGRATION_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
BOOTSTRAP = locks.BOOTSTRAP + """
create schema if not exists audit;
create table if not exists audit.schema_migrations (
    version integer primary key,
    name text not null,
    checksum text not null,
    applied_at timestamptz not null default now()
);
comment on table audit.schema_migrations is
    'Serving-schema migrations applied to this database. Grain: one row per sql/serving/NNN_name.sql file.';
comment on column audit.schema_migrations.version is 'NNN, the file''s number; files are applied in this order.';
comment on column audit.schema_migrations.name is 'The file name without number and extension.';
comment on column audit.schema_migrations.checksum is 'sha256 of the file (line endings normalised) when it was applied.';
comment on column audit.schema_migrations.applied_at is 'When it was applied.';
"""


class MigrationError(RuntimeError):
    """The serving schema could not be brought up to date."""


class MigrationNotPermitted(MigrationError):
    """A migration needs a right the migrating login lacks: a table's ownership, a role's membership."""


class MigrationChanged(MigrationError):
    """An already-applied migration file was edited; add a new migration instead."""


class MigrationFileInvalid(MigrationError):
    """A file in the migrations folder is misnamed or two files share a version number."""


class ServingTableMissing(MigrationError):
    """A table an applied migration created is gone (dropped by hand, a partial restore): named with its repair."""


@dataclasses.dataclass(frozen=True)
class Migration:
    """One `NNN_name.sql` file."""

    version: int
    name: str
    path: Path
    checksum: str

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def _checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def migrations(sql_dir: Path | str = SERVING_SQL_DIR) -> list[Migration]:
    """The migration files of `sql_dir`, in version order."""
    found: dict[int, Migration] = {}
    for path in sorted(Path(sql_dir).glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise MigrationFileInvalid(f"{path}: migration files are named NNN_lower_snake_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationFileInvalid(f"{path} and {found[version].path} share version {version:03d}")
        found[version] = Migration(version, match.group(2), path, _checksum(path))
    return [found[v] for v in sorted(found)]


def applied(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of the migrations recorded in the database."""
    exists = conn.execute("select to_regclass('audit.schema_migrations') is not null").fetchone()[0]
    if not exists:
        return {}
    rows = conn.execute("select version, name, checksum from audit.schema_migrations").fetchall()
    return {version: (name, checksum) for version, name, checksum in rows}


def apply_schema(conn: psycopg.Connection, sql_dir: Path | str = SERVING_SQL_DIR, recreate: bool = False) -> list[str]:
    """Apply the pending migrations of `sql_dir`; return the file names applied (may be empty). A table an applied
    migration created that is gone: ServingTableMissing, or with `recreate` its migration is run again (see
    `_missing_tables`), and `recreated` names it."""
    files = migrations(sql_dir)
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise MigrationError("apply_schema needs a connection outside any transaction (commit or roll back first)")
    was_autocommit = conn.autocommit
    conn.autocommit = True
    try:
        _bootstrap(conn)
        failure: MigrationError | None = None
        with conn.transaction():
            # no [postgres] statement_timeout (SET LOCAL): a migration that rewrites a large table would be cut at the
            # same point on every run; lock waits stay bounded (the schema lock's timeout, [publish] lock_timeout)
            conn.execute("select set_config('statement_timeout', '0', true)")
            locks.hold(conn, locks.SCHEMA_KEY)
            _creator_acts_as_created(conn)
            applied_now, failure = _apply_locked(conn, files)
            if failure is None:
                failure = _missing_tables(conn, files, recreate)
        if failure is not None:
            raise failure
        if applied_now:
            logger.info("serving schema now at %03d (%d migration(s) applied)", files[-1].version, len(applied_now))
        return applied_now
    finally:
        conn.autocommit = was_autocommit


def _creator_acts_as_created(conn: psycopg.Connection) -> None:
    """A login with CREATEROLE but no SUPERUSER (a managed Postgres's admin) gets, on PostgreSQL 16, only ADMIN on the
    roles it creates: 005 could not hand the facts to ecomm_writer ("must be able to SET ROLE"). For this
    transaction, a role it creates is granted to it with SET and INHERIT too (a superuser: no effect). Before 16 a
    creator gets no membership at all: docs/serving.md ("Your own server") has the grant to give it first."""
    if conn.info.server_version >= 160000:
        conn.execute("select set_config('createrole_self_grant', 'set, inherit', true)")


# a migration refused the rights of one of its roles: 16's wording (no SET), then older servers' (not a member)
_ROLE_DENIED = re.compile(r'must be able to SET ROLE "(\w+)"|must be member of role "(\w+)"'
                          r"|permission denied to change default privileges")


def _what_to_do(conn: psycopg.Connection, err: Exception) -> str:
    """The fix for a migration refused the rights of a role it needs (roles another login created, or any role
    before PostgreSQL 16): the grant that lets the migrating login act as it."""
    found = _ROLE_DENIED.search(str(err))
    if not found:
        return ""
    role, user = found.group(1) or found.group(2) or "ecomm_writer", conn.info.user
    grant = f"grant {role} to {user}" + (" with inherit true, set true" if conn.info.server_version >= 160000 else "")
    return (f"; {user} may not act as {role}: as the role's creator or a superuser run `{grant}`, then run the"
            " migrations again (docs/serving.md, your own server)")


def _bootstrap(conn: psycopg.Connection, attempts: int = 10) -> None:
    """Create the migrations record and the lock table if missing (before any lock can be taken).

    Appliers creating them at once collide on Postgres's catalogs (a unique violation, "already
    exists", "tuple concurrently updated"): the loser rolls back, waits a moment and looks again.
    """
    for attempt in range(1, attempts + 1):
        if conn.execute("select to_regclass('audit.schema_migrations') is not null"
                        " and to_regclass('pipeline_lock.locks') is not null").fetchone()[0]:
            return
        try:
            with conn.transaction():
                conn.execute(BOOTSTRAP)
            return
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject, psycopg.errors.DuplicateTable,
                psycopg.errors.DuplicateSchema, psycopg.errors.InternalError) as err:
            if attempt == attempts or (isinstance(err, psycopg.errors.InternalError)
                                       and "concurrently" not in str(err)):
                raise
            logger.debug("serving bootstrap collided with a concurrent applier (%s); looking again", err)
            time.sleep(random.uniform(0.05, 0.2))


def _apply_locked(conn: psycopg.Connection, files: list[Migration]) -> tuple[list[str], MigrationError | None]:
    """Apply the pending files (the caller holds the schema lock); stop at the first that fails."""
    done = applied(conn)
    for migration in files:
        recorded = done.get(migration.version)
        if recorded is not None and recorded[1] != migration.checksum:
            raise MigrationChanged(
                f"{migration.path.name} was applied (as {migration.version:03d}_{recorded[0]}) but has changed"
                " since; restore it and put the change in a new migration file"
            )
        if recorded is not None and recorded[0] != migration.name:
            raise MigrationChanged(
                f"{migration.path.name}: version {migration.version:03d} was applied as {recorded[0]!r};"
                " do not rename applied migrations"
            )
    unknown = sorted(set(done) - {m.version for m in files})
    if unknown:
        logger.warning("database has migrations this code does not know: %s (newer code ran here?)",
                       ", ".join(f"{v:03d}_{done[v][0]}" for v in unknown))
    applied_now = []
    for migration in files:
        if migration.version in done:
            continue
        logger.info("applying serving migration %s", migration.path.name)

        def run(migration: Migration = migration) -> None:
            conn.execute(migration.text())
            conn.execute(
                "insert into audit.schema_migrations (version, name, checksum) values (%s, %s, %s)",
                [migration.version, migration.name, migration.checksum],
            )

        said = functools.partial(_notice, migration.path.name)
        conn.add_notice_handler(said)
        try:
            # the tables a migration alters are read by BI: bounded lock waits, retried
            locks.retrying(conn, f"migration {migration.path.name}", run, _relations(conn, migration.text()))
        except (psycopg.Error, locks.LockWaitTimeout) as err:
            first, *rest = f"{migration.path}: {err}".strip().split("\n", 1)
            kind = (MigrationNotPermitted if isinstance(err, psycopg.errors.InsufficientPrivilege)
                    or _ROLE_DENIED.search(str(err)) else MigrationError)
            failure = kind("\n".join([first + _what_to_do(conn, err), *rest]))
            failure.__cause__ = err  # a full disk or a lock BI held: the runbook's entry for it (runbook.remedy_for)
            return applied_now, failure
        finally:
            conn.remove_notice_handler(said)
        applied_now.append(migration.path.name)
    return applied_now, None


# what a migration's text creates and drops (comments left out): its tables, stated once in the migrations
_CREATES = re.compile(r"\bcreate table if not exists ([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\b")
_DROPS = re.compile(r"\bdrop table (?:if exists )?([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\b")
recreated: list[str] = []  # the tables the last apply_schema(recreate=True) recreated, for `migrate` to say


def _code(migration: Migration) -> str:
    return "\n".join(line.split("--", 1)[0] for line in migration.text().lower().splitlines())


def tables_created(files: list[Migration]) -> dict[str, Migration]:
    """table (schema.name) -> the migration that creates it, for every table the migrations leave in place."""
    made: dict[str, Migration] = {}
    for migration in files:
        code = _code(migration)
        made.update({table: migration for table in _CREATES.findall(code)})
        for table in _DROPS.findall(code):
            made.pop(table, None)
    return made


def _missing_tables(conn: psycopg.Connection, files: list[Migration], recreate: bool) -> MigrationError | None:
    """ServingTableMissing naming the tables the (applied) migrations created that are gone and how to repair them.
    With `recreate`, a gone table's creating migration is run again (its statements are idempotent, `if not exists`:
    only what is gone is made, empty) when no later migration changes the table (else it would miss that change)."""
    made = tables_created(files)
    # the catalogs, which every role may read (to_regclass raises for a schema the login may not use)
    gone = [t for (t,) in conn.execute(
        "select t from unnest(%s::text[]) as t where not exists (select from pg_class as c join pg_namespace as n"
        " on n.oid = c.relnamespace where n.nspname || '.' || c.relname = t) order by t", [sorted(made)]).fetchall()]
    recreated.clear()
    if not gone:
        return None
    later = {t: [m.path.name for m in files if m.version > made[t].version and re.search(rf"\b{re.escape(t)}\b",
                                                                                             _code(m))] for t in gone}
    marts_only = all(t.startswith("marts.") for t in gone)  # a warehouse table's rows no command refills
    if recreate and marts_only and not any(later.values()):
        for table in gone:
            own = own_statements(made[table].text(), table)
            logger.info("recreating %s from %s", table, made[table].path.name)
            locks.retrying(conn, f"recreating {table}", lambda sql=own: conn.execute(sql), _relations(conn, own))
        recreated.extend(gone)
        return None
    said = "; ".join(f"{t} (created by {made[t].path.name}" + (f", changed by {', '.join(later[t])})" if later[t]
                                                                else ")") for t in gone)
    if any(later.values()) or not marts_only:
        why = ("a later migration changed it, so it cannot be recreated from its first migration" if any(
            later.values()) else "its rows are the warehouse's own (no command refills them)")
        todo = f"{why}: rebuild-serving into a new database (docs/operations.md#a-serving-table-dropped-by-hand)"
    else:
        todo = ("`python -m pipeline migrate --recreate-missing` recreates it empty, then `python -m pipeline"
                " rebuild-marts` refills the marts from the served facts")
    return ServingTableMissing(f"serving table(s) missing though their migration is applied (dropped by hand?): {said};"
                               f" {todo}")


# a migration's statements: a quoted text ('...', '' inside), a dollar-quoted body ($$...$$), a comment, or a `;`
_TOKENS = re.compile(r"'(?:[^']|'')*'|\$\$.*?\$\$|--[^\n]*|;", re.S)


def own_statements(text: str, table: str) -> str:
    """The statements of a migration's `text` that make `table` and describe it (its create, comments, indexes,
    alters, grants), not the migration's other objects: run again alone, they recreate the table and change nothing
    a later migration changed."""
    statements, start = [], 0
    for token in _TOKENS.finditer(text):
        if token.group() == ";":
            statements.append(text[start:token.end()])
            start = token.end()
    name = re.escape(table)
    own = re.compile(rf"^(create table if not exists {name}\b|comment on (table|column) {name}\b|create (unique )?index"
                     rf"\b[^;]*\bon {name}\b|alter table {name}\b|grant\b[^;]*\bon (table )?{name}\b)")
    code = [(statement, re.sub(r"--[^\n]*", "", statement).strip().lower()) for statement in statements]
    return "\n".join(statement.strip() for statement, lowered in code if own.match(lowered))


def _notice(name: str, diag: psycopg.errors.Diagnostic) -> None:
    """A migration's own `raise notice` (a step it could not take, e.g. a grant the role may not give) and every
    warning are logged as warnings; Postgres's notices ("already exists, skipping") are debug lines."""
    own = " at RAISE" in (diag.context or "")  # raised by the migration's PL/pgSQL, not by a statement
    level = logging.WARNING if own or diag.severity_nonlocalized == "WARNING" else logging.DEBUG
    logger.log(level, "migration %s: %s", name, diag.message_primary)


# any schema's (a new schema's too), outside comments; those that name no relation are dropped below
_QUALIFIED = re.compile(r"\b([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\b")


def _relations(conn: psycopg.Connection, text: str) -> list[str]:
    """The existing relations a migration's text names (schema.name), for lock messages. Looked up in the catalogs,
    which every role may read (to_regclass raises for a schema the role may not use: an extension's, say)."""
    code = "\n".join(line.split("--", 1)[0] for line in text.lower().splitlines())
    names = sorted(set(_QUALIFIED.findall(code)))
    if not names:
        return []
    found = conn.execute("select n.nspname || '.' || c.relname from pg_class as c"
                         " join pg_namespace as n on n.oid = c.relnamespace"
                         " where n.nspname || '.' || c.relname = any(%s)"
                         " and n.nspname not in ('pg_catalog', 'information_schema') order by 1", [names]).fetchall()
    return [n for (n,) in found]


_ensured: set[str] = set()


def ensure_schema(conn: psycopg.Connection, sql_dir: Path | str = SERVING_SQL_DIR) -> None:
    """apply_schema once per process and database (publish calls this before its first write)."""
    key = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}|{Path(sql_dir).resolve()}"
    if key in _ensured:
        return
    apply_schema(conn, sql_dir)
    _ensured.add(key)


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline migrate`: apply the pending serving migrations, as the connecting role.

    For deployments where the pipeline's own login may not change the schema (docker compose: a
    one-shot service applies them as the database owner, the worker publishes as a member of
    ecomm_writer only). Exit 0 when the schema is current, 1 when a migration failed or a table
    an applied one created is gone (`--recreate-missing` recreates it), 3 when Postgres cannot be reached.
    """
    import sys

    from pipeline import cli
    from pipeline.serving import pg

    parser = cli.Parser(prog="python -m pipeline migrate", description=main.__doc__.split("\n\n")[0])
    parser.add_argument("--recreate-missing", action="store_true",
                        help="recreate, empty, a table an applied migration created that is gone (dropped by hand)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        with pg.connect_or_refuse() as conn:
            done = apply_schema(conn, recreate=args.recreate_missing)
    except pg.ServingUnreachable as err:
        print(err, file=sys.stderr)
        return pg.UNREACHABLE_EXIT
    except MigrationError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    latest = migrations()[-1]
    print(f"serving schema at {latest.version:03d}_{latest.name}: {len(done)} migration(s) applied now")
    if recreated:
        print(f"recreated, empty: {', '.join(recreated)}; refill: `python -m pipeline rebuild-marts` for marts"
              " (docs/operations.md#a-serving-table-dropped-by-hand)")
    return 0
