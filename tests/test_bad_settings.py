"""A setting in luigi.cfg that cannot be read: one line naming `[section] option = value`, never a traceback.

`[compaction]` is read by the Publish task after its transaction committed: a bad value there is a
warning and no compaction, not a failed publish. `[checks]` is read while the gate is scheduled: a
bad value stops the run (exit 35) with one line naming it.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.luigi_config import run_with_settings
from tests.support.paths import REPO, SEED_INCOMING
from tests.support.postgres import PG_ENV
from tests.support.processes import free_port
from tests.support.serving import event, order, write_facts

D = dt.date(2025, 12, 14)


@pytest.mark.parametrize(("option", "value", "expected"), [("closed_months", "abc", "expected true or false"),
                                                           ("after_days", "soon", "expected a whole number")])
def test_a_bad_compaction_setting_is_one_warning_and_the_publish_succeeds(
        fresh_db, serving_lake, luigi_settings, caplog: pytest.LogCaptureFixture, option: str, value: str,
        expected: str) -> None:
    from pipeline import tasks
    from pipeline.serving import publish

    luigi_settings("compaction", **{option: value})
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    with caplog.at_level(logging.WARNING, logger="pipeline.serving.compaction"):
        tasks.Publish(date=D, force=True).run()
    assert publish.is_published(D) and tasks.Publish(date=D).complete(), "published and reconciled"
    said = [r.getMessage() for r in caplog.records if r.name == "pipeline.serving.compaction"]
    assert said == [f"automatic compaction of closed months skipped: [compaction] {option} = {value!r} is not valid"
                    f" ({expected}): fix it in luigi.cfg (or in the file LUIGI_CONFIG_PATH names), or remove it for"
                    " the default"], said


def _run_with_settings(tmp_path: Path, settings: str, task: str) -> subprocess.CompletedProcess:
    """`luigi ... <task> --date 2025-12-15 --local-scheduler` with an operator's settings file (LUIGI_CONFIG_PATH)."""
    config = tmp_path / "operator.cfg"
    config.write_text(settings)
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    env.update(LUIGI_CONFIG_PATH=str(config), ECOMM_DATA_DIR=str(SEED_INCOMING), ECOMM_LAKE_DIR=str(tmp_path / "lake"),
               ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    return subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", task, "--date", "2025-12-15",
                           "--local-scheduler"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def test_a_bad_gate_threshold_stops_the_run_with_one_line_naming_it(tmp_path: Path) -> None:
    result = _run_with_settings(tmp_path, "[checks]\nlost_fail_pct = abc\n", "QualityGate")
    assert result.returncode == 35, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    named = [line for line in result.stderr.splitlines() if "[checks] lost_fail_pct" in line]
    assert named == ["WARNING: Will not run QualityGate(date=2025-12-15) or any dependencies due to error in deps()"
                     " method: [checks] lost_fail_pct = 'abc' is not valid (expected a number): fix it in luigi.cfg"
                     " (or in the file LUIGI_CONFIG_PATH names), or remove it for the default"], result.stderr[-3000:]


@pytest.mark.parametrize(("section", "option", "value", "expected"), [
    ("duckdb", "threads", "abc", "expected a whole number"),  # read by the tasks as they ran: LandEvents failed
    ("duckdb", "threads", "-3", "expected 0 or more: 0 is every core"),  # was taken as 0, every core
    ("catalog", "retry_delay_seconds", "5m", "expected a number"),
    ("postgres", "connect_timeout", "soon", "expected a whole number"),
    ("task_timeouts", "land", "1h", "expected a whole number"),
    ("task_timeouts", "stage", "-1", "expected 0 or more: 0 is no limit"),  # killed every staging task at once
])
def test_a_bad_value_in_a_file_stops_the_daily_command_before_any_work(tmp_path: Path, section: str, option: str,
                                                                       value: str, expected: str) -> None:
    """A value only the tasks read failed the first task that read it, after the tasks before it (exit 30)."""
    result = _run_with_settings(tmp_path, f"[{section}]\n{option} = {value}\n", "DailyPipeline")
    assert result.returncode == 35, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    named = [line for line in result.stderr.splitlines() if f"[{section}] {option}" in line]
    assert named[0] == ("WARNING: Will not run DailyPipeline(date=2025-12-15) or any dependencies due to error in"
                        f" complete() method: [{section}] {option} = {value!r} is not valid ({expected}): fix it in"
                        " luigi.cfg (or in the file LUIGI_CONFIG_PATH names), or remove it for the default"), named
    assert not (tmp_path / "lake").exists(), "nothing ran"


def test_a_negative_task_timeout_on_the_command_line_stops_the_daily_command_before_any_work(tmp_path: Path) -> None:
    """`--task-timeouts-stage -5`: Luigi killed every staging task as it started, once the date was landed (exit 30)."""
    config = tmp_path / "operator.cfg"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    env.update(LUIGI_CONFIG_PATH=str(config), ECOMM_DATA_DIR=str(SEED_INCOMING), ECOMM_LAKE_DIR=str(tmp_path / "lake"),
               ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    result = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline", "--date",
                             "2025-12-15", "--local-scheduler", "--task-timeouts-stage", "-5"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 35, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    named = [line for line in result.stderr.splitlines() if "--task-timeouts-stage" in line]
    assert named[0].endswith("error in complete() method: --task-timeouts-stage '-5' is not valid (expected 0 or more:"
                             " 0 is no limit): fix it on the command line, or remove it for the default"), named
    assert not (tmp_path / "lake").exists(), "nothing ran"


WILL_NOT_RUN = "WARNING: Will not run DailyPipeline(date=2025-12-15) or any dependencies due to error in complete() method: "


@pytest.mark.parametrize(("option", "value", "reason"), [
    ("sold_statuses", "paid,shipped", "must list one or more of paid, cancelled, refunded, pending (comma separated);"
                                      " unknown: shipped; fix it in luigi.cfg"),
    ("future_tolerance_hours", "-5", "must be 0 or more; fix it in luigi.cfg"),
    ("late_window_days", "-1", "must be 0 or more; fix it in luigi.cfg"),
])
def test_a_model_value_staging_cannot_use_stops_the_daily_command_before_any_work(tmp_path: Path, option: str,
                                                                                  value: str, reason: str) -> None:
    """Found by the model tasks as they ran: the date was landed and staged, then each failed with a traceback (exit 30)."""
    result = _run_with_settings(tmp_path, f"[model]\n{option} = {value}\n", "DailyPipeline")
    assert result.returncode == 35, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    named = [line for line in result.stderr.splitlines() if f"[model] {option}" in line]
    shown = repr(value) if option == "sold_statuses" else value
    assert named == [f"{WILL_NOT_RUN}[model] {option} = {shown} {reason}"], result.stderr[-3000:]
    assert not (tmp_path / "lake").exists(), "nothing ran"


@pytest.mark.parametrize(("folder", "why"), [
    ("", "empty: the product's own folder"),
    ("partial", "{root} lacks warehouse/dim_user.yml, warehouse/dim_product.yml, warehouse/fact_orders.yml ..."),
])
def test_a_checks_dir_without_the_checks_files_stops_the_daily_command_before_any_work(tmp_path: Path, folder: str,
                                                                                       why: str) -> None:
    """Empty, it was the repository itself: the gate failed on a missing file once the date was modelled (exit 30)."""
    root = tmp_path / folder if folder else None
    if root is not None:  # the staging checks only
        shutil.copytree(REPO / "checks" / "staging", root / "staging")
    result = _run_with_settings(tmp_path, f"[checks]\nchecks_dir = {root or ''}\n", "DailyPipeline")
    assert result.returncode == 35, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    named = [line for line in result.stderr.splitlines() if "[checks] checks_dir" in line]
    assert named == [f"{WILL_NOT_RUN}[checks] checks_dir = {str(root or '')!r} is not a folder of the quality gate's"
                     f" SodaCL files ({why.format(root=root)}): give the folder that holds <layer>/<table>.yml, in"
                     " luigi.cfg (or in the file LUIGI_CONFIG_PATH names), or remove it for the default"], named
    assert not (tmp_path / "lake").exists(), "nothing ran"


def test_thresholds_that_contradict_each_other_stop_a_backfill_before_any_work(tmp_path: Path) -> None:
    """Found at each date's gate, they cost every date its landing, staging and model, then failed them all."""
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    env.update(ECOMM_DATA_DIR=str(SEED_INCOMING), ECOMM_LAKE_DIR=str(tmp_path / "lake"),
               ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    result = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "RangeDaily", "--of",
                             "DailyPipeline", "--start", "2025-12-15", "--stop", "2025-12-17", "--local-scheduler",
                             "--checks-lost-fail-pct", "0.1"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 35, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    reason = ("RangeDaily could not be scheduled: [checks] needs 0 <= lost_warn_pct <= lost_fail_pct <= 100,"
              " got 5.0 and 0.1")
    summary = result.stdout.splitlines()
    for day in ("2025-12-15", "2025-12-16"):  # the summary says why for each date, not a bare "not published"
        row = next(number for number, line in enumerate(summary) if line.startswith(day))
        assert summary[row].endswith("FAILED") and summary[row + 1].strip() == reason, result.stdout
    assert not (tmp_path / "lake" / "raw").exists(), "nothing was landed"


@pytest.mark.parametrize(("option", "value"), [("lock_timeout", "forever"), ("pipeline_lock_timeout", "30 minutes"),
                                               ("maintenance_work_mem", "lots")])
def test_a_bad_postgres_value_of_publish_is_named_before_postgres_sees_it(luigi_settings, option: str,
                                                                          value: str) -> None:
    from pipeline.config import BadSetting
    from pipeline.serving.settings import publish

    luigi_settings("publish", **{option: value})
    with pytest.raises(BadSetting, match=rf"^\[publish\] {option} = '{value}' is not valid \(expected a number and a unit"):
        publish()


def test_postgres_values_take_what_postgres_takes(luigi_settings) -> None:
    from pipeline.serving.settings import publish

    luigi_settings("publish", lock_timeout="1500ms", pipeline_lock_timeout="1 h", maintenance_work_mem="64MB")
    settings = publish()
    assert (settings.lock_timeout, settings.pipeline_lock_timeout, settings.maintenance_work_mem) == (
        "1500ms", "1 h", "64MB")


def test_a_model_setting_that_cannot_be_read_rejects_the_command_naming_it(tmp_path: Path) -> None:
    """The date's check against today reads [model]: Luigi's own error named the class, as if --date were wrong."""
    result = run_with_settings(tmp_path, "[model]\nfuture_tolerance_hours = abc\n", dt.date(2025, 12, 15))
    assert result.returncode == 40, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["ERROR: the command was rejected: [model] future_tolerance_hours = 'abc' is not valid (expected"
                     " a whole number): fix it in luigi.cfg (or in the file LUIGI_CONFIG_PATH names), or remove it for"
                     " the default (luigi --help-all lists the options)"], lines


def test_workers_0_means_the_default_not_a_run_that_waits_for_ever(tmp_path: Path) -> None:
    """Like [duckdb] threads = 0; Luigi itself would start no worker process and never return."""
    result = run_with_settings(tmp_path, "[core]\nworkers = 0\n[duckdb]\nmemory_limit = lots\n", dt.date(2025, 12, 15))
    assert "Running Worker with 0 processes" not in result.stderr
    # and a memory limit DuckDB cannot read stops the run before any task, one line naming it, not a parser traceback
    # (each task found it as it opened DuckDB: the date was landed, then LandEvents failed, exit 30)
    assert result.returncode == 35 and "Traceback" not in result.stderr, result.stderr[-3000:]
    named = [line for line in result.stderr.splitlines() if "[duckdb] memory_limit" in line]
    assert named == [f"{WILL_NOT_RUN}[duckdb] memory_limit = 'lots' is not valid (Memory must have a number (e.g. 1GB)):"
                     " give a size such as 1GB or 512MB, in luigi.cfg (or in the file LUIGI_CONFIG_PATH names)"], named
    assert not (tmp_path / "lake").exists(), "nothing ran"


def test_the_memory_limits_duckdb_takes_are_taken_those_it_refuses_are_refused(luigi_settings) -> None:
    """900TB is more than any machine here has, but DuckDB takes it (a limit, not an allocation): so does the check."""
    from pipeline.config import BadSetting
    from pipeline.lake import sqlrun

    for taken in ("900TB", "512MB"):
        luigi_settings("duckdb", memory_limit=taken)
        sqlrun.check_settings()
    luigi_settings("duckdb", memory_limit="-1")  # DuckDB takes it as no limit at all (tests/test_duckdb_spill.py)
    with pytest.raises(BadSetting, match=r"^\[duckdb\] memory_limit = '-1' is not valid \(DuckDB takes it as no limit"):
        sqlrun.check_settings()
    luigi_settings("duckdb", memory_limit="99PB")
    with pytest.raises(BadSetting, match=r"^\[duckdb\] memory_limit = '99PB' is not valid \(Unknown unit for memory"):
        sqlrun.check_settings()


@pytest.mark.parametrize(("given", "named"), [
    (("--duckdb-temp-directory", "relative/tmp"), "--duckdb-temp-directory 'relative/tmp' is not valid (a relative"
     " folder depends on the folder the command runs from): give an absolute one on the command line, or remove it"
     " for the default"),
    (("--duckdb-memory-limit", "lots"), "--duckdb-memory-limit 'lots' is not valid (Memory must have a number (e.g."
     " 1GB)): give a size such as 1GB or 512MB, on the command line"),
    (("--duckdb-threads", "-1"), "--duckdb-threads '-1' is not valid (expected 0 or more: 0 is every core): fix it on"
     " the command line, or remove it for the default"),
])
def test_a_bad_value_given_on_the_command_line_is_named_as_its_option_not_as_luigi_cfg(
        tmp_path: Path, given: tuple[str, str], named: str) -> None:
    """The option overrides luigi.cfg: fixing the file would change nothing, so the line names the option as typed."""
    config = tmp_path / "operator.cfg"
    config.write_text("[duckdb]\ntemp_directory =\n")  # the files hold nothing wrong
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    env.update(LUIGI_CONFIG_PATH=str(config), ECOMM_DATA_DIR=str(SEED_INCOMING), ECOMM_LAKE_DIR=str(tmp_path / "lake"),
               ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    result = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline", "--date",
                             "2025-12-15", "--local-scheduler", *given], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 35 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if given[0] in line]
    assert lines == [f"{WILL_NOT_RUN}{named}"], lines
    assert f"DailyPipeline could not be scheduled: {named}" in result.stdout, result.stdout
    assert "luigi.cfg" not in result.stdout + result.stderr


def test_a_lone_percent_in_luigi_cfg_is_one_line_naming_it(tmp_path: Path) -> None:
    """Luigi's files expand `%(name)s`: `lake_dir = /srv/100%done/lake` was an InterpolationSyntaxError traceback,
    exit 1 (not an exit code the docs know)."""
    result = _run_with_settings(tmp_path, f"[paths]\nlake_dir = {tmp_path}/100%done/lake\n", "DailyPipeline")
    assert result.returncode == 35, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert (f"no run summary: [paths] lake_dir = '{tmp_path}/100%done/lake' is not valid (a % is written %% in"
            " luigi.cfg): fix it in luigi.cfg") in result.stdout + result.stderr, result.stderr[-3000:]
    (tmp_path / "operator.cfg").write_text(f"[paths]\nlake_dir = {tmp_path}/100%%done/lake\n")  # as the line says
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    env.update(LUIGI_CONFIG_PATH=str(tmp_path / "operator.cfg"), ECOMM_DATA_DIR=str(SEED_INCOMING))
    written = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipeline.tasks", "LandOrders", "--date",
                              "2025-12-15", "--local-scheduler"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300, check=False)
    assert written.returncode == 0, written.stderr[-3000:]
    assert (tmp_path / "100%done" / "lake" / "raw" / "orders").is_dir()


@pytest.mark.parametrize("folder", ["star*x", "q?x", "br[1]"])
def test_a_lake_folder_whose_path_is_a_glob_pattern_is_refused_before_any_work(tmp_path: Path, folder: str) -> None:
    """The lake's readers take its path as a glob pattern: `star*x/lake` read a neighbour `starZx/lake`'s partitions
    too (a staging reconciliation failed on 500 records for 200, and its fix said to remove good data), `br[1]/lake`
    read nothing (an empty dim_product_history, then tracebacks)."""
    neighbour = tmp_path / "starZx" / "lake" / "raw" / "orders" / "load_date=2025-12-15"
    neighbour.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    lake = tmp_path / folder / "lake"
    env.update(ECOMM_DATA_DIR=str(SEED_INCOMING), ECOMM_LAKE_DIR=str(lake),
               ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    for command in (["-m", "luigi", "--module", "pipeline.tasks", "DailyPipeline", "--date", "2025-12-15",
                     "--local-scheduler"], ["-m", "pipeline", "summary", "--date", "2025-12-15"]):
        result = subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=300, check=False)
        assert result.returncode == 35, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        assert (f"ECOMM_LAKE_DIR={str(lake)!r}: the lake's readers take its path {str(lake)!r} as a glob pattern, so"
                " it may not hold * ? [ ]") in result.stdout + result.stderr, result.stdout + result.stderr[-3000:]
    assert not lake.exists(), "nothing was written"
