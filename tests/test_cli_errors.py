"""`python -m pipeline ...`: a known user error is one line on stderr and an exit code, never a traceback.

2 is a bad command line (as argparse); 3 is a command that did nothing because the serving Postgres
cannot be reached, for `compact-serving`, `rebuild-marts`, `schema-doc` and `report` as for `rebuild-serving`.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config
from tests.support.paths import REPO, SEED_INCOMING
from tests.support.postgres import PG_ENV
from tests.support.processes import free_port

PIPELINE = [sys.executable, "-m", "pipeline"]
LUIGI = [sys.executable, "-m", "luigi", "--module", "pipeline.tasks"]


def _run(args: list[str], tmp_path: Path, command: list[str] = PIPELINE, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    base.update({"ECOMM_DATA_DIR": str(tmp_path / "incoming"), "ECOMM_LAKE_DIR": str(tmp_path / "lake"), **env})
    return subprocess.run([*command, *args], cwd=REPO, env=base, capture_output=True, text=True, timeout=120,
                          check=False)


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "prefix"), [(["compact-serving"], "compact-serving: "), (["schema-doc"], "error: "),
                                            (["report", "--date", "2025-12-15"], "error: "), (["migrate"], ""),
                                            (["rebuild-marts"], "rebuild-marts: ")])
def test_postgres_unreachable_is_one_line_and_exit_3(tmp_path: Path, args: list[str], prefix: str) -> None:
    port = free_port()
    down = _run(args, tmp_path, ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{port}/nowhere")
    assert down.returncode == 3, down.stderr
    line = _one_line(down)
    assert line.startswith(f"{prefix}cannot reach the serving Postgres (user=postgres dbname=nowhere"
                           f" host=127.0.0.1 port={port}): ") and line.endswith("; start it or set ECOMM_PG_DSN"), line
    # the embedded server cannot even be started: its data directory cannot be made
    (tmp_path / "a-file").write_text("")
    no_server = _run(args, tmp_path, ECOMM_PG_DATA=str(tmp_path / "a-file" / "pgdata"))
    assert no_server.returncode == 3, no_server.stderr
    assert _one_line(no_server).startswith(f"{prefix}cannot reach the serving Postgres (the embedded server):")


@pytest.mark.parametrize(("args", "prefix"), [(["compact-serving"], "compact-serving: "), (["schema-doc"], "error: "),
                                            (["report", "--date", "2025-12-15"], "error: "), (["migrate"], ""),
                                            (["rebuild-marts"], "rebuild-marts: ")])
def test_a_database_that_does_not_exist_is_not_told_to_be_started(tmp_path: Path, embedded_server, args: list[str],
                                                                  prefix: str) -> None:
    """The server answers and refuses the database (ECOMM_PG_DSN naming a new one not created yet): "start it"
    was wrong advice for a server that is up; the line says the setting and the database to create."""
    dsn = embedded_server.dsn("not_created_yet")
    refused = _run(args, tmp_path, ECOMM_PG_DSN=dsn)
    assert refused.returncode == 3, refused.stderr
    line = _one_line(refused)
    assert line.startswith(f"{prefix}the serving Postgres (") and 'database "not_created_yet" does not exist' in line, line
    assert "start it" not in line and "(a database that does not exist yet: create it first" in line, line


def test_schema_doc_check_of_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Refused before Postgres is asked anything: here there is none to ask."""
    missing = tmp_path / "missing.md"
    for option in ("--check", "--write"):
        done = _run(["schema-doc", option, str(missing)], tmp_path,
                    ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
        assert done.returncode == 2, done.stderr
        assert _one_line(done) == (f"python -m pipeline schema-doc: error: {option} {missing}: no such file (it must"
                                   " exist and hold the <!-- schema-doc:start --> and <!-- schema-doc:end --> markers)"
                                   " (see --help)")
    assert not missing.exists()


@pytest.mark.parametrize("command", ["summary", "reenable"])
def test_date_with_start_or_stop_is_one_line_and_exit_2(command: str, tmp_path: Path) -> None:
    """--date and a range exclude each other: neither is silently ignored."""
    for extra in (["--start", "2025-12-13"], ["--stop", "2025-12-20"],
                  ["--start", "2025-12-13", "--stop", "2025-12-20"]):
        done = _run([command, "--date", "2025-12-15", *extra], tmp_path)
        assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
        given = " and ".join(f"{extra[i]} {extra[i + 1]}" for i in range(0, len(extra), 2))
        assert _one_line(done) == (f"python -m pipeline {command}: error: --date 2025-12-15 and {given} exclude each"
                                   " other: give --date, or --start and --stop (see --help)")


@pytest.mark.parametrize("command", ["summary", "reenable"])
def test_a_range_of_thousands_of_years_is_refused_at_once(command: str, tmp_path: Path) -> None:
    """`--stop 9999-12-31` (a typo of the year) walked every date up to it, for longer than anyone waits."""
    done = _run([command, "--start", "0001-01-01", "--stop", "9999-12-31"], tmp_path)
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert _one_line(done) == (f"python -m pipeline {command}: error: --start 0001-01-01 --stop 9999-12-31 spans"
                               " 3652058 days; at most 3650 at a time (see --help)")


@pytest.mark.parametrize(("args", "why"), [
    (["--from", "2025-12-20", "--to", "2025-12-10"], "--from 2025-12-20 is after --to 2025-12-10"),
    (["--from", "2025-13-01"], "argument --from: '2025-13-01' is not a valid date: expected YYYY-MM-DD, e.g. 2025-12-15"
                               " (month must be in 1..12)"),
], ids=["reversed", "bad-date"])
def test_rebuild_serving_rejects_a_bad_range_with_one_line(tmp_path: Path, args: list[str], why: str) -> None:
    """As every `python -m pipeline` command: no usage block above the error; nothing is asked of Postgres."""
    done = _run(["rebuild-serving", *args], tmp_path, ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert _one_line(done) == f"python -m pipeline rebuild-serving: error: {why} (see --help)"


@pytest.mark.parametrize(("command", "line"), [
    ([*PIPELINE, "sumary", "--date", "2025-12-15"],
     "python -m pipeline: error: 'sumary' is not a command; the commands: summary, freshness, reenable, report,"
     " schema-doc, restate, migrate, rebuild-serving, rebuild-marts, compact-serving (see --help)"),
    ([*PIPELINE, "migrate", "--dry-run"], "python -m pipeline migrate: error: unrecognized arguments: --dry-run (see --help)"),
    ([sys.executable, "-m", "pipeline.lake.views", "--lake"],
     "python -m pipeline.lake.views: error: argument --lake: expected one argument (see --help)"),
], ids=["unknown-command", "migrate", "lake-views"])
def test_a_mistyped_command_or_option_is_one_line_and_exit_2(tmp_path: Path, command: list[str], line: str) -> None:
    """An unknown command printed the help on stdout (exit 2, not saying what was wrong); migrate and the
    lake views printed argparse's usage block above the error."""
    done = _run([], tmp_path, command)
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert _one_line(done) == line


def test_a_bad_run_id_stops_the_luigi_command_with_one_line(tmp_path: Path) -> None:
    """ECOMM_RUN_ID is read as `luigi --module pipeline.tasks` imports the tasks: exit 40, as a bad --date."""
    done = _run(["DailyPipeline", "--date", "2025-12-15", "--local-scheduler"], tmp_path, LUIGI,
                ECOMM_RUN_ID="bad id!")
    assert done.returncode == 40, done.stderr
    assert _one_line(done) == ("ERROR: the command was rejected: ECOMM_RUN_ID='bad id!' is not a run id: use 1-64"
                               " letters, digits or _, or unset it (each run then gets its own)")
    assert not (tmp_path / "lake").exists(), "nothing ran"


@pytest.mark.parametrize(("args", "settings", "code", "why"), [
    (["DailyPipeline"], "", 40, "DailyPipeline needs --date"),
    (["DailyPipeline", "--date", "2025-12-15", "--workers", "abc"], "", 40,
     "--workers 'abc' is not valid (expected a whole number)"),
    (["DailyPipeline", "--date", "2025-12-15", "--model-late-window-days", "abc"], "", 40,
     "--model-late-window-days 'abc' is not valid (expected a whole number)"),  # as typed: not --late-window-days
    # every section a date's run reads is read before anything runs: a value the preloads read (--publish-...)
    # failed them after landing, staging and the models (exit 30, `publish[args=(), kwargs={}]: Error when ...`)
    *[(["DailyPipeline", "--date", "2025-12-15", option, "abc"], "", 40, f"{option} 'abc' is not valid ({why})")
      for option, why in [("--publish-attempts", "expected a whole number"),
                          ("--publish-retry-backoff-seconds", "expected a number"),
                          ("--task-timeouts-land", "expected a whole number"),
                          ("--duckdb-threads", "expected a whole number"),
                          ("--catalog-retry-delay-seconds", "expected a number"),
                          ("--checks-orders-min-rows", "expected a whole number"),
                          ("--postgres-connect-timeout", "expected a whole number")]],
    (["RangeDaily", "--of", "DailyPipeline", "--start", "2025-12-13", "--stop", "2025-12-15", "--publish-attempts",
      "x"], "", 40, "--publish-attempts 'x' is not valid (expected a whole number)"),
    (["DailyPipeline", "--date", "2025-12-15", "--workers", "0"], "", 40,
     "--workers 0 starts no task process, so the run would wait for ever: give 1 or more, or leave it out for the"
     f" default (the machine's cores, at most {config.MAX_DEFAULT_WORKERS})"),
    (["DailyPipeline", "--date", "2025-12-15"], "[core]\nworkers = abc\n", 1,
     "[core] workers = 'abc' is not valid (expected a whole number): fix it in luigi.cfg (or in the file"
     " LUIGI_CONFIG_PATH names), or remove it for the default"),
    (["DailyPipelin", "--date", "2025-12-15"], "", 1, "DailyPipelin: no such task (did you mean DailyPipeline?)"),
    (["RangeDaily", "--of", "DailyPipelin", "--start", "2025-12-13", "--stop", "2025-12-15"], "", 40,
     "--of DailyPipelin: no such task (did you mean DailyPipeline?)"),
    (["RangeDaily", "--of", "DailyPipeline", "--start", "2025-12-16", "--stop", "2025-12-14"], "", 40,
     "--start 2025-12-16 is not before --stop 2025-12-14: the range [start, stop) is empty (--stop is exclusive)"),
    (["RangeDaily", "--of", "DailyPipeline", "--start", "2025-12-15", "--stop", "2025-12-15"], "", 40,
     "--start 2025-12-15 is not before --stop 2025-12-15: the range [start, stop) is empty (--stop is exclusive)"),
], ids=["no-date", "workers-abc", "section-option-abc", "publish-attempts-abc", "publish-backoff-abc",
        "task-timeouts-abc", "duckdb-threads-abc", "catalog-delay-abc", "checks-abc", "postgres-abc",
        "range-publish-attempts-x", "workers-0", "workers-abc-in-a-file", "unknown-task",
        "unknown-of", "start-after-stop",
        "start-is-stop"])
def test_a_luigi_command_line_luigi_cannot_use_is_one_line(tmp_path: Path, args: list[str], settings: str, code: int,
                                                           why: str) -> None:
    """Luigi's own words were a traceback (exit 1 or 35), `DailyPipeline[args=(), kwargs={}]: ...`, or, for
    `--start D --stop D`, nothing at all and exit 0; now one line each, naming what to fix, and no run summary."""
    extra = {}
    if settings:
        (tmp_path / "luigi.cfg").write_text(settings)
        extra["LUIGI_CONFIG_PATH"] = str(tmp_path / "luigi.cfg")
    done = _run([*args, "--local-scheduler"], tmp_path, LUIGI, **extra)
    assert done.returncode == code, done.stderr
    assert _one_line(done) == f"ERROR: the command was rejected: {why} (luigi --help-all lists the options)"
    assert "Run summary" not in done.stdout and not (tmp_path / "lake").exists(), "nothing ran"


@pytest.mark.parametrize(("args", "code"), [(["DailyPipeline", "--help"], 0),
                                            (["DailyPipeline", "--date", "2025-12-15", "--bogus", "1"], 2)],
                         ids=["help", "unknown-option"])
def test_luigi_s_help_and_usage_errors_are_printed_once(tmp_path: Path, args: list[str], code: int) -> None:
    """The run summary at exit parsed the command line again: the usage twice, then an ignored SystemExit."""
    done = _run([*args, "--local-scheduler"], tmp_path, LUIGI)
    assert done.returncode == code, done.stderr
    said = done.stdout + done.stderr
    assert said.count("usage:") == 1 and "Exception ignored" not in said and "Traceback" not in said, said


def test_a_setting_that_is_true_by_default_can_be_turned_off_for_one_run(tmp_path: Path) -> None:
    """`--run-summary-at-exit false` was `unrecognized arguments: false` (exit 2): the option was a flag that
    could only say true, so "any setting can be given on the command line" did not hold for it."""
    command = ["DailyPipeline", "--date", "2025-12-15", "--local-scheduler", "--run-summary-at-exit"]
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"  # not the checkout's embedded server: it may run
    off, on = (_run(args, tmp_path, LUIGI, ECOMM_PG_DSN=dead) for args in ([*command, "false"], command))
    assert off.returncode == on.returncode == 30, off.stderr[-2000:]  # no incoming files: the landing fails
    assert "Run summary" not in off.stdout and "Run summary" in on.stdout, off.stdout


def test_a_date_after_today_is_rejected_before_anything_runs(tmp_path: Path) -> None:
    """A typo in the year would land the catalog API's snapshot of a week to come, then fail on the missing files."""
    later = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=2)  # after today in any time zone
    done = _run(["DailyPipeline", "--date", str(later), "--local-scheduler"], tmp_path, LUIGI)
    assert done.returncode == 40, done.stderr
    assert _one_line(done).startswith(f"ERROR: the command was rejected: --date {later} is after today (")
    # a backfill from a date after today (no --stop: up to today) ran nothing and exited 0
    backfill = _run(["RangeDaily", "--of", "DailyPipeline", "--start", str(later), "--local-scheduler"], tmp_path, LUIGI)
    assert backfill.returncode == 40, backfill.stderr
    assert _one_line(backfill).startswith(f"ERROR: the command was rejected: --start {later} is after today (")
    restate = _run(["restate", "--date", str(later)], tmp_path)
    assert restate.returncode == 2, restate.stderr
    assert f"argument --date: {later} is after today (" in _one_line(restate)
    assert not (tmp_path / "lake").exists(), "nothing ran"
    # today is a business date: a zone that is none rejects the command as it would fail the staging
    zone = tmp_path / "zone.cfg"
    zone.write_text("[model]\nbusiness_timezone = Europe/Atlantis\n")
    done = _run(["DailyPipeline", "--date", "2025-12-15", "--local-scheduler"], tmp_path, LUIGI,
                LUIGI_CONFIG_PATH=str(zone))
    assert done.returncode == 40, done.stderr
    assert _one_line(done).startswith("ERROR: the command was rejected: [model] business_timezone = 'Europe/Atlantis'"
                                      " is not an IANA time zone name; set it in luigi.cfg")
    assert not (tmp_path / "lake").exists(), "nothing ran"


def test_today_is_a_date_to_run_in_the_business_time_zone(luigi_settings) -> None:
    now = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.timezone.utc)
    assert config.business_date(now) == dt.date(2026, 3, 1)
    luigi_settings("model", business_timezone="Pacific/Kiritimati")  # UTC+14: already tomorrow
    assert config.business_date(now) == dt.date(2026, 3, 2)
    today = config.business_date()
    assert config.not_after_today(today) == today
    with pytest.raises(ValueError, match="is after today"):
        config.not_after_today(today + dt.timedelta(days=1))


def test_a_lake_that_cannot_be_one_is_named_in_one_line_not_in_tracebacks(tmp_path: Path) -> None:
    """A file where the lake's folder should be, or an s3:// URL without its bucket: each task said so in a
    traceback."""
    (tmp_path / "lake.parquet").write_bytes(b"PAR1")
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    for value, said in ((str(tmp_path / "lake.parquet"), "is a file, not a folder"), ("s3://", "names no bucket"),
                        ("gs://bucket/lake", "is not a lake the pipeline can write"),  # was a local folder "gs:"
                        ("s3a://bucket/lake", "is not a lake the pipeline can write")):
        done = _run(["DailyPipeline", "--date", "2025-12-15", "--local-scheduler"], tmp_path, LUIGI,
                    ECOMM_LAKE_DIR=value, ECOMM_PG_DSN=dead)
        assert done.returncode == 35 and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert f"ECOMM_LAKE_DIR={value!r} {said}" in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(f"no run summary: ECOMM_LAKE_DIR={value!r} {said}")
        summary = _run(["summary", "--date", "2025-12-15"], tmp_path, ECOMM_LAKE_DIR=value)
        assert summary.returncode == 35, "a setting's code, as the daily run's"
        assert _one_line(summary).startswith(f"python -m pipeline summary: error: ECOMM_LAKE_DIR={value!r} {said}")


def test_an_empty_lake_or_data_folder_setting_is_refused_not_the_current_directory(tmp_path: Path) -> None:
    """`[paths] lake_dir =` (empty) made the current directory the lake: a run from another directory then found
    none there and started a second lake, while Postgres served the dates of the first."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    for option in ("lake_dir", "data_dir"):
        cfg = tmp_path / f"{option}.cfg"
        cfg.write_text(f"[paths]\n{option} =\n")
        env = {"LUIGI_CONFIG_PATH": str(cfg), "ECOMM_PG_DSN": dead, f"ECOMM_{option.upper()}": ""}
        done = _run(["DailyPipeline", "--date", "2025-12-15", "--local-scheduler"], tmp_path, LUIGI, **env)
        assert done.returncode == 35 and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert f"[paths] {option} is empty: name " in done.stderr, done.stderr[-3000:]
    assert not (REPO / "raw").exists() and not (REPO / "warehouse").exists()


def test_a_task_failure_the_runbook_knows_is_one_line_and_a_bug_keeps_its_traceback(tmp_path: Path) -> None:
    """A missing file is the operator's to fix: Luigi's "failed" line names the error, with no traceback (the
    run summary says what to do). An error the runbook does not know (here one injected at a partition's
    rename) is a bug: its traceback stays."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    missing = _run(["DailyPipeline", "--date", "2025-12-15", "--local-scheduler"], tmp_path, LUIGI, ECOMM_PG_DSN=dead)
    assert missing.returncode == 30 and "Traceback" not in missing.stderr, missing.stderr[-3000:]
    expected = str(tmp_path / "incoming" / "orders" / "2025-12-15" / "orders.json")
    assert f" failed    LandOrders(date=2025-12-15): SourceFileMissing: orders for 2025-12-15: expected {expected}\n" \
        in missing.stderr, missing.stderr[-3000:]

    shutil.copytree(SEED_INCOMING, tmp_path / "incoming", dirs_exist_ok=True)
    bug = _run(["LandOrders", "--date", "2025-12-15", "--local-scheduler"], tmp_path, LUIGI, ECOMM_PG_DSN=dead,
               ECOMM_FAULT="lake.promote:raise")
    assert bug.returncode == 30 and "Traceback (most recent call last)" in bug.stderr, bug.stderr[-3000:]
    assert " failed    LandOrders(date=2025-12-15)\n" in bug.stderr and "FaultInjected" in bug.stderr


def test_a_catalog_url_that_is_no_http_url_is_named_as_the_setting(tmp_path: Path) -> None:
    """The API client's own error ("base_url must be an http(s) URL") did not say which setting to fix; it is refused
    with the settings, before any task runs (it was found by StageProducts, after the orders and events were landed)."""
    done = _run(["DailyPipeline", "--date", "2025-12-15", "--local-scheduler"], tmp_path, LUIGI,
                ECOMM_PRODUCTS_URL="dummyjson.com/products",
                ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    assert done.returncode == 35, done.stderr[-3000:]
    said = "ECOMM_PRODUCTS_URL='dummyjson.com/products' is not an http(s) URL of a DummyJSON-style API"
    lines = [line for line in done.stderr.splitlines() if "is not an http(s) URL" in line or "base_url" in line]
    assert lines and all(line.startswith(("WARNING: Will not run ", "no run summary: ")) for line in lines), lines
    assert any(line.startswith("WARNING: Will not run DailyPipeline(date=2025-12-15)") and said in line
               for line in lines)
    assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").rglob("*.parquet")), "nothing was landed"
    assert done.stderr.strip().splitlines()[-1].startswith(f"no run summary: {said}")


def test_a_failed_login_is_named_by_its_error_not_by_libpq_s_last_line() -> None:
    """A password from a pgpass file that the server refuses: libpq ends the error's message with a line of its
    own, `password retrieved from file "..."`. The error is still one line with its runbook entry, in the log and
    in the run summary, not a traceback and "could not be scheduled: password retrieved from file"."""
    import logging

    from pipeline.tasks import cli_errors, runbook, unscheduled

    failed = ('connection failed: connection to server at "127.0.0.1", port 19144 failed: FATAL:  password'
              ' authentication failed for user "ecomm_pipeline"')
    head = ("Will not run DailyPipeline(date=2025-12-17) or any dependencies due to error in complete() method:")
    trace = ('Traceback (most recent call last):\n  File "pipeline/serving/pg.py", line 112, in connect\n'
             "    return psycopg.connect(target, **params)\n"
             f'psycopg.OperationalError: {failed}\npassword retrieved from file "/tmp/etl/pgpass"\n')
    assert unscheduled.error_line(trace) == f"OperationalError: {failed}"
    # a record another filter already made one line (`... method: LakeUnreadable: ...`)
    assert unscheduled.error_line(" LakeUnreadable: the lake folder /x cannot be written") == (
        "LakeUnreadable: the lake folder /x cannot be written")
    assert runbook.remedy_for_text(unscheduled.error_line(trace)).kind == "Postgres refuses"

    record = logging.LogRecord("luigi-interface", logging.WARNING, __file__, 1, f"{head}\n{trace}", None, None)
    unscheduled.Recorder().filter(record)
    assert ("DailyPipeline", f"OperationalError: {failed}") in unscheduled.failures(dt.date(2025, 12, 17))
    cli_errors._BadSettingLine().filter(record)
    assert record.getMessage() == f"{head} OperationalError: {failed}"


def test_an_option_an_environment_variable_overrides_is_said_once(tmp_path: Path) -> None:
    """ECOMM_READY_MARKER beat `--landing-ready-marker` without a word: the run used a value the command did not
    give."""
    done = _run(["DailyPipeline", "--date", "2025-12-15", "--local-scheduler", "--landing-ready-marker", "_READY",
                 "--task-timeouts-stage", "-5"], tmp_path, LUIGI, ECOMM_READY_MARKER="_GO",  # refused: nothing runs
                ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    assert done.returncode == 35, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if "ECOMM_READY_MARKER" in line]
    assert said == ["--landing-ready-marker on the command line is overridden by ECOMM_READY_MARKER, set in the"
                    " environment (it wins): the run uses the variable's value; unset ECOMM_READY_MARKER to use the"
                    " option"], done.stderr[-3000:]
    quiet = _run(["DailyPipeline", "--date", "2025-12-15", "--local-scheduler", "--task-timeouts-stage", "-5"],
                 tmp_path, LUIGI, ECOMM_READY_MARKER="_GO",
                 ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    assert quiet.returncode == 35 and "overridden" not in quiet.stderr, quiet.stderr[-3000:]
