"""`python -m pipeline report`: where the page goes, and what a bad --out or --currency says.

A real published date (hand-made rows, the real publish into a fresh database), so that each
command gets as far as writing the page: a bad --out is one line and exit 2 before Postgres is
asked anything, nothing is created for it, and no temporary file is ever left beside it.
"""
from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.serving import publish
from tests.support.paths import REPO
from tests.support.serving import event, order, write_facts
from tests.support.tmpfs import read_only

D = dt.date(2025, 12, 14)


@pytest.fixture
def published(fresh_db, serving_lake) -> None:
    write_facts(D, [order("O1", D)], [event("E1", D)])
    publish.publish(D)


def report(*options: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "report", "--date", D.isoformat(), *options], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


def one_line(result: subprocess.CompletedProcess) -> str:
    # the fault engine's own line, where a test armed one, is not the command's
    lines = [line for line in result.stderr.splitlines() if line.strip() and "devtools.faults" not in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_out_naming_a_folder_is_a_usage_error_and_leaves_nothing(published, tmp_path: Path) -> None:
    folder = tmp_path / "out" / "reports"
    folder.mkdir(parents=True)
    done = report("--out", str(folder))
    assert done.returncode == 2, done.stderr
    assert one_line(done) == (f"python -m pipeline report: error: --out {folder} is a folder: give the page's file"
                              f" name, e.g. {folder}/daily_report_{D}.html (see --help)")
    assert [p.name for p in folder.parent.iterdir()] == ["reports"] and not any(folder.iterdir())


def test_an_empty_out_or_one_ending_with_a_slash_is_a_usage_error(published, tmp_path: Path) -> None:
    empty = report("--out", "")
    assert empty.returncode == 2 and one_line(empty) == (
        f"python -m pipeline report: error: --out is empty: give the page's file name, e.g. {REPO}/reports/"
        f"daily_report_{D}.html, or leave --out out (see --help)")
    folder = tmp_path / "out"
    folder.mkdir()
    slash = report("--out", f"{folder}/page.html/")
    assert slash.returncode == 2 and one_line(slash) == (
        f"python -m pipeline report: error: --out {folder}/page.html/ names a folder (it ends with /): give the"
        f" page's file name, e.g. {folder}/page.html/daily_report_{D}.html (see --help)")
    assert list(folder.iterdir()) == []


def test_out_in_a_missing_folder_is_a_usage_error_and_makes_no_folder(published, tmp_path: Path) -> None:
    out = tmp_path / "missing" / "deeper" / "page.html"
    done = report("--out", str(out))
    assert done.returncode == 2, done.stderr
    assert one_line(done) == (f"python -m pipeline report: error: --out {out}: the folder {out.parent} does not"
                              " exist; create it first, or give another path (see --help)")
    assert not (tmp_path / "missing").exists()
    (tmp_path / "missing" / "deeper").mkdir(parents=True)
    assert report("--out", str(out)).returncode == 0 and out.is_file()


def test_a_failed_write_is_one_line_and_leaves_no_temporary_file(published, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "page.html"
    full = report("--out", str(out), ECOMM_FAULT="lake.promote:enospc")  # the disk fills as the page is moved in
    assert full.returncode == 1, full.stderr
    assert one_line(full).startswith(f"error: cannot write the report to {out}: No space left on device")
    assert list(out.parent.iterdir()) == []


def test_a_bad_currency_option_is_a_usage_error() -> None:
    done = report("--currency", "XX")  # refused while parsing: no Postgres, no lake needed
    assert done.returncode == 2, done.stderr
    assert one_line(done) == ("python -m pipeline report: error: argument --currency: 'XX' is not an ISO 4217 code"
                              " (three capital letters, such as USD or EUR) (see --help)")


def test_a_bad_currency_setting_is_a_setting_s_exit_code(tmp_path: Path) -> None:
    """`[report] currency = dollars` exited 1, a failed report; a setting to fix is 35, as for the daily command."""
    settings = tmp_path / "operator.cfg"
    settings.write_text("[report]\ncurrency = dollars\n")
    done = report("--out", str(tmp_path / "page.html"), LUIGI_CONFIG_PATH=str(settings))  # before Postgres is asked
    assert done.returncode == 35, done.stderr
    assert one_line(done) == ("error: currency 'dollars' is not an ISO 4217 code (three capital letters, such as USD"
                              " or EUR): set [report] currency in luigi.cfg, or pass --currency")
    assert not (tmp_path / "page.html").exists()


def test_postgres_unreachable_is_one_line(tmp_path: Path) -> None:
    from tests.support.processes import free_port

    port = free_port()
    down = report("--out", str(tmp_path / "page.html"), ECOMM_PG_DSN=f"postgresql://postgres@127.0.0.1:{port}/nowhere")
    assert down.returncode == 3, down.stderr
    assert one_line(down).startswith(f"error: cannot reach the serving Postgres (user=postgres dbname=nowhere"
                                     f" host=127.0.0.1 port={port}): connection failed: ")
    assert one_line(down).endswith("; start it or set ECOMM_PG_DSN")
    assert list(tmp_path.iterdir()) == []


def _in_read_only_checkout(*options: str) -> subprocess.CompletedProcess:
    """`report` with the checkout mounted read-only (a mount namespace of this command only; as a user, its own user
    namespace): a checkout this user may not write, as a service user's root-owned one."""
    command = [sys.executable, "-m", "pipeline", "report", "--date", D.isoformat(), *options]
    return subprocess.run(read_only(REPO, command, keep=True), cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)


def test_a_checkout_the_user_may_not_write_without_out_is_one_line_naming_the_folder_and_out(
        published, tmp_path: Path) -> None:
    refused = _in_read_only_checkout()
    assert refused.returncode == 2, refused.stderr
    said = one_line(refused)
    assert said.startswith(f"python -m pipeline report: error: the report's default folder {REPO}/reports cannot be"
                           f" written ({REPO}"), said
    assert said.endswith(f" is on a read-only file system): give a path you may write with --out, e.g. --out"
                         f" DIR/daily_report_{D}.html (see --help)"), said
    done = _in_read_only_checkout("--out", str(tmp_path / "page.html"))  # as the line says
    assert done.returncode == 0 and (tmp_path / "page.html").is_file(), done.stderr


# The interpreter may live where only root may look (/root/.pyenv): import first, then, as root, become `nobody`.
AS_SERVICE_USER = """
import importlib, os, runpy, sys
for name in ("pipeline.__main__", "pipeline.cli", "pipeline.report.page"):
    importlib.import_module(name)
if os.geteuid() == 0:
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A copy of the checkout's code in a folder other users may traverse: its reports/ is the test's to shape."""
    root = Path(tempfile.mkdtemp(prefix="ecomm-report-"))
    root.chmod(0o711)
    copy = root / "checkout"
    shutil.copytree(REPO / "pipeline", copy / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "luigi.cfg", copy)
    try:
        yield copy
    finally:
        copy.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def _report_from(copy: Path, as_service_user: bool = False) -> subprocess.CompletedProcess:
    run = [sys.executable, "-W", "ignore", "-c", AS_SERVICE_USER] if as_service_user else [sys.executable, "-m"]
    return subprocess.run([*run, "pipeline", "report", "--date", D.isoformat()], cwd="/", capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(copy)}, timeout=300, check=False)


def test_a_file_where_the_default_folder_goes_is_said_to_be_one(checkout: Path) -> None:
    """It was "may not be written by user root", of a folder root may write."""
    (checkout / "reports").write_text("")
    refused = _report_from(checkout)
    assert refused.returncode == 2, refused.stderr
    assert one_line(refused) == (
        f"python -m pipeline report: error: the report's default folder {checkout}/reports cannot be made:"
        f" {checkout}/reports is a file, not a folder; move it away, or give a path you may write with --out, e.g."
        f" --out DIR/daily_report_{D}.html (see --help)")


def test_a_service_users_checkout_it_may_not_write_without_out_is_one_line_naming_the_user(checkout: Path) -> None:
    """A checkout owned by another user (root's, 0555) run by a service user (as root: nobody; else this user, whose
    own 0555 folder it may not write either): the line names the user and --out, before Postgres is asked anything."""
    checkout.chmod(0o555)
    refused = _report_from(checkout, as_service_user=True)
    assert refused.returncode == 2, refused.stderr
    user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    assert one_line(refused) == (
        f"python -m pipeline report: error: the report's default folder {checkout}/reports cannot be written"
        f" ({checkout}, where it would be made, may not be written by user {user}): give a path you may write with"
        f" --out, e.g. --out DIR/daily_report_{D}.html (see --help)")
