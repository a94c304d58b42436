"""The rerun a failure's what-to-do prints keeps the run's setting options as given (`command_line.given_settings`),
without the key a catalog URL may hold, and without only the options the fix itself sets."""
from __future__ import annotations

import datetime as dt
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from luigi.cmdline_parser import CmdlineParser

import pipeline.tasks  # noqa: F401 - the settings' sections, as a `luigi --module pipeline.tasks` run has them
from pipeline import config
from pipeline.tasks import command_line, held_back, runbook
from tests.support.ops import SEED_DAY, Ops
from tests.support.processes import free_port

D = dt.date(2025, 12, 15)
URL = "https://api.example.com/v1?api_key=SECRET123"


@contextmanager
def _run_given(monkeypatch: pytest.MonkeyPatch, *options: str) -> Iterator[None]:
    """This process as a `luigi` run of D given `options`, as `command_line.note` keeps its parser."""
    argv = ["--module", "pipeline.tasks", "DailyPipeline", "--date", str(D), "--local-scheduler", *options]
    with CmdlineParser.global_instance(argv) as parser:
        monkeypatch.setattr(command_line, "_parser", parser)
        monkeypatch.setattr("sys.argv", ["luigi", *argv])
        yield


def test_an_option_the_message_only_mentions_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """`SourceNotReady: ... ([landing] ready_marker)` names the setting, not a value the fix replaces: the rerun
    without `--landing-ready-marker` would land the file without waiting for its marker."""
    with _run_given(monkeypatch, "--landing-ready-marker", "_READY"):
        fix = runbook.by_kind("not ready").fix_for(D, local_scheduler=True, message=(
            "SourceNotReady: orders for 2025-12-15: no ready marker _READY yet ([landing] ready_marker)"))
    assert f"--date {D} --local-scheduler --landing-ready-marker _READY`" in fix, fix


def test_a_catalog_url_s_key_is_not_printed_in_a_rerun(monkeypatch: pytest.MonkeyPatch) -> None:
    with _run_given(monkeypatch, "--catalog-products-url", URL):
        said = [runbook.daily_command(D), runbook.by_kind("missing file").fix_for(D, local_scheduler=True),
                *held_back.backfill_again(["--module", "pipeline.tasks", "RangeDaily", "--catalog-products-url", URL],
                                          ["FAILED"])]
    assert all("SECRET123" not in line and "api_key=***" in line for line in said), said


def test_a_rerun_names_the_url_the_environment_gave_not_the_overridden_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """ECOMM_PRODUCTS_URL wins over --catalog-products-url (as every variable over luigi.cfg), but the rerun repeated
    the option's URL: run where the variable is not set, it would fetch another API than the run did."""
    used = "https://catalog.internal/v2?api_key=ENVKEY"
    monkeypatch.setenv("ECOMM_PRODUCTS_URL", used)
    monkeypatch.delenv("ECOMM_USERS_URL", raising=False)
    with _run_given(monkeypatch, "--catalog-products-url", URL, "--catalog-users-url", "https://users.example.com"):
        assert config.products_url() == used  # what the run fetched from
        said = [runbook.daily_command(D), runbook.by_kind("missing file").fix_for(D, local_scheduler=True)]
    for argv in (["--catalog-products-url", URL], [f"--catalog-products-url={URL}"]):
        said += held_back.backfill_again(["--module", "pipeline.tasks", "RangeDaily", *argv, "--catalog-users-url",
                                          "https://users.example.com"], ["FAILED"])
    assert len(said) == 4
    for line in said:
        assert re.search(r"--catalog-products-url[= ]'?https://catalog\.internal/v2\?api_key=\*\*\*'", line), line
        assert "api.example.com" not in line and "ENVKEY" not in line, line
        assert "--catalog-users-url https://users.example.com" in line, line  # no variable: the option as given


def test_a_rerun_names_a_relative_folder_the_environment_gave_as_the_run_took_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """A relative ECOMM_PG_DATA is the process's current folder's; the option's relative value is the checkout's: the
    rerun names the folder the run used, absolute."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ECOMM_PG_DATA", "rel/pgdata")
    line = held_back.backfill_again(["--module", "pipeline.tasks", "RangeDaily", "--postgres-embedded-dir",
                                     "other/pgdata"], ["FAILED"])[0]
    assert f"--postgres-embedded-dir {tmp_path}/rel/pgdata`" in line, line


@pytest.mark.slow
def test_a_backfill_s_rerun_names_an_abbreviated_option_in_full_with_the_value_used(ops: Ops) -> None:
    """argparse takes `--catalog-products-u` for `--catalog-products-url`; the rerun a failed backfill prints did not
    know it, so it repeated the typed URL where ECOMM_PRODUCTS_URL had given the one the run fetched from."""
    port = free_port()  # nothing listens there: the catalog's landing fails at once, and the backfill with it
    used, typed = f"http://127.0.0.1:{port}/used", f"http://127.0.0.1:{port}/typed"
    ops.extra_env["ECOMM_PRODUCTS_URL"] = used
    span = ["--start", str(SEED_DAY), "--stop", str(SEED_DAY + dt.timedelta(days=1))]
    result = ops.luigi("RangeDaily", "--of", "DailyPipeline", *span, "--local-scheduler", "--catalog-products-u", typed,
                       "--catalog-attempts", "1", "--catalog-retri", "0")
    assert result.returncode == 30, result.stdout[-2000:] + result.stderr[-3000:]
    assert "/used" in result.stdout and "/typed" not in result.stdout, result.stdout  # what ran, not what was typed
    command = shlex.join(["luigi", "--module", "pipeline.tasks", "RangeDaily", "--of", "DailyPipeline", *span,
                          "--local-scheduler", "--catalog-products-url", used, "--catalog-attempts", "1",
                          "--catalog-retries", "0"])
    assert result.stdout.rstrip().splitlines()[-1] == (
        f"then the rest of the backfill, as it was run: `{command}` (it runs the dates not published yet, oldest"
        " first)"), result.stdout


def test_an_abbreviation_is_the_one_option_it_begins_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECOMM_PRODUCTS_URL", raising=False)
    argv = ["--module", "pipeline.tasks", "RangeDaily", "--of", "DailyPipeline", "--sta", "2025-12-15",
            "--catalog-products-u=http://x", "--catalog-", "--no-such-option", "--date", "x"]
    assert command_line.as_used(argv) == [
        "--module", "pipeline.tasks", "RangeDaily", "--of", "DailyPipeline", "--start", "2025-12-15",
        "--catalog-products-url=http://x", "--catalog-", "--no-such-option", "--date", "x"]  # ambiguous, unknown


def test_the_root_task_is_the_one_luigi_takes_not_the_first_task_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """`DailyPipeline` is the value of `--RangeDaily-of` here; Luigi's root task is RangeDaily, whose `--sta` is
    `--start`."""
    monkeypatch.delenv("ECOMM_PRODUCTS_URL", raising=False)
    argv = ["--module", "pipeline.tasks", "--RangeDaily-of", "DailyPipeline", "RangeDaily", "--sta", "2025-12-15",
            "--sto", "2025-12-16"]
    with CmdlineParser.global_instance(argv) as parser:
        assert parser.known_args.root_task == "RangeDaily"  # the line is Luigi's own
    assert command_line.as_used(argv) == [*argv[:5], "--start", "2025-12-15", "--stop", "2025-12-16"]


def test_a_fix_line_with_no_setting_given_builds_no_parser_and_a_line_s_options_are_read_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every failed or unpublished date's fix line asks `given_settings`: it built the list of every Luigi option
    (3-8 ms) each time, seconds over a failed year's backfill."""
    built = command_line._luigi_options.cache_info
    command_line._luigi_options.cache_clear()  # as a new process
    with _run_given(monkeypatch):
        before = built().misses
        assert command_line.given_settings() == ""
        assert built().misses == before, "nothing given: no option list built"
    with _run_given(monkeypatch, "--landing-ready-marker", "_READY"):
        before = built()
        for _ in range(3):
            assert command_line.given_settings() == " --landing-ready-marker _READY"
        assert (built().misses, built().hits) == (before.misses + 1, before.hits + 2), "built once a command line"
