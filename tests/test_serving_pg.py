"""pipeline.serving.pg: where the pipeline connects, and the embedded server's lifecycle (real servers)."""
from __future__ import annotations

import concurrent.futures
import os
import socket
import subprocess
import sys
import uuid

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from pipeline.serving import embedded, migrations, pg, system_user
from tests.support.paths import REPO
from tests.support.postgres import PG_ENV, EmbeddedServer, embedded_in_temp_dir
from tests.support.processes import free_port


def test_ecomm_pg_dsn_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOMM_PG_DSN", "postgresql://someone@/db?host=/run/x")
    monkeypatch.setenv("PGHOST", "elsewhere")
    assert pg.dsn() == "postgresql://someone@/db?host=/run/x"


@pytest.mark.parametrize("variable", ["PGHOST", "PGDATABASE", "PGSERVICE"])
def test_libpq_variables_mean_an_empty_dsn(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "x")
    assert pg.dsn() == ""


def test_libpq_environment_is_used_as_is(dsn_server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGHOST", dsn_server.socket_dir)
    monkeypatch.setenv("PGUSER", "postgres")
    monkeypatch.setenv("PGDATABASE", "postgres")
    with pg.connect() as conn:
        assert conn.execute("select current_database(), current_user").fetchone() == ("postgres", "postgres")


def test_without_configuration_the_embedded_server_is_used(embedded_server, monkeypatch: pytest.MonkeyPatch) -> None:
    embedded_server.env(monkeypatch, "ecomm")
    url = pg.dsn()
    assert url.startswith("postgresql://postgres@/ecomm?host=")
    assert f"port={embedded_server.port}" in url
    with pg.connect() as conn:
        assert conn.execute("select current_database()").fetchone() == ("ecomm",)
        assert conn.execute("show application_name").fetchone() == (f"ecomm-pipeline pid={os.getpid()}",)


def test_embedded_server_listens_on_loopback_tcp_too(embedded_server) -> None:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{embedded_server.port}/ecomm") as conn:
        assert conn.execute("select inet_server_addr()::text").fetchone() == ("127.0.0.1/32",)


def test_embedded_server_is_reused_not_restarted(embedded_server, monkeypatch: pytest.MonkeyPatch) -> None:
    embedded_server.env(monkeypatch, "ecomm")
    before = pg.embedded_status()
    assert pg.start_embedded() == pg.start_embedded()
    assert pg.embedded_status()["pid"] == before["pid"]


def test_a_missing_database_is_created(embedded_server, monkeypatch: pytest.MonkeyPatch) -> None:
    embedded_server.env(monkeypatch, "made_on_demand")
    with pg.connect() as conn:
        assert conn.execute("select current_database()").fetchone() == ("made_on_demand",)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.serving.pg", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.slow
def test_lifecycle_concurrent_start_persistence_and_cli() -> None:
    """Two processes starting one new server race safely; data persists across stop/start; CLI works."""
    with embedded_in_temp_dir() as server:
        _lifecycle(server)


def _lifecycle(server: EmbeddedServer) -> None:
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV}
    env.update(ECOMM_PG_DATA=str(server.data_dir), ECOMM_PG_PORT=str(server.port))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: _cli("start", env=env), range(2)))
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert runs[0].stdout == runs[1].stdout
    assert sum("embedded Postgres started" in r.stderr for r in runs) == 1, "exactly one process started it"
    try:
        url = runs[0].stdout.strip()
        assert _cli("dsn", env=env).stdout.strip() == url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create table kept (x int)")
            conn.execute("insert into kept values (7)")
        assert _cli("stop", env=env).stdout.strip() == "stopped"
        assert _cli("status", env=env).returncode == 3
        result = _cli("psql", "-Atc", "select x from kept", env=env)  # starts it again on demand
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "7"
    finally:
        _cli("stop", env=env)


def test_cli_usage_error() -> None:
    assert pg.main(["bogus"]) == 2


@pytest.mark.parametrize(("args", "said"), [
    (["dsn", "--BI"], "dsn: error: unrecognized arguments: --BI (dsn takes only --bi)"),
    (["dsn", "bi"], "dsn: error: unrecognized arguments: bi (dsn takes only --bi)"),
    (["dsn", "--bi", "extra"], "dsn: error: unrecognized arguments: extra (dsn takes only --bi)"),
    (["psql", "-c", "select 1", "--bi"], "psql: error: unrecognized arguments: --bi (psql takes --bi first, then"
                                         " psql's own options)"),
    (["stop", "now"], "stop: error: unrecognized arguments: now (stop takes no arguments)"),
], ids=["dsn-BI", "dsn-bi-word", "dsn-extra", "psql-bi-last", "stop-extra"])
def test_a_mistyped_argument_is_refused_not_answered_with_the_superuser_dsn(capsys, args, said) -> None:
    assert pg.main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == f"python -m pipeline.serving.pg {said}"


def test_dsn_prints_where_the_pipeline_connects_without_the_password(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "pw" + uuid.uuid4().hex[:8]  # assembled: the repository's secret scan must not find a literal
    monkeypatch.setenv("ECOMM_PG_DSN", f"postgresql://etl:{secret}@db.example.com:5433/ecomm?sslmode=require")
    assert pg.main(["dsn"]) == 0
    out, err = capsys.readouterr()
    assert secret not in out + err
    assert conninfo_to_dict(out.strip()) == {"user": "etl", "host": "db.example.com", "port": "5433",
                                             "dbname": "ecomm", "sslmode": "require"}
    assert "password is not printed: it stays in ECOMM_PG_DSN" in err
    monkeypatch.setenv("ECOMM_PG_DSN", f"host=db.example dbname=ecomm user=etl sslkey=/etc/k.pem sslpassword={secret}")
    assert pg.main(["dsn"]) == 0
    out, err = capsys.readouterr()
    assert secret not in out + err and conninfo_to_dict(out.strip())["sslkey"] == "/etc/k.pem"
    assert secret not in pg.bi_dsn() and "k.pem" not in pg.bi_dsn(), "the pipeline's client key is not BI's"


def test_a_port_a_stopped_server_left_in_time_wait_counts_as_free() -> None:
    """A BI tool connected when the server stopped leaves TIME_WAIT on its port for a minute; Postgres binds
    with SO_REUSEADDR and can listen again at once, so `pg start` must not refuse the port as in use."""
    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    client = socket.create_connection(("127.0.0.1", port))
    server_side, _ = listener.accept()
    server_side.close()  # the side that closes first keeps the port in TIME_WAIT
    client.close()
    listener.close()
    assert embedded._port_free(port)
    with socket.socket() as taken:  # a port something listens on is still in use
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        assert not embedded._port_free(port)


def test_psql_gets_a_dsn_s_password_in_its_environment_not_its_command_line(dsn_server) -> None:
    """`pg psql` with a password in ECOMM_PG_DSN: psql's command line, which every user of the machine can read
    (ps, /proc/<pid>/cmdline), holds the DSN without it; the password goes in PGPASSWORD."""
    word = uuid.uuid4().hex  # the password: made here, so that no password literal sits in the repository
    env = {name: value for name, value in os.environ.items() if name not in PG_ENV}
    env["ECOMM_PG_DSN"] = psycopg.conninfo.make_conninfo(dsn_server.dsn("postgres"), **{"password": word})
    seen = _cli("psql", "-Atc", r"\! tr '\0' ' ' < /proc/$PPID/cmdline; echo; tr '\0' '\n' < /proc/$PPID/environ",
                env=env)
    assert seen.returncode == 0, seen.stderr
    cmdline, environment = seen.stdout.split("\n", 1)
    assert "psql" in cmdline and "--dbname" in cmdline and word not in cmdline, cmdline
    assert f"PGPASSWORD={word}" in environment.splitlines()
    assert _cli("psql", "-Atc", "select 7", env=env).stdout.strip() == "7"


def test_redact_hides_passwords() -> None:
    assert "s3cret" not in pg.redact("postgresql://u:s3cret@h/db")
    assert "s3cret" not in pg.redact("host=h dbname=db sslkey=/k.pem sslpassword=s3cret")  # the client key's
    assert pg.redact("") == "(libpq PG* environment)"


def test_a_dsn_libpq_cannot_read_is_one_line_that_never_repeats_it(capsys, monkeypatch, tmp_path) -> None:
    secret = "pw" + uuid.uuid4().hex[:8]
    mistyped = f"postgresql//etl:{secret}@127.0.0.1:{free_port()}/ecomm"  # the ':' after the scheme forgotten
    monkeypatch.setenv("ECOMM_PG_DSN", mistyped)
    assert pg.main(["dsn"]) == 35
    out, err = capsys.readouterr()
    assert out == "" and secret not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("python -m pipeline.serving.pg dsn: error: ECOMM_PG_DSN is not a connection string libpq"
                          ' can read (missing "=" after ... in connection info string)'), err
    # the daily command: its log, run summary and failure e-mail take the error's text (libpq's quotes the DSN)
    env = {**os.environ, "ECOMM_LAKE_DIR": str(tmp_path / "lake"), "ECOMM_DATA_DIR": str(tmp_path / "data")}
    run = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline", "--date",
                          "2025-12-15", "--local-scheduler"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 35 and secret not in run.stdout + run.stderr, run.stderr[-3000:]
    assert "ECOMM_PG_DSN is not a connection string libpq can read" in run.stdout + run.stderr


@pytest.mark.parametrize(("configured", "bi"), [
    ("postgresql://postgres:secret@db.example:5433/ecomm?sslmode=require",
     "postgresql://bi_reader@db.example:5433/ecomm?sslmode=require"),
    ("postgresql://postgres@/ecomm?host=/run/pg", "postgresql://bi_reader@/ecomm?host=/run/pg"),
    ("host=db.example dbname=shop user=etl password=secret", "postgresql://bi_reader@db.example/shop"),
    ("postgresql://postgres@[::1]:5433/ecomm", "postgresql://bi_reader@[::1]:5433/ecomm"),
    ("postgresql://postgres@db.example/ecomm?application_name=my%20app&options=-c%20search_path%3Dmarts",
     "postgresql://bi_reader@db.example/ecomm?options=-c%20search_path%3Dmarts&application_name=my%20app"),
    ("postgresql://admin@127.0.0.1:19432,127.0.0.1:19439/ecomm",
     "postgresql://bi_reader@127.0.0.1:19432,127.0.0.1:19439/ecomm"),
    ("host=db1.example,db2.example port=5433 dbname=ecomm",
     "postgresql://bi_reader@db1.example:5433,db2.example:5433/ecomm"),
    ("host=db.example,::1 port=5433,5434 dbname=ecomm", "postgresql://bi_reader@db.example:5433,[::1]:5434/ecomm"),
    ("host=/run/pg,db.example port=5433,5434 dbname=ecomm",
     "postgresql://bi_reader@/ecomm?host=/run/pg%2Cdb.example&port=5433%2C5434"),
], ids=["uri", "socket", "key-value", "ipv6", "spaces", "hosts", "hosts-one-port", "hosts-ipv6", "hosts-socket"])
def test_the_bi_dsn_of_a_configured_server_is_bi_reader_without_a_password(
        monkeypatch: pytest.MonkeyPatch, configured: str, bi: str) -> None:
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ECOMM_PG_DSN", configured)
    assert pg.bi_dsn() == bi


def test_the_bi_dsn_of_several_hosts_pairs_each_host_with_its_port(embedded_server, monkeypatch) -> None:
    """`host1,host2:port1,port2` made libpq read host1 on port 5432 and host2 on port "port1,port2": the BI DSN of
    a DSN with several hosts could not connect. Each host keeps its own port: the first refuses, the second is
    the embedded server, which bi_reader reaches."""
    embedded_server.env(monkeypatch, "ecomm")
    with pg.connect() as conn:  # the roles exist once the serving schema does
        migrations.ensure_schema(conn)
    for name in PG_ENV:
        monkeypatch.delenv(name, raising=False)
    word = uuid.uuid4().hex  # the pipeline login's password, made here (trust auth: not asked for)
    env = {**os.environ, "ECOMM_PG_DSN": f"postgresql://postgres:{word}@127.0.0.1:{free_port()},"
                                         f"127.0.0.1:{embedded_server.port}/ecomm"}
    run = subprocess.run([sys.executable, "-m", "pipeline.serving.pg", "dsn", "--bi"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0 and word not in run.stdout + run.stderr, run.stderr
    printed = run.stdout.strip()
    assert conninfo_to_dict(printed)["port"].endswith(f",{embedded_server.port}"), printed
    with psycopg.connect(printed) as conn:
        assert conn.execute("select current_user, inet_server_port()").fetchone() == ("bi_reader",
                                                                                       embedded_server.port)


def test_the_bi_dsn_of_the_embedded_server_logs_in_over_tcp(embedded_server, monkeypatch: pytest.MonkeyPatch) -> None:
    embedded_server.env(monkeypatch, "ecomm")
    with pg.connect() as conn:  # the roles exist once the serving schema does
        migrations.ensure_schema(conn)
    printed = subprocess.run([sys.executable, "-m", "pipeline.serving.pg", "dsn", "--bi"], cwd=REPO,
                             capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    assert printed == f"postgresql://bi_reader@127.0.0.1:{embedded_server.port}/ecomm"
    with psycopg.connect(printed) as conn:
        assert conn.execute("select current_user, inet_server_addr() is not null").fetchone() == ("bi_reader", True)


def test_the_embedded_server_runs_without_the_groups_of_the_user_who_started_it(embedded_server) -> None:
    import pwd

    pid = embedded._postmaster(embedded_server.data_dir)["pid"]
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status", encoding="utf-8") if ":" in line)
    uids, gids, groups = (status[key].split() for key in ("Uid", "Gid", "Groups"))
    if os.geteuid() == 0:  # as root: the system user, its own group, no other (root's group 0 would read root's files)
        entry = pwd.getpwnam(embedded.SYSTEM_USER)
        assert set(uids) == {str(entry.pw_uid)} and set(gids) == {str(entry.pw_gid)} and groups == [], status
    else:
        assert set(uids) == {str(os.geteuid())}, status


def test_as_root_the_system_user_is_created_even_where_path_has_no_sbin(monkeypatch: pytest.MonkeyPatch) -> None:
    # cron's PATH: the embedded server's first start as root must still create the user it runs as
    import pwd
    import uuid

    if os.geteuid() != 0:  # as another user the server runs as that user: there is nothing to create
        assert embedded._run_as() == {}
        return
    name = f"ecomm-t{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    try:
        entry = embedded.ensure_system_user(name)
        assert entry.pw_name == name and pwd.getpwnam(name).pw_uid == entry.pw_uid
        assert entry.pw_shell.endswith(("nologin", "false")), "it runs binaries, it never logs in"
        assert embedded.ensure_system_user(name).pw_uid == entry.pw_uid  # an existing user is kept
    finally:
        subprocess.run(["/usr/sbin/userdel", name], check=False, capture_output=True)


def test_without_useradd_the_missing_system_user_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(system_user, "_SBIN", ())
    with pytest.raises(embedded.EmbeddedServerError, match="useradd was not found") as err:
        embedded.ensure_system_user("ecomm-nobody-here")
    assert "ECOMM_PG_DSN" in str(err.value) and "\n" not in str(err.value)


def test_a_port_another_program_listens_on_is_its_own_runbook_kind(tmp_path) -> None:
    """Two deployments on one host, the second given the first's port: the run said "Postgres down" and to start it
    (`pg start`), which fails the same way; the fix is this deployment's own port."""
    from pipeline.tasks import run_audit, runbook

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(embedded.EmbeddedPortInUse, match=f"port {port} on 127.0.0.1 is in use; set ECOMM_PG_PORT"
                           ) as caught:
            embedded._pg_ctl_start(tmp_path / "pgdata", port)
    recorded = run_audit._error_text(caught.value)  # what the run summary's what-to-do reads
    assert runbook.remedy_for(caught.value).kind == runbook.remedy_for_text(recorded).kind == "Postgres port in use"
    assert "give this deployment its own port: `ECOMM_PG_PORT`" in runbook.remedy_for(caught.value).fix_for(None)
