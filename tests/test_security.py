"""Security: no secret in the repository, hostile parameters stopped before SQL or a path, one identifier
quoting helper, the scheduler on loopback, encrypted serving checks, and dependency security floors.

The BI role's read-only access is tested on a real server in tests/test_serving_roles.py.
"""
from __future__ import annotations

import ast
import datetime as dt
import importlib.metadata
import re
import socket
import struct
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import duckdb
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from pipeline import lake
from pipeline.ingest import catalog_api, landing
from pipeline.lake import sqlrun
from pipeline.quality import gate, serving_connection, serving_reconciliation
from pipeline.serving import publish
from pipeline.transform import staging, warehouse
from tests.support.faults import clean_env
from tests.support.paths import REPO
from tests.support.processes import free_port, wait_for

HOSTILE_DATE = "2025-12-13'; drop table x;--"

# ------------------------------------------------------------------------------ secrets in the repo
# Values that are obviously not secrets: documented placeholders, and the fake password the tests use.
PLACEHOLDERS = {"change-me", "changeme", "***", "password", "secret", "s3cret", "xxx", "redacted", "example",
                "your-password", "none", "null", "''", '""'}
# Third-party sample data with fake credentials (DummyJSON users have demo passwords).
NOT_SCANNED = ("devtools/generate/dummyjson/",)
SECRET_PATTERNS = {
    "DSN/URL with a password": re.compile(
        r"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|redis|amqp|https?|ftp)://[^\s:/@'\"]+:([^\s@'\"]+)@"),
    "libpq conninfo password": re.compile(r"(?i)(?<![\w.])password=([^\s'\"&;)]+)"),
    "PGPASSWORD / *_PASSWORD assignment": re.compile(
        r"(?im)^\s*(?:export\s+|-\s+)?[\w.-]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY)\s*[:=]\s*['\"]?([^\s'\"#]+)"),
    "password string literal": re.compile(
        r"(?i)['\"]?\b[\w-]*(?:password|passwd|secret|api_?key|token)['\"]?\s*[:=]\s*['\"]([^'\"\s]{3,})['\"]"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----()"),
    "AWS access key": re.compile(r"\b(AKIA[0-9A-Z]{16})\b"),
}


def repository_files() -> list[str]:
    """Tracked files, plus new files not yet committed that git would not ignore."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    new = subprocess.run(["git", "ls-files", "-z", "--others", "--exclude-standard"], cwd=REPO, capture_output=True,
                         check=True).stdout
    names = {n.decode() for n in (tracked + new).split(b"\0") if n}
    return sorted(n for n in names if not n.startswith(NOT_SCANNED) and (REPO / n).is_file())


def is_placeholder(value: str) -> bool:
    v = value.strip().strip("'\"").rstrip(",;)")
    return (not v or v.lower() in PLACEHOLDERS or v.lower().startswith(("change-me", "changeme"))
            or v.startswith(("$", "%(", "{", "<", "(", "[", "os.environ", "env."))
            or bool(re.fullmatch(r"\*+|x+|\.\.\.|[A-Z_]+", v)))


CONFIG_ONLY = {"PGPASSWORD / *_PASSWORD assignment"}  # in Python, `password = f(...)` is code: literals only


def secrets_in(text: str, python: bool = False) -> list[tuple[str, str]]:
    found = []
    for kind, pattern in SECRET_PATTERNS.items():
        if python and kind in CONFIG_ONLY:
            continue
        for match in pattern.finditer(text):
            value = match.group(1)
            if kind in ("private key",) or not is_placeholder(value):
                found.append((kind, match.group(0)[:80]))
    return found


def test_the_secret_scanner_finds_what_it_looks_for() -> None:
    # assembled at run time, so that the repository scan does not find these in this very file
    pw = "Hunter" + "2"
    leaks = [
        f"ECOMM_PG_DSN=postgresql://etl:{pw}!@db.internal:5432/ecomm",
        f"conn = 'host=db user=etl password={pw}'",
        f"PGPASSWORD={pw}",
        f"  POSTGRES_PASSWORD: {pw}",
        'DB = {"password": "' + pw + '"}',
        f"index-url = https://user:{pw}@pypi.internal/simple",
        "-----BEGIN OPENSSH " + "PRIVATE KEY-----",
    ]
    for leak in leaks:
        assert secrets_in(leak), leak
    assert secrets_in(f"password = '{pw}'", python=True)
    fine = [
        "postgresql://bi_reader@127.0.0.1:54320/ecomm", "ECOMM_PG_DSN=postgresql://user@host:5432/db",
        "POSTGRES_PASSWORD: change-me", "PGPASSWORD=${PGPASSWORD}", "give them in `PGPASSWORD` or ~/.pgpass",
    ]
    for text in fine:
        assert not secrets_in(text), text
    for code in ("password = parts.get('password') or env.get('PGPASSWORD')", 'parts["password"] = "***"'):
        assert not secrets_in(code, python=True), code


def test_no_secret_in_the_repository() -> None:
    findings = []
    for name in repository_files():
        data = (REPO / name).read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary
        text = data.decode("utf-8", "replace")
        python = name.endswith((".py", ".ipynb"))
        findings += [(name, kind, snippet) for kind, snippet in secrets_in(text, python=python)]
    assert findings == [], "secrets belong in ECOMM_PG_DSN, PGPASSWORD or ~/.pgpass, never in the repository"


# ------------------------------------------------------------------------------ hostile parameters
def test_hostile_date_on_the_cli_exits_non_zero_before_touching_postgres_or_the_lake(tmp_path) -> None:
    """The embedded Postgres is started by the first connection: its data dir never appearing proves
    that nothing tried to reach Postgres."""
    pgdata, lake_dir = tmp_path / "pgdata", tmp_path / "lake"
    env = clean_env(ECOMM_PG_DATA=str(pgdata), ECOMM_PG_PORT=str(free_port()), ECOMM_LAKE_DIR=str(lake_dir),
                    ECOMM_DATA_DIR=str(tmp_path / "incoming"))
    for args in (["DailyPipeline", "--date", HOSTILE_DATE], ["Publish", "--date", "2025-12-13/../../etc"],
                 ["RangeDaily", "--of", "DailyPipeline", "--start", HOSTILE_DATE, "--stop", "2025-12-14"]):
        result = subprocess.run(
            [sys.executable, "-m", "luigi", "--module", "pipeline.tasks", *args, "--local-scheduler", "--no-lock"],
            check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode != 0, result.stderr[-2000:]
        # one line, no traceback (issue 17): the option and the expected format
        assert "the command was rejected" in result.stderr and "YYYY-MM-DD" in result.stderr
        assert "Traceback" not in result.stderr
        assert not pgdata.exists(), "a hostile --date reached Postgres"
        assert not lake_dir.exists(), "a hostile --date reached the lake"


@pytest.mark.parametrize("call", [
    lambda d: lake.partition_dir("raw", "orders", d),
    lambda d: staging.stage("orders", d),
    lambda d: warehouse.build("fact_orders", d),
    lambda d: gate.run_gate(d),
    lambda d: gate.gate_variables(d),
    lambda d: publish.publish(d),
    lambda d: publish.is_published(d),
    lambda d: publish.publish_audit_only(d, []),
    lambda d: serving_reconciliation.reconcile_serving(d),
], ids=["lake", "stage", "model", "gate", "gate-variables", "publish", "is-published", "publish-audit", "reconcile"])
@pytest.mark.parametrize("value", [HOSTILE_DATE, "2025-12-13 00:00:00", "../2025-12-13", "2025-1-3", 20251213],
                         ids=["sql", "timestamp", "traversal", "short", "int"])
def test_every_entry_point_rejects_a_hostile_date_first(call, value, tmp_path, monkeypatch) -> None:
    pgdata = tmp_path / "pgdata"
    for name in ("ECOMM_PG_DSN", "PGHOST", "PGDATABASE", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ECOMM_PG_DATA", str(pgdata))
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / "lake"))
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        call(value)
    assert not pgdata.exists() and not (tmp_path / "lake").exists()


@pytest.mark.parametrize(("call", "error"), [
    (lambda: lake.partition_dir("raw", "../../etc", "2025-12-13"), lake.UnsafeName),
    (lambda: lake.partition_dir("raw", "orders/../../etc", "2025-12-13"), lake.UnsafeName),
    (lambda: lake.table_dir("../raw", "orders"), lake.UnsafeName),
    (lambda: lake.partition_dir("audit", "bad_records", "2025-12-13", source_table="../../etc"), lake.UnsafeName),
    (lambda: lake.partition_dir("audit", "bad_records", "2025-12-13", **{"a/../b": "x"}), lake.UnsafeName),
    (lambda: lake.partition_file("raw", "Orders", "2025-12-13"), lake.UnsafeName),
    (lambda: sqlrun.sql_text("staging", "../../../etc/passwd"), lake.UnsafeName),
    (lambda: gate.checks_file("staging", "../../etc/passwd"), lake.UnsafeName),
    (lambda: staging.staging_table("../orders"), ValueError),
    (lambda: warehouse.build("../fact_orders", dt.date(2025, 12, 13)), ValueError),
    (lambda: landing.land_catalog("../products", dt.date(2025, 12, 13)), ValueError),
    (lambda: catalog_api.fetch_all("file:///etc/passwd", "products"), ValueError),
    (lambda: catalog_api.fetch_all("http://127.0.0.1:9", "../users"), ValueError),
], ids=["table", "nested-table", "layer", "key-value", "key-name", "uppercase", "sql-file", "checks-file",
        "staging-source", "model", "catalog-kind", "api-scheme", "api-resource"])
def test_path_traversal_in_names_is_refused(call, error, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / "lake"))
    with pytest.raises(error):
        call()


def test_catalog_file_names_that_are_not_plain_snapshots_are_ignored(tmp_path, monkeypatch) -> None:
    """Only `<kind>_YYYY-MM-DD.json` directly in `<data_dir>/<kind>/` is ever read (a misnamed snapshot,
    `products_D.JSON`, is refused: tests/test_ops_misnamed_catalog.py)."""
    monkeypatch.setenv("ECOMM_DATA_DIR", str(tmp_path))
    folder = tmp_path / "products"
    (folder / "sub").mkdir(parents=True)
    for name in ("products_2025-12-01.json", "products_2025-12-02.json.bak", "products_2025-12-03;rm -rf.json",
                 "sub/products_2025-12-04.json", "users_2025-12-05.json", "products_2025-12-06.JSON"):
        (folder / name).write_text("[]")
    assert landing.catalog_file("products", dt.date(2025, 12, 5)) == (
        str(folder / "products_2025-12-01.json"), dt.date(2025, 12, 1))
    with pytest.raises(landing.UnexpectedSourceFiles, match="no file named products_2025-12-06.json"):
        landing.catalog_file("products", dt.date(2025, 12, 31))


# -------------------------------------------------------------------------- quoting and binding
@pytest.mark.parametrize("name", ['x"; drop table keep; --', "weird name", "Ünïcödé", 'a""b', "select"])
def test_quote_ident_round_trips_hostile_names_in_duckdb(name) -> None:
    con = duckdb.connect()
    con.execute("create table keep (i integer)")
    con.execute(f"create table {sqlrun.quote_ident(name)} ({sqlrun.quote_ident(name)} integer)")
    con.execute(f"insert into {sqlrun.quote_ident(name)} values (1)")
    assert con.execute(f"select {sqlrun.quote_ident(name)} from {sqlrun.quote_ident(name)}").fetchall() == [(1,)]
    tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    assert tables == {"keep", name}


def test_quote_ident_round_trips_hostile_names_in_postgres(fresh_db) -> None:
    name = 'x"; drop table keep; --'
    with fresh_db.connect(autocommit=True) as conn:
        conn.execute("create table keep (i integer)")
        conn.execute(f"create table {sqlrun.quote_ident(name)} ({sqlrun.quote_ident(name)} integer)")
        names = {r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'public'").fetchall()}
    assert names == {"keep", name}


@pytest.mark.parametrize("bad", ["", "a\x00b", None, 1])
def test_quote_ident_refuses_what_cannot_be_an_identifier(bad) -> None:
    with pytest.raises(ValueError):
        sqlrun.quote_ident(bad)  # type: ignore[arg-type]


def test_quote_ident_escapes_quotes() -> None:
    assert sqlrun.quote_ident('a"b') == '"a""b"' and sqlrun.quote_ident("x") == '"x"'


SQL_WORDS = re.compile(r"(?i)\b(select|insert|update|delete|copy|create|drop|alter|where|values|set)\b")


def formatted_sql_literals(source: str, name: str) -> list[str]:
    """f-strings that put a formatted value between SQL quotes ('{...}'): a value that should have been bound."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.JoinedStr):
            continue
        parts = node.values
        text = "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in parts)
        if not SQL_WORDS.search(text):
            continue
        for i, part in enumerate(parts):
            if isinstance(part, ast.FormattedValue):
                before = parts[i - 1].value if i and isinstance(parts[i - 1], ast.Constant) else ""
                after = parts[i + 1].value if i + 1 < len(parts) and isinstance(parts[i + 1], ast.Constant) else ""
                if str(before).endswith("'") and str(after).startswith("'"):
                    found.append(f"{name}:{node.lineno}: {text[:100]}")
    return found


def test_the_formatted_sql_scanner_finds_what_it_looks_for() -> None:
    assert formatted_sql_literals("q = f\"select * from t where load_date = '{day}'\"", "x.py") == [
        "x.py:1: select * from t where load_date = '{}'"]
    assert formatted_sql_literals("q = f\"delete from t where id in ('{a}', '{b}')\"", "x.py")
    for fine in ("q = f'select * from {table} where d = $d'", "msg = f\"the file '{path}' is missing\"",
                 "q = 'select 1'"):
        assert formatted_sql_literals(fine, "x.py") == [], fine


def test_no_value_is_formatted_into_sql_text() -> None:
    modules = sorted((REPO / "pipeline").rglob("*.py"))
    assert {p.parent.name for p in modules} >= {"lake", "ingest", "transform", "quality", "serving", "tasks", "report"}
    found = [hit for path in modules
             for hit in formatted_sql_literals(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    assert found == [], "bind values ($name / %s) instead of formatting them into SQL"


# ------------------------------------------------------------------------------ roles and network
def luigid_command() -> list[str]:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^luigid:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    match = re.search(r"^\t\$\(RUN\) luigid (.+)$", recipe.group(1) if recipe else "", flags=re.MULTILINE)
    assert match, "the Makefile has no `luigid` target running luigid"
    return match.group(1).split()


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_luigid_binds_to_loopback_by_default(tmp_path) -> None:
    """`make luigid`'s own arguments (port aside) give a scheduler that only 127.0.0.1 can reach."""
    args = luigid_command()
    assert args[args.index("--address") + 1] == "127.0.0.1"
    port = free_port()
    args[args.index("--port") + 1] = str(port)
    (tmp_path / "log").mkdir()
    for option, value in (("--logdir", tmp_path / "log"), ("--state-path", tmp_path / "state.pickle")):
        if option in args:
            args[args.index(option) + 1] = str(value)
    proc = subprocess.Popen([sys.executable, "-c", "from luigi.cmdline import luigid; luigid()", *args],
                            cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: accepts(port) or proc.poll() is not None, 30, "luigid to listen")
        assert proc.poll() is None, "luigid did not start"
        listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     + Path("/proc/net/tcp6").read_text().splitlines()[1:]]
        local = {f[1].split(":")[0] for f in listening if f[3] == "0A" and int(f[1].split(":")[1], 16) == port}
        assert local == {"0100007F"}, f"luigid listens on {local}, not only 127.0.0.1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_luigi_cfg_points_workers_at_a_loopback_scheduler() -> None:
    cfg = (REPO / "luigi.cfg").read_text(encoding="utf-8")
    core = cfg.split("[core]", 1)[1].split("\n[", 1)[0]
    hosts = re.findall(r"^\s*(?:default_)?scheduler_host\s*=\s*(\S+)", core, flags=re.MULTILINE)
    assert hosts and all(h in ("127.0.0.1", "localhost", "::1") for h in hosts), hosts


def test_docker_compose_publishes_nothing_beyond_loopback() -> None:
    """Any compose file in the repository publishes ports on 127.0.0.1 only (luigid has no auth)."""
    for path in sorted(REPO.glob("*compose*.y*ml")) + sorted(REPO.glob("docker/*compose*.y*ml")):
        for line in path.read_text(encoding="utf-8").splitlines():
            port = re.match(r"\s*-\s*['\"]?([\d.:\[\]a-f]+)['\"]?\s*$", line)
            if port and ":" in port.group(1):
                assert port.group(1).startswith(("127.0.0.1:", "[::1]:")), f"{path.name}: {line.strip()}"


# ------------------------------------------------------------------------ serving checks and TLS
@pytest.mark.parametrize("dsn", [
    "postgresql://u@db.example.com/db", "postgresql://u@db.example.com/db?sslmode=prefer",
    "postgresql://u@db.example.com/db?sslmode=allow", "host=10.1.2.3 user=u dbname=db",
    "host=127.0.0.1,db.example.com user=u dbname=db", "postgresql://u@[2001:db8::1]/db",
])
def test_soda_postgres_never_runs_with_a_downgradable_sslmode_against_a_remote_server(dsn, monkeypatch) -> None:
    for name in ("PGHOST", "PGHOSTADDR", "PGSSLMODE", "PGPASSWORD", "PGUSER", "PGDATABASE", "PGPORT", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    # what libpq is given beside the DSN for the checks' connection (serving_connection.connect)
    assert serving_connection.connection_params(dsn)["sslmode"] in {"require", "verify-ca", "verify-full"}


def test_pgsslmode_prefer_in_the_environment_does_not_downgrade(monkeypatch) -> None:
    monkeypatch.setenv("PGSSLMODE", "prefer")
    assert serving_connection.sslmode_for("postgresql://u@db.example.com/db") == "require"



class TlsStripper:
    """A man in the middle on 127.0.0.2 (loopback, but not a host the checks count as local): it answers libpq's
    SSLRequest (and GSSENCRequest) `N`, asks for a cleartext password and keeps what it is sent."""

    SSL, GSS = 80877103, 80877104

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.2", 0))
        self.port = self.sock.getsockname()[1]
        self.startups: list[bytes] = []
        self.passwords: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with client:
                try:
                    self._talk(client)
                except (OSError, struct.error):
                    pass

    @staticmethod
    def _read(client: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size and (chunk := client.recv(size - len(data))):
            data += chunk
        return data

    def _talk(self, client: socket.socket) -> None:
        while True:
            length, code = struct.unpack("!ii", self._read(client, 8))
            if code not in (self.SSL, self.GSS):
                break
            client.sendall(b"N")  # "no TLS here": libpq's prefer goes on in cleartext
        self.startups.append(self._read(client, length - 8))
        client.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        kind, size = struct.unpack("!ci", self._read(client, 5))
        if kind == b"p":
            self.passwords.append(self._read(client, size - 4).rstrip(b"\0"))

    def close(self) -> None:
        self.sock.close()


def test_a_service_is_never_probed_before_the_checks_chose_its_sslmode(tmp_path, monkeypatch) -> None:
    """ECOMM_PG_DSN=service=ecomm, the service naming a remote host and no sslmode: the checks asked a first
    connection where the service led, made with libpq's default `prefer` and authenticating, so a man in the middle
    answering "no TLS" got the password in cleartext. pg_service.conf is read instead; the one connection is made
    with `require`, refused by a server (or a man in the middle) without TLS before any password is sent."""
    for name in ("PGHOST", "PGHOSTADDR", "PGSSLMODE", "PGPASSWORD", "PGUSER", "PGDATABASE", "PGPORT", "PGSERVICE",
                 "PGSYSCONFDIR"):
        monkeypatch.delenv(name, raising=False)
    stripper = TlsStripper()
    services = tmp_path / "pg_service.conf"
    services.write_text(f"# the serving Postgres\n[ecomm]\nhost=127.0.0.2\nport={stripper.port}\nuser=ecomm\n"
                        "dbname=ecomm\npassword=s3cret-word\n\n[other]\nsslmode=disable\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    try:
        with pytest.raises(serving_connection.ServingCheckError) as refused:
            serving_connection.connect("service=ecomm", "warehouse")
    finally:
        stripper.close()
    assert stripper.passwords == [] and stripper.startups == [], "a connection authenticated without TLS"
    assert isinstance(refused.value, serving_connection.ServingChecksRefused), refused.value
    assert "server does not support SSL, but SSL was required" in str(refused.value), refused.value
    assert serving_connection.sslmode_for("service=ecomm") == "require"
    services.write_text("[ecomm]\nhost=/run/postgresql,localhost\n")
    assert serving_connection.sslmode_for("service=ecomm") == "disable"  # every host local
    services.write_text("[ecomm]\nhost=/run/postgresql,db.example.com\n")
    assert serving_connection.sslmode_for("service=ecomm") == "require"  # the first one reached is not all
    services.write_text("[ecomm]\nhost=db.example.com\nsslmode=verify-full\n")
    assert serving_connection.sslmode_for("service=ecomm") == "verify-full"  # the service's own, definite
    assert serving_connection.sslmode_for("service=ecomm sslmode=disable") == "disable"  # the DSN's first
    monkeypatch.setenv("PGSERVICE", "ecomm")
    assert serving_connection.sslmode_for("") == "verify-full"
    monkeypatch.setenv("PGSERVICE", "nowhere")  # neither file defines it: nothing known of its host
    assert serving_connection.sslmode_for("") == "require"


# ------------------------------------------------------------------------ dependency floors
# Lowest versions without the known vulnerabilities below, for packages the pipeline runs (direct or
# pulled in). Declared in pyproject.toml (dependencies, or [tool.uv] constraint-/override-dependencies).
FLOORS: dict[str, tuple[str, str]] = {
    "duckdb": ("1.1.0", "CVE-2024-41672: sniff_csv read files despite enable_external_access=false"),
    "pyarrow": ("14.0.1", "CVE-2023-47248: code execution when reading untrusted IPC/Parquet data"),
    "jinja2": ("3.1.6", "CVE-2025-27516, CVE-2024-56201, CVE-2024-56326: sandbox escapes (Soda renders Jinja)"),
    "requests": ("2.32.4", "CVE-2024-47081 (.netrc credentials leaked), CVE-2024-35195"),
    "urllib3": ("2.6.0", "CVE-2025-66418, CVE-2025-66471 (decompression bombs), CVE-2025-50181 (redirects)"),
    "certifi": ("2024.7.4", "CVE-2024-39689: distrusted GLOBALTRUST roots"),
    "idna": ("3.7", "CVE-2024-3651: quadratic-time DoS in idna.encode"),
    "tornado": ("6.5", "CVE-2025-47287, CVE-2024-52804: DoS in luigid's HTTP server (multipart, cookies)"),
    "protobuf": ("6.31.1", "CVE-2025-4565: recursion DoS in the pure-Python parser (Soda's telemetry stack)"),
    "setuptools": ("78.1.1", "CVE-2025-47273: path traversal in PackageIndex"),
}


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    return {p["name"]: p["version"] for p in lock["package"] if "version" in p}


def declared_floors() -> dict[str, Version]:
    """The lower bounds pyproject.toml declares, per package (dependencies, constraints, overrides)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    uv = project.get("tool", {}).get("uv", {})
    specs = [*project["project"]["dependencies"], *uv.get("constraint-dependencies", []),
             *uv.get("override-dependencies", [])]
    floors: dict[str, Version] = {}
    for text in specs:
        req = Requirement(text)
        for spec in req.specifier:
            if spec.operator in (">=", "==", "~=", ">"):
                name = req.name.lower().replace("_", "-")
                floors[name] = max(floors.get(name, Version("0")), Version(spec.version))
    return floors


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_installed_and_locked_versions_honour_the_security_floors(package) -> None:
    floor = Version(FLOORS[package][0])
    installed = Version(importlib.metadata.version(package))
    assert installed >= floor, f"{package} {installed} < {floor}: {FLOORS[package][1]}"
    locked = locked_versions().get(package)
    assert locked is not None and Version(locked) >= floor, f"uv.lock pins {package} {locked} < {floor}"


def test_pyproject_declares_the_security_floors() -> None:
    """uv.lock honours the floors today; declaring them keeps the next `uv lock` from going below one."""
    declared = declared_floors()
    missing = {p: f for p, (f, _) in FLOORS.items() if declared.get(p, Version("0")) < Version(f)}
    assert missing == {}, "declare these floors in pyproject.toml ([tool.uv] constraint-dependencies)"


def test_the_audit_target_runs_pip_audit_on_the_locked_dependencies() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^audit:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert recipe and "pip-audit" in recipe.group(1) and "export --frozen" in recipe.group(1)
