"""The commands a user types: a known user error is one line and an exit code, the help states defaults,
the run summary accounts for every dropped row, `freshness` answers a monitor, and nothing litters the
checkout (issue 17, points 9 and "Freshness")."""
from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.support.paths import REPO
from tests.support.postgres import PG_ENV, EmbeddedServer, Target

BAD = "2025-13-01"
LUIGI = [sys.executable, "-m", "luigi", "--module", "pipeline.tasks"]
PIPELINE = [sys.executable, "-m", "pipeline"]

# every command that takes a date, with the exit code a rejected command line gives
COMMANDS = {
    "luigi DailyPipeline": ([*LUIGI, "DailyPipeline", "--date", BAD, "--local-scheduler"], 40),
    "luigi RangeDaily": ([*LUIGI, "RangeDaily", "--of", "DailyPipeline", "--start", BAD, "--stop", "2025-12-20",
                          "--local-scheduler"], 40),
    "summary": ([*PIPELINE, "summary", "--date", BAD], 2),
    "report": ([*PIPELINE, "report", "--date", BAD], 2),
    "restate": ([*PIPELINE, "restate", "--date", BAD], 2),
    "reenable": ([*PIPELINE, "reenable", "--date", BAD], 2),
    "freshness": ([*PIPELINE, "freshness", "--now", BAD], 2),
    "generate": ([sys.executable, "-m", "devtools.generate", BAD, "1"], 2),
    "demo": ([sys.executable, "-m", "devtools.demo", "--start", BAD], 2),
}


def _run(command: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    base.update(ECOMM_DATA_DIR=str(tmp_path / "incoming"), ECOMM_LAKE_DIR=str(tmp_path / "lake"), **(env or {}))
    return subprocess.run(command, cwd=REPO, env=base, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_bad_date_is_one_line_and_an_exit_code(name: str, tmp_path: Path) -> None:
    command, code = COMMANDS[name]
    result = _run(command, tmp_path)
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert BAD in lines[0] and "YYYY-MM-DD" in lines[0], lines[0]
    assert not (tmp_path / "lake").exists(), "nothing ran"


def test_a_run_that_cannot_reach_luigid_says_what_to_do_without_tracebacks(tmp_path: Path) -> None:
    """The daily command without --local-scheduler and no `make luigid`: Luigi's retries stay (luigid may be
    restarting), each one line saying what to do; the failure is one line, not two chains of tracebacks."""
    from tests.support.processes import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused, as when luigid is not running
    config = tmp_path / "operator.cfg"
    config.write_text(f"[core]\nscheduler_url = {url}\nrpc-retry-attempts = 2\nrpc-retry-wait = 0\n")
    result = _run([*LUIGI, "DailyPipeline", "--date", "2025-12-15"], tmp_path,
                  {"LUIGI_CONFIG_PATH": str(config), "ECOMM_PG_DSN": "postgresql://postgres@127.0.0.1:1/nowhere"})
    assert result.returncode == 40, result.stderr
    assert "Traceback" not in result.stderr and "NoneType: None" not in result.stderr, result.stderr
    said = f"the central scheduler at {url} does not answer: start it (`make luigid` in a checkout, `luigid" \
           " --address 127.0.0.1 --port <its port>` where the package is installed), or run without it: add" \
           " --local-scheduler to the command"
    retries = [line for line in result.stderr.splitlines() if line.startswith("WARNING: the central scheduler")]
    assert retries and all(line == f"WARNING: {said} (retrying)" for line in retries), result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("ERROR")] == [f"ERROR: {said}"], \
        result.stderr
    assert not (tmp_path / "lake").exists(), "nothing ran"


def test_summary_with_start_after_stop_is_an_error(tmp_path: Path) -> None:
    for start, stop in (("2025-12-20", "2025-12-13"), ("2025-12-13", "2025-12-13")):
        result = _run([*PIPELINE, "summary", "--start", start, "--stop", stop], tmp_path)
        assert result.returncode == 2 and result.stdout == "", result.stdout
        assert result.stderr.count("\n") == 1 and "--stop is exclusive" in result.stderr, result.stderr


def test_the_generator_help_states_each_default_and_the_docs_state_them_too(tmp_path: Path) -> None:
    from devtools.generate import _parser

    help_text = " ".join(_run([sys.executable, "-m", "devtools.generate", "--help"], tmp_path).stdout.split())
    docs = (REPO / "docs" / "operations.md").read_text()
    section = docs.split("## Sample data", 1)[1].split("\n## ", 1)[0]
    for action in _parser()._actions:
        if action.default is None or action.dest in ("help", "verbose", "start", "days"):
            continue
        option = action.option_strings[-1]
        assert f"(default: {action.default}" in help_text, option
        assert re.search(rf"`{option} ([^`]*)`[^|\n]*\|[^|\n]*\b{re.escape(str(action.default))}\b", section), \
            f"docs/operations.md, Sample data: {option} and its default {action.default}"


def test_make_luigid_prints_its_url_and_the_metrics_url() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\nluigid:", 1)[1].split("\n\n", 1)[0]
    echo = next(line for line in recipe.splitlines() if line.strip().startswith("@echo"))
    printed = " ".join(shlex.split(echo.strip()[1:])[1:])
    assert "http://127.0.0.1:8082" in printed and "http://127.0.0.1:8082/metrics" in printed


def test_make_runs_from_a_checkout_whose_path_has_a_space(tmp_path) -> None:
    """`make setup` without uv on PATH (the README's route) ran `/tmp/check out/.tools/bin/uv` unquoted: bash ran
    `/tmp/check`, Error 127; `make clean` gave the embedded Postgres's stop `out/.pgdata` as a command."""
    checkout = tmp_path / "check out"
    (checkout / ".pgdata").mkdir(parents=True)
    shutil.copy(REPO / "Makefile", checkout / "Makefile")
    env = {**os.environ, "PATH": "/usr/local/bin:/usr/bin:/bin"}  # no uv: make installs it into .tools
    assert not shutil.which("uv", path=env["PATH"]), "this test needs a PATH without uv"
    printed = {target: subprocess.run(["make", "-n", target], cwd=checkout, env=env, capture_output=True, text=True,
                                      timeout=60, check=True).stdout.splitlines() for target in ("setup", "clean")}
    sync = [shlex.split(line) for line in printed["setup"] if " sync " in line]
    assert sync and all((checkout / words[0]).resolve() == checkout / ".tools" / "bin" / "uv" for words in sync), \
        printed["setup"]
    stop = next(shlex.split(line) for line in printed["clean"] if "pipeline.serving.pg stop" in line)
    assert f"ECOMM_PG_DATA={checkout}/.pgdata" in stop, stop


def test_the_embedded_server_leaves_no_lock_file_beside_its_data_dir(embedded_server: EmbeddedServer) -> None:
    # `.pgdata` in the checkout: a lock file beside it was `..pgdata.lock` in the repository root
    assert sorted(os.listdir(embedded_server.data_dir.parent)) == [embedded_server.data_dir.name]


def test_the_summary_accounts_for_quarantined_duplicate_and_rejected_rows() -> None:
    from pipeline.tasks import summary

    day = summary.DateSummary(
        date=dt.date(2025, 12, 15), raw={"orders": 3000, "events": 30000}, staged={"orders": 2956, "events": 29619},
        quarantined={"orders": 39, "events": 327}, duplicates={"orders": 5, "events": 54},
        rejected={"orders": 2, "events": 0}, facts={"orders": 2956, "events": 29619},
        published={"orders": 2956, "events": 29619, "runtime": 5.0}, checks={"pass": 76, "warn": 0, "fail": 0, "error": 0},
        status="published", seconds=5.2, failures=[])
    text = summary.render([day])
    assert "dropped = quarantined+duplicates+rejected lines" in text
    row = next(line for line in text.splitlines() if line.startswith("2025-12-15"))
    assert "3000>2956>2956>2956  39+5+2" in row and "30000>29619>29619>29619  327+54+0" in row
    assert 3000 == 2956 + 39 + 5, "raw = staged + quarantined + duplicates: nothing hidden"


def test_the_demo_prints_no_table_wider_than_a_terminal() -> None:
    from devtools import demo

    columns = ["run_date", *(f"{kind}_{source}_count" for source in ("orders", "events")
                             for kind in ("raw", "staging", "fact", "quarantined", "duplicate")), "dq_failed_count"]
    rows = [(dt.date(2025, 12, 13) + dt.timedelta(days=i), *range(len(columns) - 1)) for i in range(7)]
    text = demo._table(columns, rows)
    assert max(len(line) for line in text.splitlines()) <= demo.MAX_WIDTH
    for column in columns[1:]:
        assert text.count(column) >= 1, column
    assert all(str(day) in text for day, *_ in rows)


# ------------------------------------------------------------------------------------ freshness
def _publish_log(target: Target, days: list[dt.date]) -> None:
    from pipeline.serving import migrations

    with psycopg.connect(target.dsn, autocommit=True) as conn:
        migrations.apply_schema(conn)
        for day in days:
            conn.execute("insert into audit.publish_log (load_date, fact_orders_rows, fact_events_rows)"
                         " values (%s, 1, 1)", [day])


def test_freshness_names_the_latest_date_and_exits_for_a_monitor(fresh_db: Target, tmp_path: Path) -> None:
    env = {"ECOMM_PG_DSN": fresh_db.dsn}
    check = lambda *args: _run([*PIPELINE, "freshness", *args], tmp_path, env)  # noqa: E731
    nothing = check("--now", "2025-12-20T12:00")
    assert nothing.returncode == 1 and nothing.stdout.startswith("STALE: no load date is published"), nothing.stdout

    _publish_log(fresh_db, [dt.date(2025, 12, 18), dt.date(2025, 12, 19)])
    fresh = check("--now", "2025-12-20T12:00")  # 12 h after the end of 2025-12-19
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert fresh.stdout.startswith("FRESH: the latest published load date is 2025-12-19") and "12.0 h" in fresh.stdout

    stale = check("--now", "2025-12-21T13:00")  # 37 h after: over the default 36
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert stale.stdout.count("\n") == 1 and "STALE: the latest published load date is 2025-12-19" in stale.stdout
    # the catch-up command works as printed on a machine without luigid (the README's form)
    assert "[freshness] max_age_hours" in stale.stdout
    assert "`luigi --module pipeline.tasks DailyPipeline --date 2025-12-20 --local-scheduler`" in stale.stdout
    months = check("--now", "2026-03-02T13:00")  # a long catch-up: a month at a time, as the docs advise
    assert months.stdout.rstrip().endswith("catch up with a month at a time, from `luigi --module pipeline.tasks"
                                           " RangeDaily --of DailyPipeline --start 2025-12-20 --stop 2026-01-01"
                                           " --local-scheduler`"), months.stdout
    assert check("--now", "2025-12-21T13:00", "--max-age-hours", "48").returncode == 0
    tighter = check("--now", "2025-12-21T13:00", "--max-age-hours", "30")
    assert tighter.returncode == 1 and "over the limit of 30 h (--max-age-hours);" in tighter.stdout, tighter.stdout
    negative = tmp_path / "negative.cfg"
    negative.write_text("[freshness]\nmax_age_hours = -1\n")
    refused = _run([*PIPELINE, "freshness"], tmp_path, {**env, "LUIGI_CONFIG_PATH": str(negative)})
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert refused.stderr == "UNKNOWN: [freshness] max_age_hours = -1 is negative: fix it in luigi.cfg\n"
    negative.write_text("[freshness]\nmax_age_hours = abc\n")  # was "the command was rejected", exit 1: STALE
    unreadable = _run([*PIPELINE, "freshness"], tmp_path, {**env, "LUIGI_CONFIG_PATH": str(negative)})
    assert (unreadable.returncode, unreadable.stdout) == (3, ""), unreadable.stdout + unreadable.stderr
    assert unreadable.stderr == ("UNKNOWN: [freshness] max_age_hours = 'abc' is not valid (expected a number): fix it"
                                 " in luigi.cfg (or in the file LUIGI_CONFIG_PATH names), or remove it for the"
                                 " default\n")

    down = _run([*PIPELINE, "freshness"], tmp_path, {"ECOMM_PG_DSN": "postgresql://postgres@127.0.0.1:1/nowhere"})
    assert down.returncode == 3 and down.stderr.startswith("UNKNOWN: cannot read audit.publish_log"), down.stderr

    # the age counts from midnight in the business time zone; a zone that is none is a setting to fix,
    # not a stale date (exit 3, one line, as a monitor reads it)
    zoned = tmp_path / "zone.cfg"
    for zone, code, line in (("America/New_York", 0, "FRESH: the latest published load date is 2025-12-19"),
                             ("Europe/Atlantis", 3, "UNKNOWN: [model] business_timezone = 'Europe/Atlantis' is not")):
        zoned.write_text(f"[model]\nbusiness_timezone = {zone}\n")
        answer = _run([*PIPELINE, "freshness", "--now", "2025-12-20T12:00"], tmp_path,
                      {**env, "LUIGI_CONFIG_PATH": str(zoned)})
        assert answer.returncode == code, answer.stdout + answer.stderr
        said = (answer.stdout + answer.stderr).strip()
        assert said.startswith(line) and "\n" not in said and "Traceback" not in said, said
        assert code or "7.0 h after its end" in said  # 2025-12-19 ended at 05:00 UTC in New York

    # the docs' crontab line: cron mails its output (and ignores the exit code), so it prints exactly when not fresh
    cron = re.search(r"`0 13 \* \* \* cd /srv/ecomm && \.venv/bin/python (-m pipeline freshness[^`]*)`",
                     (REPO / "docs" / "operations.md").read_text()).group(1)
    for now, mailed in (("2025-12-20T12:00", ""), ("2025-12-21T13:00", "STALE: the latest published load date is")):
        line = _run(["sh", "-c", f"{shlex.quote(sys.executable)} {cron} --now {now}"], tmp_path, env)
        assert (line.stdout + line.stderr).startswith(mailed) and bool(mailed) == bool(line.stdout + line.stderr), \
            (cron, now, line.stdout, line.stderr)

    # a date published on its own day (a backfill whose --stop is after today runs today too): not "-6.0 h after"
    _publish_log(fresh_db, [dt.date(2025, 12, 21)])
    today = check("--now", "2025-12-21T18:00")
    assert today.returncode == 0 and "2025-12-21 (published" in today.stdout, today.stdout + today.stderr
    assert today.stdout.rstrip().endswith("6.0 h before its end (the day is not over) (limit 36 h)"), today.stdout


def test_freshness_under_a_day_does_not_advise_a_date_that_is_not_over(fresh_db: Target, tmp_path: Path) -> None:
    """With a limit under a day, yesterday published and stale: the catch-up was `DailyPipeline --date <today>`,
    which refuses a day that is not over (exit 40)."""
    _publish_log(fresh_db, [dt.date(2025, 12, 19)])
    stale = _run([*PIPELINE, "freshness", "--now", "2025-12-20T12:00", "--max-age-hours", "6"], tmp_path,
                 {"ECOMM_PG_DSN": fresh_db.dsn})
    assert stale.returncode == 1 and "--date 2025-12-20" not in stale.stdout, stale.stdout + stale.stderr
    assert stale.stdout.rstrip().endswith("; the next, 2025-12-20, can run from 2025-12-21 00:00 UTC"
                                          " (2025-12-21 00:00 UTC)"), stale.stdout


def test_postgres_unreachable_is_announced_once_with_the_retry_plan(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from pipeline.serving import retry
    from tests.support.processes import free_port

    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    ask = lambda: psycopg.connect(dead, connect_timeout=5)  # noqa: E731 - a real refused connection
    with caplog.at_level(logging.INFO, logger="pipeline.serving.retry"):
        assert retry.unless_unreachable(ask, False, "fact_orders of 2025-12-15 counts as not preloaded") is False
        assert retry.unless_unreachable(ask, False, "no date counts as published") is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert "Connection refused" in warnings[0] and "The lake steps (land, stage, model, gate) go on" in warnings[0]
    assert "will try 4 time(s), 30s, 60s, 120s apart (about 210s in all)" in warnings[0], warnings[0]


def test_each_failure_kind_maps_to_its_runbook_entry(tmp_path: Path) -> None:
    import errno

    from pipeline.ingest import catalog_api, incoming, landing
    from pipeline.quality.results import ChecksVariableUnknown, NoChecksParsed
    from pipeline.quality.serving_reconciliation import ServingMismatch
    from pipeline.serving.migrations import MigrationChanged, MigrationError, MigrationNotPermitted
    from pipeline.tasks import late_catalogs, runbook

    cases = {
        incoming.SourceFileMissing("orders for 2025-12-15: expected x"): "missing file",
        incoming.UnexpectedSourceFiles("two files"): "invalid file",
        landing.SourceChanged("orders changed"): "changed source file",
        late_catalogs.CatalogArrivedLate("the products snapshot of 2025-12-15 arrived after"): "late catalog snapshot",
        incoming.SourceNotReady("no marker"): "not ready",
        OSError(errno.ENOSPC, "No space left on device"): "disk full",
        catalog_api.CatalogApiTransientError("GET x failed 4 times, last: HTTP 503"): "catalog API failing",
        catalog_api.CatalogApiBadResponse("x/products: the API returned no records"): "catalog API failing",
        catalog_api.CatalogChangedWhileRead("GET x: total=189, the first page said total=194"):
            "catalog changing while read",
    }
    try:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{_free_port()}/x", connect_timeout=5)
    except psycopg.OperationalError as err:
        cases[err] = "Postgres down"
    import duckdb

    from pipeline.lake import sqlrun

    with duckdb.connect() as con:  # a real out-of-memory error: the setting's, whichever step meets it
        con.execute("set memory_limit = '2MB'")
        with pytest.raises(duckdb.OutOfMemoryException) as caught:
            con.execute("select count(distinct i::varchar) from range(3000000) t(i)")
    cases[caught.value] = "DuckDB out of memory"
    cases[sqlrun.out_of_memory(caught.value)] = "DuckDB out of memory"
    cases.update({
        incoming.SourceFileCompressed("a zip"): "invalid file",
        incoming.UnsafeSourcePath("a link"): "invalid file",
        landing.ManifestUnreadable("x/_manifest.json cannot be read"): "broken manifest",
        ServingMismatch("the serving tables do not match the lake"): "serving mismatch",
        ChecksVariableUnknown("checks/warehouse/x.yml uses ${y}, which no setting gives"): "checks file",
        NoChecksParsed("checks/warehouse/x.yml parsed to zero checks"): "checks file",
        MigrationNotPermitted("sql/serving/041_x.sql: must be owner of table daily_metrics"): "schema migration",
        MigrationError('sql/serving/900_x.sql: relation "no_such_table" does not exist'): "migration failed",
        MigrationChanged("041_x.sql was applied (as 041_x) but has changed since; ..."): "migration failed",
        psycopg.errors.InsufficientPrivilege("permission denied for schema audit"): "Postgres permission denied",
    })
    for text, kind in {
        "PublishError: publishing 2025-12-15 failed: ...: permission denied for table publish_log; it was rolled back":
            "Postgres permission denied",
        "PublishError: publishing 2025-12-15 failed: ...: terminating connection due to administrator command":
            "Postgres down",
        "PermissionError: [Errno 13] Permission denied: '/data/incoming/orders/2025-12-15/orders.json'": None,
    }.items():
        assert getattr(runbook.remedy_for_text(text), "kind", None) == kind, text
    for error, kind in cases.items():
        assert runbook.remedy_for(error).kind == kind, error
        # the run summary reads the run audit's `<ErrorClass>: <message>`: a subclass names its base's entry too
        assert runbook.remedy_for_text(f"{type(error).__name__}: {error}").kind == kind, error
        text = runbook.explain("LandOrders", dt.date(2025, 12, 15), error)
        assert text.splitlines()[1].startswith(f"What to do ({kind}):") and "<date>" not in text
    missing = incoming.SourceFileMissing("orders for 2025-12-15: expected x")
    central = runbook.explain("LandOrders", dt.date(2025, 12, 15), missing)
    local = runbook.explain("LandOrders", dt.date(2025, 12, 15), missing, local_scheduler=True)
    assert central.splitlines()[1].endswith("`luigi --module pipeline.tasks DailyPipeline --date 2025-12-15`; luigid"
                                            " disabled the failed task: first `python -m pipeline reenable --date"
                                            " 2025-12-15` (or run the date with --local-scheduler)")
    assert local.splitlines()[1].endswith("`luigi --module pipeline.tasks DailyPipeline --date 2025-12-15"
                                          " --local-scheduler`")
    # the gate's fix reruns the date in words ("rerun it with"): through luigid, which disabled the gate, it too
    # re-enables first; without luigid it stays as it was
    said = ["fail: measured 75; ... to publish the date as it is, rerun it with --checks-lost-fail-pct 100."]
    gate = runbook.gate_fix(dt.date(2025, 12, 15), said)
    assert gate.endswith("rerun it with `--checks-lost-fail-pct 100`; luigid disabled the failed task: first `python -m"
                         " pipeline reenable --date 2025-12-15` (or run the date with --local-scheduler)"), gate
    assert runbook.gate_fix(dt.date(2025, 12, 15), said, local_scheduler=True).endswith(
        "a day that really is unusual: rerun it with `--checks-lost-fail-pct 100`")
    assert runbook.remedy_for(ValueError("something else")) is None
    assert runbook.remedy_for_text("OperationalError: connection failed: ... Connection refused").kind == "Postgres down"
    assert runbook.remedy_for_text('OperationalError: FATAL:  database "x" does not exist').kind == "Postgres refuses"


def _free_port() -> int:
    from tests.support.processes import free_port

    return free_port()
