"""Where DuckDB spills ([duckdb] temp_directory, pipeline.lake.spill) and how its failures are named.

DuckDB's default spill folder was `.tmp` in the folder the command runs from: where that could not be made (a file
named `.tmp`, cron's or the container's folder not writable) a landing that spilled failed as `SourceFileInvalid`,
blaming a good file. Real DuckDB, real files, real processes; no mocks.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline import config
from pipeline.lake import spill, sqlrun
from tests.support.luigi_config import run_with_settings
from tests.support.paths import REPO
from tests.support.tmpfs import tmpfs

DAY = dt.date(2025, 12, 15)
# a query whose hash table outgrows 30MB on one thread: it spills ~300 MiB, or fails where it cannot
SPILLING = "select s, count(*) from (select md5(i::varchar) s from range(3000000) r(i)) group by s order by s limit 1"


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$TMPDIR of the test (the default spill folder is `ecomm-duckdb-<uid>` there)."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def test_a_landing_that_spills_runs_from_a_folder_where_duckdb_could_not_make_its_tmp(
        tmp_path: Path, tmpdir_env: Path, monkeypatch: pytest.MonkeyPatch, luigi_settings) -> None:
    # the probe: `echo x > .tmp` in cron's folder; events.csv "cannot be read as CSV (IO Error: Failed to create
    # directory ...: File exists)", orders.json "cannot be read as JSON": good files blamed, nothing landed
    from devtools import generate
    from pipeline.ingest import landing

    incoming, lake_dir, cwd = tmp_path / "incoming", tmp_path / "lake", tmp_path / "cron"
    generate.generate(DAY, 1, incoming, orders_per_day=20000, events_per_day=200000, dirty_rate=0.02)
    cwd.mkdir()
    (cwd / ".tmp").write_text("x\n")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("ECOMM_DATA_DIR", str(incoming))
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(lake_dir))
    luigi_settings("duckdb", memory_limit="40MB", threads="1")  # both landings spill under it (60MB: neither)
    assert landing.land_events(DAY)["rows"] > 190000
    assert landing.land_orders(DAY)["rows"] > 19000
    assert (cwd / ".tmp").read_text() == "x\n"
    assert spill.folder() == str(tmpdir_env / f"ecomm-duckdb-{os.getuid()}")
    assert not [name for name in os.listdir(spill.folder()) if name.startswith("duckdb_temp_")], "DuckDB cleaned up"


def test_the_spill_folder_is_a_setting_absolute_and_made_for_this_user_only(
        tmp_path: Path, tmpdir_env: Path, luigi_settings) -> None:
    with sqlrun.connect() as con:
        shown = con.execute("select current_setting('temp_directory')").fetchone()[0]
    default = tmpdir_env / f"ecomm-duckdb-{os.getuid()}"
    assert shown == str(default) and default.is_dir() and default.stat().st_mode & 0o777 == 0o700
    chosen = tmp_path / "spill" / "here"
    luigi_settings("duckdb", temp_directory=str(chosen), memory_limit="30MB", threads="1")
    with sqlrun.connect() as con:
        assert con.execute("select current_setting('temp_directory')").fetchone()[0] == str(chosen)
        assert con.execute(SPILLING).fetchone()[1] == 1


@pytest.mark.parametrize(("value", "said"), [
    ("spill", r"\[duckdb\] temp_directory = 'spill' is not valid \(a relative folder depends on the folder the command"
              r" runs from\): give an absolute one in luigi\.cfg"),
    ("/a\nb", r"\[duckdb\] temp_directory = '/a\\nb' is not valid \(one line: a folder\)"),
])
def test_a_spill_folder_setting_that_cannot_work_is_refused(value: str, said: str, luigi_settings) -> None:
    luigi_settings("duckdb", temp_directory=value)
    with pytest.raises(config.BadSetting, match=f"^{said}"):
        sqlrun.check_settings()


def test_a_spill_folder_that_is_a_file_is_refused_naming_it_and_the_setting(tmp_path: Path, luigi_settings) -> None:
    blocked = tmp_path / ".tmp"
    blocked.write_text("x\n")
    luigi_settings("duckdb", temp_directory=str(blocked))
    with pytest.raises(spill.SpillFolderUnusable, match=rf"^\[duckdb\] temp_directory = {re.escape(str(blocked))}:"
                       r" DuckDB cannot spill there \(.*\); the input files and the data are not at fault\. Make it a"
                       r" folder user \S+ may write, or set \[duckdb\] temp_directory to one"):
        sqlrun.check_settings()


def test_the_default_spill_folder_held_by_another_user_or_a_link_is_refused(tmp_path: Path, tmpdir_env: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmpdir_env / f"ecomm-duckdb-{os.getuid()}").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(spill.SpillFolderUnusable, match="is a link, not a folder this user made"):
        sqlrun.check_settings()


def test_the_default_spill_folder_opened_to_other_users_is_closed_again(tmpdir_env: Path) -> None:
    default = tmpdir_env / f"ecomm-duckdb-{os.getuid()}"
    default.mkdir(mode=0o777)
    default.chmod(0o777)
    sqlrun.check_settings()
    assert default.stat().st_mode & 0o777 == 0o700


def test_a_spill_folder_that_fails_mid_run_is_its_error_not_the_query_s(tmp_path: Path, luigi_settings) -> None:
    folder = tmp_path / "spill"
    luigi_settings("duckdb", temp_directory=str(folder), memory_limit="30MB", threads="1")
    with sqlrun.connect() as con:
        folder.rmdir()  # gone after the connection was made: replaced by a file
        folder.write_text("x\n")
        target = tmp_path / "lake" / "t" / "data.parquet"
        target.parent.mkdir(parents=True)
        with pytest.raises(spill.SpillFolderUnusable, match=rf"^\[duckdb\] temp_directory = {re.escape(str(folder))}:"
                           r" DuckDB cannot spill there \(IO Error: .*\); the input files and the data are not at"
                           ) as caught:
            sqlrun.copy_to_partition(con, SPILLING, {}, str(target))
    assert not target.parent.exists(), "nothing written, no partition folder left"
    from pipeline.tasks import run_audit, runbook

    recorded = run_audit._error_text(caught.value)  # what the run summary's what-to-do reads
    assert runbook.remedy_for(caught.value).kind == runbook.remedy_for_text(recorded).kind == "spill folder unusable"


def test_a_task_whose_own_query_cannot_spill_fails_as_the_spill_folder_s(tmp_path: Path, luigi_settings) -> None:
    """Not only the landings and partition writes: any DuckDB query of a task's run (a staging temp table) may spill,
    and its error about the spill folder is the folder's (`PipelineTask` wraps every run), not a raw IOException."""
    from pipeline.tasks.base import PipelineTask

    folder = tmp_path / "spill"
    luigi_settings("duckdb", temp_directory=str(folder), memory_limit="30MB", threads="1")

    class SpillingTask(PipelineTask):
        def run(self) -> None:
            with sqlrun.connect() as con:
                folder.rmdir()  # gone after the connection was made: replaced by a file
                folder.write_text("x\n")
                con.execute(f"create temp table spilled as {SPILLING}")

    with pytest.raises(spill.SpillFolderUnusable, match=rf"^\[duckdb\] temp_directory = {re.escape(str(folder))}:"):
        SpillingTask(date=DAY).run()


def test_an_error_about_a_file_below_or_beside_the_spill_folder_is_not_the_folder_s(tmp_path: Path,
                                                                                     luigi_settings) -> None:
    """Only DuckDB's error naming the folder itself, or its own spill files, is the folder's: an input file under it (a
    spill folder that is a parent of the incoming folder), or in a folder whose name begins with its, is not."""
    folder = tmp_path / "spill"
    luigi_settings("duckdb", temp_directory=str(folder))
    for missing in (folder / "incoming" / "events.csv", tmp_path / "spill-lake" / "events.csv"):
        with pytest.raises(duckdb.IOException) as caught:
            duckdb.connect().execute("select * from read_csv($p)", {"p": str(missing)}).fetchall()
        assert str(missing) in str(caught.value) and spill.failure(caught.value) is None, caught.value


def test_a_relative_tmpdir_is_not_the_default_spill_folder_s_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", "rel")
    assert os.path.isabs(spill.folder()) and "rel" not in spill.folder().split(os.sep), spill.folder()


def test_another_user_s_spill_files_in_a_shared_folder_are_left_and_fail_nothing(tmp_path: Path) -> None:
    """A spill folder several users share (mode 1777): a dead process's files of another user are not this user's
    to remove (EPERM), and every connection cleans the folder: it must not fail for them."""
    folder = tmp_path / "shared"
    folder.mkdir()
    theirs, mine = folder / "duckdb_temp_3999999_0_owner", folder / "duckdb_temp_3999998_0_owner"
    theirs.write_text("x")
    mine.write_text("x")
    os.chown(theirs, os.getuid() + 1, -1)
    spill._clean_dead(str(folder))
    assert theirs.exists() and not mine.exists()


@pytest.mark.parametrize(("settings", "said"), [
    ("[duckdb]\nmemory_limit = -5GB\n", "[duckdb] memory_limit = '-5GB' is not valid (DuckDB takes it as no limit at"
                                        " all): give a size such as 1GB or 512MB"),
    ("[duckdb]\ntemp_directory = {tmp}/.tmp\n", "[duckdb] temp_directory = {tmp}/.tmp: DuckDB cannot spill there"),
])
def test_a_duckdb_setting_that_cannot_work_stops_the_run_before_any_task(tmp_path: Path, settings: str,
                                                                          said: str) -> None:
    (tmp_path / ".tmp").write_text("x\n")
    result = run_with_settings(tmp_path, settings.format(tmp=tmp_path), DAY)
    assert result.returncode == 35 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert said.format(tmp=tmp_path) in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "lake").exists(), "nothing ran"


@pytest.mark.parametrize(("limit", "what"), [("-5GB", "no limit at all"), ("-1", "no limit at all"),
                                             ("none", "no limit at all"), ("-0.5GB", "no limit at all"),
                                             ("0MB", "too little memory to run any query")])
def test_a_memory_limit_duckdb_would_take_as_none_or_zero_is_refused(limit: str, what: str, luigi_settings) -> None:
    luigi_settings("duckdb", memory_limit=limit)
    with pytest.raises(config.BadSetting, match=rf"^\[duckdb\] memory_limit = '{re.escape(limit)}' is not valid"
                                                rf" \(DuckDB takes it as {what}\): give a size such as 1GB"):
        sqlrun.check_settings()


def _out_of_memory() -> duckdb.OutOfMemoryException:
    with sqlrun.connect() as con, pytest.raises(duckdb.OutOfMemoryException) as caught:
        con.execute("select list(i) from range(20000000) r(i)").fetchall()  # a list cannot spill
    return caught.value


@pytest.mark.parametrize(("threads", "advice"), [(1, False), (2, True)])
def test_out_of_memory_suggests_one_thread_only_where_a_task_has_more(threads: int, advice: bool,
                                                                      luigi_settings) -> None:
    luigi_settings("duckdb", memory_limit="8MB", threads=str(threads))
    said = str(sqlrun.out_of_memory(_out_of_memory()))
    assert said.startswith("DuckDB ran out of memory under [duckdb] memory_limit = 8MB (failed to allocate"), said
    assert said.endswith(", or set [duckdb] threads = 1 (docs/performance.md#bigger-days)" if advice
                         else "): raise it (docs/performance.md#bigger-days)"), said


def test_a_full_spill_disk_is_named_as_the_spill_folder_s_full_disk(tmp_path: Path, luigi_settings) -> None:
    from pipeline.tasks import runbook

    with tmpfs(tmp_path / "small", "4m") as folder:
        luigi_settings("duckdb", temp_directory=str(folder), memory_limit="30MB", threads="1")
        with sqlrun.connect() as con, pytest.raises(duckdb.OutOfMemoryException) as caught:
            con.execute(SPILLING).fetchall()
        error = sqlrun.out_of_memory(caught.value)
    said = str(error)
    assert re.fullmatch(
        rf"DuckDB could not spill past \[duckdb\] memory_limit = 30MB into {re.escape(str(folder))} \(\[duckdb\]"
        rf" temp_directory\): the file system of {re.escape(str(folder))} is full \(No space left on device; .* free"
        r" of 4 MiB now\) \(failed to offload data block of size .*\); the data is not at fault\. Free space there, or"
        r" set \[duckdb\] temp_directory to a folder on a bigger disk, or raise memory_limit so less spills; then run"
        r" the date again \(docs/performance\.md#bigger-days\)", said), said
    assert "threads" not in said, "threads is 1 already"
    assert runbook.remedy_for(error).kind == "disk full"


def test_the_spill_files_of_a_killed_task_are_removed_those_of_a_running_one_kept(tmp_path: Path,
                                                                                  luigi_settings) -> None:
    folder = tmp_path / "spill"
    folder.mkdir()
    killed = subprocess.run([sys.executable, "-c", (
        "import duckdb, os, signal\n"
        "con = duckdb.connect(config={'threads': 1})\n"
        f"con.execute(\"set memory_limit = '30MB'\"); con.execute(\"set temp_directory = '{folder}'\")\n"
        f"con.execute(\"{SPILLING}\").fetchall()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")], check=False, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    left = [name for name in os.listdir(folder) if name.startswith(f"duckdb_temp_{killed_pid(folder)}_")]
    assert left, "the killed process left its spill files"
    running = folder / f"duckdb_temp_{os.getpid()}_0_owner"  # this process's: alive
    running.write_text("")
    luigi_settings("duckdb", temp_directory=str(folder))
    with sqlrun.connect():
        assert sorted(os.listdir(folder)) == [running.name]


def killed_pid(folder: Path) -> str:
    return next(name.split("_")[2] for name in os.listdir(folder) if name.startswith("duckdb_temp_"))


def test_duckdb_s_own_default_spill_folder_is_ignored_by_git() -> None:
    # other DuckDB connections (a notebook's, views') still spill to `.tmp` in the folder they run from
    assert subprocess.run(["git", "check-ignore", "-q", ".tmp/x"], cwd=REPO, check=False).returncode == 0


def test_the_image_s_user_can_spill_where_the_default_puts_it() -> None:
    """No Docker engine here: the Dockerfile is read. Its WORKDIR /app is root's, so DuckDB's own `.tmp` was not."""
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    uid = re.search(r"useradd .*--uid (\d+) ecomm", dockerfile).group(1)
    assert re.search(rf"install -d -m 0700 -o ecomm /var/tmp/ecomm-duckdb-{uid}\b", dockerfile)
    assert "TMPDIR" not in dockerfile.replace("$TMPDIR", ""), "the default is /var/tmp/ecomm-duckdb-<uid> there"
