"""A tester's own Postgres through ECOMM_PG_DSN: what its roles, databases and DSNs may hold (real servers)."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from pipeline.quality import serving_reconciliation
from pipeline.serving import migrations, pg, publish
from tests.support.paths import REPO
from tests.support.postgres import PG_ENV
from tests.support.processes import free_port
from tests.support.serving import event, order, write_facts

DAY = dt.date(2025, 12, 14)


def test_a_database_with_a_non_iso_datestyle_and_another_time_zone_publishes_and_reconciles(
        fresh_db, serving_lake) -> None:
    """`alter role/database ... set datestyle = 'SQL, DMY'`: psycopg reads timestamps only in ISO DateStyle, so
    published_at failed after the publish had committed ("can't parse timestamptz with DateStyle 'SQL, DMY'") and
    the date stayed published but not reconciled. Every pipeline connection asks for ISO (and IntervalStyle
    postgres) itself; the reconciliation's Soda (psycopg2) connection reads only counts."""
    with fresh_db.connect(autocommit=True) as conn:
        conn.execute(f"alter database \"{fresh_db.database}\" set datestyle = 'SQL, DMY'")
        conn.execute(f"alter database \"{fresh_db.database}\" set intervalstyle = 'sql_standard'")
        conn.execute(f"alter database \"{fresh_db.database}\" set timezone = 'Asia/Tokyo'")
    with psycopg.connect(fresh_db.dsn) as conn:  # the setting took: a connection of its own sees it
        assert conn.execute("show datestyle").fetchone() == ("SQL, DMY",)
    write_facts(DAY, [order("ORD_1", DAY)], [event("EVT_1", DAY)])
    before = dt.datetime.now(dt.timezone.utc)
    publish.publish(DAY)
    when = publish.published_at(DAY)
    assert when is not None and before - dt.timedelta(minutes=1) < when <= dt.datetime.now(dt.timezone.utc)
    assert serving_reconciliation.reconcile_serving(DAY).passed == 3
    assert publish.mark_reconciled(DAY, when)
    assert publish.reconciled_dates([DAY]) == {DAY}
    with pg.connect() as conn:
        assert conn.execute("select now() - %s < interval '1 hour', interval '1 day 2 hours'",
                            [when]).fetchone() == (True, dt.timedelta(days=1, hours=2))
        assert conn.execute("show timezone").fetchone() == ("Asia/Tokyo",), "the time zone stays the server's"


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _env(**settings: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in PG_ENV}, **settings}


@pytest.mark.parametrize("sep", ["@", "?x@", "/x@"], ids=["at", "question-at", "slash-at"])
@pytest.mark.parametrize("command", [("pipeline.serving.pg", "dsn"), ("pipeline.serving.pg", "dsn", "--bi"),
                                     ("pipeline", "migrate")], ids=["dsn", "dsn-bi", "migrate"])
def test_an_unescaped_at_sign_in_a_uri_password_is_refused_without_showing_any_of_it(command, sep) -> None:
    """libpq reads a URI's password up to the first '@' and the rest as the host: `p@ss:w@127.0.0.1` became
    host=ss port=w@127.0.0.1..., which the error line and `pg dsn` printed, half the password with it. Its
    credentials run to the first '/': a '?' in the password hides nothing, a '/' puts the rest in the database."""
    head, tail = "p" + uuid.uuid4().hex[:6], uuid.uuid4().hex[:6] + "w"  # the password: head<sep>tail:..., made here
    env = _env(ECOMM_PG_DSN=f"postgresql://sp_admin:{head}{sep}{tail}:x@127.0.0.1:{free_port()}/ecomm")
    run = _run(*command, env=env)
    said = run.stdout + run.stderr
    assert run.returncode == 35, said
    assert head not in said and tail not in said and "host=" not in said and "127.0.0.1" not in said, said
    assert len(run.stderr.strip().splitlines()) == 1, said
    assert "percent-encode an '@' in the user or password as %40" in run.stderr, said


@pytest.mark.parametrize("command", [("pipeline.serving.pg", "dsn"), ("pipeline.serving.pg", "dsn", "--bi"),
                                     ("pipeline", "migrate")], ids=["dsn", "dsn-bi", "migrate"])
def test_a_slash_in_a_uri_password_is_named_and_its_encoding_logs_in(fresh_db, dsn_server, monkeypatch,
                                                                    command) -> None:
    """`admin:ab/cd@host`: libpq ends the credentials at the '/' (the rest is the database). The advice was
    "more than one '@' ... as %40" with one '@' in the DSN; it names the '/' and %2F, and %2F logs in."""
    role, head, tail = f"sl_{uuid.uuid4().hex[:8]}", "p" + uuid.uuid4().hex[:6], uuid.uuid4().hex[:6] + "w"
    with fresh_db.connect(autocommit=True) as conn:
        conn.execute(f"create role {role} login superuser")
        conn.execute(f"alter role {role} password '{head}/{tail}'")
    socket = f"?host={dsn_server.socket_dir}"
    run = _run(*command, env=_env(ECOMM_PG_DSN=f"postgresql://{role}:{head}/{tail}@/{fresh_db.database}{socket}"))
    said = run.stdout + run.stderr
    assert run.returncode == 35 and len(run.stderr.strip().splitlines()) == 1, said
    assert head not in said and tail not in said and "'@'" not in said, said
    assert "has a '/' in its user or password" in said and "percent-encode a '/' in the user or password as %2F" in said
    try:
        with dsn_server.password_required(role):
            monkeypatch.setenv("ECOMM_PG_DSN", f"postgresql://{role}:{head}%2F{tail}@/{fresh_db.database}{socket}")
            monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
            with pg.connect() as conn:
                assert conn.execute("select current_user").fetchone() == (role,)
    finally:  # roles are the session server's: no password is left for tests that count them
        with fresh_db.connect(autocommit=True) as conn:
            conn.execute(f"drop role {role}")


def test_a_percent_encoded_at_sign_in_a_password_is_read_as_part_of_it(monkeypatch) -> None:
    head, tail = uuid.uuid4().hex[:6], uuid.uuid4().hex[:6]  # the password: made here, no literal in the repository
    monkeypatch.setenv("ECOMM_PG_DSN", f"postgresql://sp_admin:{head}%40{tail}@db.example:5433/ecomm")
    assert psycopg.conninfo.conninfo_to_dict(pg.dsn())["password"] == f"{head}@{tail}"
    monkeypatch.setenv("ECOMM_PG_DSN", f"host=db.example user=a@b password={head}@{tail}@z")  # key=value: no URI
    assert pg.dsn().startswith("host=db.example")


def test_status_with_a_configured_server_says_whether_that_server_answers(fresh_db, monkeypatch, capsys) -> None:
    """`pg status` with ECOMM_PG_DSN set printed the embedded server's `not running (<data dir>)`: the pipeline
    does not use that one. It says which server the pipeline uses (no password) and whether it takes a connection."""
    secret = uuid.uuid4().hex  # trust auth: the password is not asked for, but must not be printed
    monkeypatch.setenv("ECOMM_PG_DSN", psycopg.conninfo.make_conninfo(fresh_db.dsn, password=secret))
    assert pg.main(["status"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("configured server user=postgres password=*** dbname=" + fresh_db.database), out
    assert "answers (PostgreSQL 16" in out and "not running" not in out and secret not in out, out

    monkeypatch.setenv("ECOMM_PG_DSN", f"postgresql://postgres@127.0.0.1:{free_port()}/ecomm")
    assert pg.main(["status"]) == pg.UNREACHABLE_EXIT
    out, _ = capsys.readouterr()
    assert "(ECOMM_PG_DSN): does not answer: " in out and "Connection refused" in out, out

    monkeypatch.setenv("ECOMM_PG_DSN", fresh_db.dsn.replace(fresh_db.database, "no_such_db"))
    assert pg.main(["status"]) == pg.UNREACHABLE_EXIT
    out, _ = capsys.readouterr()
    assert 'refuses the connection: connection failed: connection to server on socket' in out, out
    assert 'database "no_such_db" does not exist' in out, out


def test_status_with_the_libpq_variables_asks_the_server_they_name(dsn_server, monkeypatch, capsys) -> None:
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGHOST", dsn_server.socket_dir)
    monkeypatch.setenv("PGUSER", "postgres")
    monkeypatch.setenv("PGDATABASE", "postgres")
    assert pg.main(["status"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("configured server (libpq PG* environment): answers (PostgreSQL 16") and \
        f"database postgres as postgres on {dsn_server.socket_dir}:" in out, out


def test_psql_bi_does_not_hand_the_pipeline_login_s_password_to_bi_reader(fresh_db) -> None:
    """`pg psql --bi` passed PGPASSWORD (the pipeline login's) on to psql, whose libpq sent it for bi_reader:
    "password authentication failed for user bi_reader". psql's own environment (read by a shell it starts)
    holds no PGPASSWORD for --bi, so libpq uses ~/.pgpass or psql asks; without --bi it keeps it."""
    with pg.connect(fresh_db.dsn) as conn:  # the bi_reader login exists once the serving schema does
        migrations.ensure_schema(conn)
    word = uuid.uuid4().hex  # the pipeline login's password, made here
    env = _env(ECOMM_PG_DSN=fresh_db.dsn, PGPASSWORD=word)
    show = ("-Atc", "select current_user", "-c", r"\! tr '\0' '\n' < /proc/$PPID/environ")
    seen = _run("pipeline.serving.pg", "psql", "--bi", *show, env=env)
    assert seen.returncode == 0, seen.stderr
    user, environment = seen.stdout.split("\n", 1)
    assert user == "bi_reader" and "PGPASSWORD" not in environment and word not in environment, seen.stdout
    seen = _run("pipeline.serving.pg", "psql", *show, env=env)  # the pipeline's own login keeps it
    assert seen.returncode == 0 and f"PGPASSWORD={word}" in seen.stdout.splitlines(), seen.stderr


def test_the_bi_environment_never_carries_a_password(monkeypatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "pipeline-login")
    assert "PGPASSWORD" not in pg._without_password("postgresql://bi_reader@db.example/ecomm", as_bi=True)[1]
    target, env = pg._without_password("host=db.example user=bi_reader password=x", as_bi=True)
    assert "password" not in target and "PGPASSWORD" not in env
    assert pg._without_password("host=db.example user=etl password=x")[1]["PGPASSWORD"] == "x"


@pytest.mark.parametrize("server", ["refuses", "no grants", "down"])
def test_the_summary_says_whether_postgres_refused_or_did_not_answer(fresh_db, serving_lake, tmp_path, server) -> None:
    """A Postgres that answered and refused (missing database, wrong password) or whose login may not read the
    publish log made the summary say `publish state unknown (Postgres not reachable)`, sending the reader to
    start a server that runs."""
    if server == "no grants":
        with pg.connect(fresh_db.dsn) as conn:
            migrations.ensure_schema(conn)
            conn.execute("create role summary_reader login")
    dsn = {"refuses": fresh_db.dsn.replace(fresh_db.database, "no_such_db"),
           "no grants": fresh_db.as_user("summary_reader"),
           "down": f"postgresql://postgres@127.0.0.1:{free_port()}/ecomm"}[server]
    env = _env(ECOMM_PG_DSN=dsn, ECOMM_LAKE_DIR=str(serving_lake), ECOMM_DATA_DIR=str(tmp_path / "data"))
    run = _run("pipeline", "summary", "--date", str(DAY), env=env)
    assert run.returncode == 1, run.stdout + run.stderr  # not every date published, as documented
    said = {"refuses": "publish state unknown (Postgres refused the login or a connection setting)",
            "no grants": "publish state unknown (Postgres: permission denied for schema audit)",
            "down": "publish state unknown (Postgres not reachable)"}[server]
    row = [line for line in run.stdout.splitlines() if line.startswith(str(DAY))]
    assert len(row) == 1 and row[0].endswith(said), run.stdout


def test_a_service_keeps_its_own_options_and_still_reads_dates(fresh_db, tmp_path, monkeypatch) -> None:
    """An options parameter replaces a pg_service.conf service's own `options` (its search_path, say): for a service
    the session settings are set in SQL instead, the service's options kept and dates still read in ISO."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(fresh_db.dsn)
    (tmp_path / "pg_service.conf").write_text(
        f"[ecomm]\nhost={info['host']}\ndbname={info['dbname']}\nuser={info['user']}\noptions=-c search_path=marts\n")
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "pg_service.conf"))
    monkeypatch.setenv("ECOMM_PG_DSN", "service=ecomm")
    with fresh_db.connect(autocommit=True) as su:
        su.execute(f"alter database \"{fresh_db.database}\" set datestyle = 'SQL, DMY'")
    with pg.connect() as conn:
        assert conn.execute("show search_path").fetchone() == ("marts",)
        assert conn.execute("select timestamptz '2025-12-15 10:00:00+00'").fetchone()[0].year == 2025


def test_a_service_given_by_pgservice_gets_the_session_settings_and_keeps_them(fresh_db, tmp_path, monkeypatch,
                                                                             luigi_settings) -> None:
    """The service path sets the settings in SQL and commits them: a rollback must not take them back."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(fresh_db.dsn)
    (tmp_path / "pg_service.conf").write_text(f"[ecomm]\nhost={info['host']}\ndbname={info['dbname']}\n"
                                              f"user={info['user']}\n")
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "pg_service.conf"))
    monkeypatch.setenv("PGSERVICE", "ecomm")
    luigi_settings("postgres", statement_timeout="45s")
    with pg.connect() as conn:
        conn.execute("select 1")
        conn.rollback()
        assert conn.execute("show statement_timeout").fetchone() == ("45s",)
        assert conn.execute("show DateStyle").fetchone()[0].startswith("ISO")


@pytest.fixture
def password_login(fresh_db, dsn_server):
    """A login whose password the server asks for (the session's server trusts every other login): its name and
    password, both made here."""
    role, word = f"pw_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with fresh_db.connect(autocommit=True) as conn:
        conn.execute(f"create role {role} login superuser")
        conn.execute(f"alter role {role} password '{word}'")
    try:
        with dsn_server.password_required(role):
            yield role, word
    finally:  # roles are the session server's (this one may own the test's schema): a test that counts the
        with fresh_db.connect(autocommit=True) as conn:  # roles with a password sees none of these
            conn.execute(f"alter role {role} password null")


def test_a_dsn_with_a_passfile_publishes_and_reconciles(fresh_db, serving_lake, password_login, tmp_path,
                                                       monkeypatch) -> None:
    """ECOMM_PG_DSN=...?passfile=F, the password only in F: the publish connected (libpq reads the DSN), but the
    reconciliation's Soda connection was built from host, port, user, password and dbname alone, so libpq had no
    password: `NoChecksParsed: ... parsed to zero checks (... fe_sendauth: no password supplied)`, the date
    `published, NOT RECONCILED`. The checks' connection is made by libpq from the whole DSN, as the publish's."""
    role, word = password_login
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:{role}:{word}\n")
    passfile.chmod(0o600)  # libpq ignores a password file others may read
    monkeypatch.setenv("ECOMM_PG_DSN", f"{fresh_db.as_user(role)}&passfile={passfile}")
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-such-pgpass"))  # never the tester's ~/.pgpass
    write_facts(DAY, [order("ORD_1", DAY)], [event("EVT_1", DAY)])
    publish.publish(DAY)
    assert serving_reconciliation.reconcile_serving(DAY).passed == 3


@pytest.mark.parametrize("server", ["refuses", "down"])
def test_serving_checks_that_cannot_connect_say_so_and_send_no_one_to_the_checks_file(
        fresh_db, password_login, monkeypatch, server) -> None:
    """Soda's failed connection surfaced as `NoChecksParsed: .../reconciliation.yml parsed to zero checks (...)`,
    and the runbook said `fix the file the message names`: the file was fine. It names the serving Postgres,
    libpq's reason and the runbook's Postgres entry."""
    from pipeline.tasks import runbook

    role, _ = password_login
    dsn = {"refuses": fresh_db.as_user(role), "down": f"postgresql://postgres@127.0.0.1:{free_port()}/ecomm"}[server]
    monkeypatch.setenv("ECOMM_PG_DSN", dsn)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    figures = {"fact_orders_rows": 1, "fact_events_rows": 1, "fact_orders_revenue": 1}
    with pytest.raises(serving_reconciliation.ServingCheckError) as raised:
        serving_reconciliation.reconcile_serving(DAY, lake_figures=figures)
    error = raised.value
    said = {"refuses": "refuses the serving checks' connection: ", "down": "cannot reach the serving Postgres"}[server]
    reason = {"refuses": "fe_sendauth: no password supplied", "down": "Connection refused"}[server]
    assert said in str(error) and reason in str(error), str(error)
    kind = {"refuses": "serving checks refused", "down": "Postgres down"}[server]
    explained = runbook.explain("Publish", DAY, error, local_scheduler=True)
    assert f"What to do ({kind}): " in explained and "checks file" not in explained, explained
    assert runbook.remedy_for_text(runbook.reason(error)).kind == kind  # as the run audit records it
