"""Postgres connections: where the pipeline connects, and the `python -m pipeline.serving.pg` command.

Where to connect, in order:
1. `ECOMM_PG_DSN`, a libpq URI (TCP or a Unix socket: `postgresql://user@/db?host=/some/dir`);
2. the standard libpq variables: if PGHOST, PGDATABASE or PGSERVICE is set the DSN is `""` and
   libpq reads PG* and ~/.pgpass itself;
3. otherwise the embedded PostgreSQL 16 (pipeline.serving.embedded), started on demand.

Run `python -m pipeline.serving.pg dsn|start|stop|status|psql [psql args]` (`make psql` uses `psql`);
`dsn` prints the pipeline's DSN without its password, `dsn --bi` what a BI tool connects with (the
read-only login bi_reader), and `psql --bi` opens psql with it. `status` says whether the embedded server
runs or, with ECOMM_PG_DSN or PG* set, whether that server takes a connection (exit 0, else 3).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import urllib.parse
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pipeline.cli import first_line
from pipeline.config import BadSetting
from pipeline.serving import embedded
from pipeline.serving.data_folder import EmbeddedDataFolderNotYours
from pipeline.serving.settings import postgres as postgres_settings

logger = logging.getLogger(__name__)

ENV_DSN = "ECOMM_PG_DSN"
LIBPQ_VARS = ("PGHOST", "PGDATABASE", "PGSERVICE")
BI_LOGIN = "bi_reader"  # the read-only login for BI tools (sql/serving/: the roles migration)

# The embedded server's controls, under the names the pipeline's callers use.
EmbeddedServerError = embedded.EmbeddedServerError
EmbeddedPortMismatch = embedded.EmbeddedPortMismatch
start_embedded = embedded.start
stop_embedded = embedded.stop
embedded_status = embedded.status


SECRET_PARAMS = ("password", "sslpassword")  # what a DSN shown to a person, a log or a BI tool never carries


class DsnInvalid(BadSetting):
    """ECOMM_PG_DSN is not a connection string libpq can read; the message never repeats it (it may hold a password)."""


def uses_embedded() -> bool:
    """Whether the pipeline uses the embedded server: neither ECOMM_PG_DSN nor libpq's PG* variables name another."""
    return not (os.environ.get(ENV_DSN, "").strip() or any(os.environ.get(name) for name in LIBPQ_VARS))


def dsn() -> str:
    """Where the pipeline connects: ECOMM_PG_DSN, "" (libpq's PG* variables) or the embedded server."""
    explicit = os.environ.get(ENV_DSN, "").strip()
    if explicit:
        misread = _misread_userinfo(explicit)  # libpq would read part of the password as host, port or database
        if misread:
            raise DsnInvalid(f"{ENV_DSN} {misread}, or put the password in ~/.pgpass")
        try:
            conninfo_to_dict(explicit)
        except psycopg.ProgrammingError as err:  # libpq's message quotes the string, password and all
            reason = re.sub(r'"([^"]*)"', lambda quoted: quoted[0] if len(quoted[1]) < 3 else "...", first_line(err))
            raise DsnInvalid(
                f"{ENV_DSN} is not a connection string libpq can read ({reason}): write it as"
                " postgresql://USER@HOST:PORT/DATABASE or as key=value pairs, the password in ~/.pgpass") from None
        return explicit
    return embedded.dsn() if uses_embedded() else ""


def _misread_userinfo(conninfo: str) -> str:
    """What in a URI's user or password libpq would misread ("" if nothing; always "" for key=value): its
    credentials and host run to the first '/' (a '?' or '#' in a password included), so a second '@' before it, or
    one after it (a '/' in the password), puts part of the password in the host, port or database. The user and
    password meant are taken to run to the last '@'; the message names characters only, never the text."""
    scheme, sep, rest = conninfo.partition("://")
    if not sep or scheme.lower() not in {"postgresql", "postgres"}:
        return ""
    authority, _, path = rest.partition("/")
    if not (authority.count("@") > 1 or "@" in path.split("?", 1)[0]):
        return ""
    meant = rest[:rest.rindex("@")]
    if "/" not in meant:
        return "has more than one '@' before its host: percent-encode an '@' in the user or password as %40"
    if meant.count("@") == 0:
        return ("has a '/' in its user or password, where libpq ends them and reads the rest as the database:"
                " percent-encode a '/' in the user or password as %2F")
    return ("has a '/' and an '@' in its user or password: percent-encode an '@' in the user or password as %40 and a"
            " '/' as %2F")


def bi_dsn() -> str:
    """What a BI tool connects with: the serving database as bi_reader, as a URI without a password.

    For the embedded server that is TCP on 127.0.0.1 (started first if needed; local connections are
    trusted). For a configured server it is ECOMM_PG_DSN's (or the PG* variables') host, port and
    database with the user replaced: bi_reader's password belongs in the BI tool or ~/.pgpass.
    """
    explicit = dsn() if os.environ.get(ENV_DSN, "").strip() else ""  # read as the pipeline reads it (DsnInvalid)
    if uses_embedded():
        host, port, database = "127.0.0.1", str(_embedded_port()), embedded.database()
        params: dict[str, str] = {}
    else:
        params = {k: str(v) for k, v in conninfo_to_dict(explicit).items()} if explicit else {}
        host = params.pop("host", "") or os.environ.get("PGHOST", "")
        port = params.pop("port", "") or os.environ.get("PGPORT", "")
        database = params.pop("dbname", "") or os.environ.get("PGDATABASE", "")
        for secret_or_user in (*SECRET_PARAMS, "passfile", "sslkey", "sslcert", "user"):  # the pipeline's login's
            params.pop(secret_or_user, None)
    authority, in_query = _hosts_and_ports(host, port)
    params = {**in_query, **params}
    query = urllib.parse.urlencode(params, safe="/", quote_via=urllib.parse.quote)  # a space is %20 in a URI, not +
    return f"postgresql://{BI_LOGIN}@{authority}/{urllib.parse.quote(database)}" + (f"?{query}" if query else "")


def _embedded_port() -> int:
    """The embedded server's port, started first if needed; a server in another user's data folder (root's) is not
    this user's to start or read, but BI connects over TCP: its configured port, when bi_reader logs in there."""
    try:
        embedded.start()
    except EmbeddedDataFolderNotYours:
        port = embedded.configured_port()
        with contextlib.suppress(psycopg.Error):
            with psycopg.connect(host="127.0.0.1", port=port, user=BI_LOGIN, dbname=embedded.database(),
                                 connect_timeout=5):
                return port
        raise
    info = embedded.status() or {}
    return info.get("port") or embedded.configured_port()


def _hosts_and_ports(host: str, port: str) -> tuple[str, dict[str, str]]:
    """A URI's `host:port,host:port` for libpq's host and port lists (one port: every host's), or, for a Unix
    socket directory among the hosts or lists that do not pair up, the lists as query parameters as given.

    Written as `h1,h2:p1,p2` libpq would read host h1 on the default port and host `h2` on port `p1,p2`."""
    hosts, ports = host.split(",") if host else [], port.split(",") if port else []
    if len(ports) == 1:
        ports *= max(len(hosts), 1)
    if not hosts or any(not h or h.startswith("/") for h in hosts) or (ports and len(ports) != len(hosts)):
        return "", {k: v for k, v in (("host", host), ("port", port)) if v}
    pairs = zip(hosts, ports or [""] * len(hosts))
    return ",".join((f"[{h}]" if ":" in h else h) + (f":{p}" if p else "") for h, p in pairs), {}  # IPv6: [::1]


def redact(conninfo: str) -> str:
    """A DSN that is safe to log: any password replaced by ***."""
    if not conninfo:
        return "(libpq PG* environment)"
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(unparseable DSN)"
    for secret in SECRET_PARAMS:
        if secret in parts:
            parts[secret] = "***"
    return " ".join(f"{key}={value}" for key, value in parts.items())


# psycopg reads dates and timestamps only in ISO DateStyle and intervals only in IntervalStyle postgres: a role or
# database set to e.g. `datestyle = 'SQL, DMY'` would fail the first timestamp read back (after a publish committed).
SESSION_FORMATS = (("DateStyle", "ISO"), ("IntervalStyle", "postgres"))


def connect(conninfo: str | None = None, **kwargs: Any) -> psycopg.Connection:
    """A psycopg connection to `conninfo` (default: `dsn()`), with the [postgres] session settings."""
    target = dsn() if conninfo is None else conninfo
    params, in_sql = libpq_params(target, **kwargs)
    conn = psycopg.connect(target, **params)
    if in_sql:
        try:
            set_session(conn, in_sql)
        except BaseException:
            conn.close()
            raise
    return conn


def libpq_params(target: str, **kwargs: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """What `connect` gives libpq beside the DSN `target` (application_name, connect_timeout and options unless the DSN
    or PG* sets them, then `kwargs`), and the session settings to set in SQL after connecting instead ([] unless a
    service is named). Every other parameter is the DSN's (or PG*'s, ~/.pgpass's, pg_service.conf's), read by libpq.

    Shared with the serving reconciliation's Soda connection (psycopg2), so both are made alike."""
    settings = postgres_settings()
    given = conninfo_to_dict(target) if target else {}
    params: dict[str, Any] = {}
    if "application_name" not in given and "PGAPPNAME" not in os.environ:
        # the client's pid: a lock message names the pipeline process to stop, not only its backend (locks._session)
        params["application_name"] = f"{settings.application_name} pid={os.getpid()}"
    if "connect_timeout" not in given and "PGCONNECT_TIMEOUT" not in os.environ:
        params["connect_timeout"] = settings.connect_timeout
    session = [(name, str(getattr(settings, name)).strip().replace(" ", "")) for name in ("statement_timeout",
                                                                                         "lock_timeout")]
    session = [(name, value) for name, value in session if value and value != "0"] + list(SESSION_FORMATS)
    params.update(kwargs)
    if ("service" in given or os.environ.get("PGSERVICE")) and "options" not in given and "options" not in kwargs:
        # a service's own `options` (pg_service.conf) would be replaced by an options parameter: set them in SQL
        return params, session
    options = [params.pop("options", "") or given.get("options", "") or os.environ.get("PGOPTIONS", "")]
    options += [f"-c {name}={value}" for name, value in session]  # the formats last: they must win
    params["options"] = " ".join(o for o in options if o)
    return params, []


def set_session(conn: Any, settings: list[tuple[str, str]]) -> None:
    """Set session settings in SQL and commit them (a rollback must not take them back); any DB-API connection."""
    cursor = conn.cursor()
    cursor.execute("select " + ", ".join(["set_config(%s, %s, false)"] * len(settings)),
                   [item for pair in settings for item in pair])
    cursor.close()
    if not conn.autocommit:
        conn.commit()


def has_table(conn: psycopg.Connection, name: str) -> bool:
    """Whether the database holds `name` (schema-qualified), e.g. audit.publish_log: none before the first migration."""
    return conn.execute("select to_regclass(%s) is not null", [name]).fetchone()[0]


class ServingUnreachable(RuntimeError):
    """The serving Postgres cannot be reached (nor the embedded one started): one line naming where and what to do."""


UNREACHABLE_EXIT = 3  # what a `python -m pipeline` command exits with when it cannot reach the serving Postgres


def connect_or_refuse(**kwargs: Any) -> psycopg.Connection:
    """`connect(**kwargs)` for a command line, or ServingUnreachable with one line (exit UNREACHABLE_EXIT)."""
    where = "the embedded server"
    try:
        where = redact(dsn())
        return connect(**kwargs)
    except BadSetting:  # the server may well be up (EmbeddedPortMismatch): the setting's own line, exit 35
        raise
    except (psycopg.OperationalError, EmbeddedServerError, OSError) as err:  # OSError: the embedded data dir
        from pipeline.serving import retry

        if isinstance(err, psycopg.OperationalError) and not retry.postgres_unreachable(err):  # it answered: no
            raise ServingUnreachable(
                f"the serving Postgres ({where}) refuses the connection: {first_line(err)}; fix ECOMM_PG_DSN, PG* or"
                " ~/.pgpass (a database that does not exist yet: create it first, e.g. `createdb`)") from err
        raise ServingUnreachable(f"cannot reach the serving Postgres ({where}): {first_line(err)}; start it or set"
                                 " ECOMM_PG_DSN") from err


# --------------------------------------------------------------------------------------------- CLI
def _without_password(target: str, *, as_bi: bool = False) -> tuple[str, dict[str, str]]:
    """A DSN without its password, and this process's environment with it as PGPASSWORD: a program's command line is
    readable by every user of the machine (/proc/<pid>/cmdline, ps), its environment only by its own.

    `as_bi`: PGPASSWORD is the pipeline login's password, not bi_reader's (whose libpq would send it and fail
    "password authentication failed for user bi_reader"): left out, so that libpq reads ~/.pgpass or psql asks."""
    env = {name: value for name, value in os.environ.items() if not (as_bi and name == "PGPASSWORD")}
    parts = conninfo_to_dict(target) if target else {}
    password = parts.pop("password", None)
    if password is None:
        return target, env
    if as_bi:  # bi_dsn() carries none: a password in it would be the pipeline's
        return make_conninfo(**parts), env
    return make_conninfo(**parts), {**env, "PGPASSWORD": str(password)}


STATUS_TIMEOUT = 5  # seconds `status` waits for a configured server to answer


def _configured_status() -> int:
    """`status` with ECOMM_PG_DSN or PG* set: where the pipeline connects, and whether it takes a connection (0)
    or not (UNREACHABLE_EXIT, as for every command that cannot connect; the embedded server is not the pipeline's)."""
    target = dsn()  # DsnInvalid: exit 35
    where = f"{redact(target)} ({ENV_DSN})" if target else redact(target)
    try:
        with connect(target, connect_timeout=STATUS_TIMEOUT) as conn:
            version = conn.execute("select current_setting('server_version')").fetchone()[0]
            seen = f"database {conn.info.dbname} as {conn.info.user} on {conn.info.host}:{conn.info.port}"
    except psycopg.OperationalError as err:
        from pipeline.serving import retry

        said = "refuses the connection" if not retry.postgres_unreachable(err) else "does not answer"
        print(f"configured server {where}: {said}: {first_line(err)}")
        return UNREACHABLE_EXIT
    print(f"configured server {where}: answers (PostgreSQL {version}, {seen}); the embedded server is not used")
    return 0


USAGE = "usage: python -m pipeline.serving.pg dsn [--bi]|start|stop|status|psql [--bi] [psql arguments]"


def main(argv: list[str] | None = None) -> int:
    """The `python -m pipeline.serving.pg` command line."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in {"dsn", "start", "stop", "status", "psql"}:
        print(USAGE, file=sys.stderr)
        return 2
    command, rest = args[0], args[1:]
    as_bi = command in {"dsn", "psql"} and rest[:1] == ["--bi"]
    rest = rest[1:] if as_bi else rest
    # a mistyped `dsn --BI` must not print the superuser's DSN: only psql takes more arguments (psql's own)
    unknown = rest if command != "psql" else [arg for arg in rest if arg == "--bi"]
    if unknown:
        takes = {"dsn": "only --bi", "psql": "--bi first, then psql's own options"}.get(command, "no arguments")
        print(f"python -m pipeline.serving.pg {command}: error: unrecognized arguments: {' '.join(unknown)}"
              f" ({command} takes {takes})", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S %Z")  # the local clock, naming its zone
    try:
        if command == "dsn":
            target = bi_dsn() if as_bi else dsn()
            parts = conninfo_to_dict(target) if target else {}
            shown = make_conninfo(**{k: v for k, v in parts.items() if k not in SECRET_PARAMS}) if any(
                secret in parts for secret in SECRET_PARAMS) else target
            print(shown)
            if shown != target:  # a terminal's scrollback, a CI log or a ticket is no place for it
                print(f"(the password is not printed: it stays in {ENV_DSN}; `python -m pipeline.serving.pg psql`"
                      " uses it)", file=sys.stderr)
        elif command == "start":
            print(embedded.start())
        elif command == "stop":
            print("stopped" if embedded.stop() else "not running")
        elif command == "status":
            if not uses_embedded():
                return _configured_status()
            info = embedded.status()
            print(f"running: pid {info['pid']}, port {info['port']}, socket dir {info['socket_dir']}"
                  if info else f"not running ({embedded.data_dir()})")
            if info and info["port"]:
                try:  # what every other command refuses: said here too, after the facts
                    embedded.port_agrees(embedded.data_dir(), info["port"])
                except EmbeddedPortMismatch as err:
                    print(f"warning: {err}", file=sys.stderr)
            return 0 if info else 3
        else:
            target, env = _without_password(bi_dsn() if as_bi else dsn(), as_bi=as_bi)
            psql = str(embedded.binary("psql"))
            sys.stdout.flush()
            os.execve(psql, [psql, *(["--dbname", target] if target else []), *rest], env)
    except BadSetting as err:  # DsnInvalid, EmbeddedPortMismatch
        print(f"python -m pipeline.serving.pg {command}: error: {err}", file=sys.stderr)
        return 35  # a setting that cannot be read or used (docs/operations.md#exit-codes)
    except EmbeddedServerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
