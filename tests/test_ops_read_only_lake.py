"""A lake this user may read but not write (an analyst's account, a second host's read-only mount), through real
`luigi` runs: a published date is complete, so its run is a no-op exit 0; a date that needs writing is refused in
one line saying the lake is not writable."""
from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO

_cfg = configparser.ConfigParser()
_cfg.read(REPO / "luigi.cfg")
SCHEDULING_ERROR = int(_cfg["retcode"]["scheduling_error"])
LOCAL = "--local-scheduler"
# the lake bound read-only onto itself, in a mount namespace of this command only (as a user: its own user namespace)
READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def luigi_on_read_only_lake(ops: Ops, *args: str) -> subprocess.CompletedProcess:
    """`luigi --module pipeline.tasks ARGS` with the lake on a read-only mount."""
    namespace = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--user", "--map-root-user"])
    return subprocess.run([*namespace, "sh", "-c", READ_ONLY, "sh", str(ops.lake), sys.executable, "-m", "luigi",
                           "--module", "pipeline.tasks", *args], cwd=REPO, env=ops.env, capture_output=True,
                          text=True, timeout=180, check=False)


def lake_state(lake: Path) -> list[tuple[str, int]]:
    return sorted((str(path.relative_to(lake)), path.stat().st_mtime_ns) for path in lake.rglob("*"))


@pytest.mark.slow
def test_a_published_date_on_a_lake_this_user_may_not_write_is_a_no_op(ops: Ops) -> None:
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), LOCAL).returncode == 0
    before = lake_state(ops.lake)
    # the published date: nothing to write, so nothing refused (it exited 35, "LakeUnreadable"), as RangeDaily
    daily = luigi_on_read_only_lake(ops, "DailyPipeline", "--date", str(SEED_DAY), LOCAL)
    assert daily.returncode == 0, daily.stdout[-2000:] + daily.stderr[-3000:]
    assert "Traceback" not in daily.stderr and "LakeUnreadable" not in daily.stderr + daily.stdout, daily.stderr[-3000:]
    assert f"{SEED_DAY}" in daily.stdout and "published" in daily.stdout, daily.stdout
    backfill = luigi_on_read_only_lake(ops, "RangeDaily", "--of", "DailyPipeline", "--start", str(SEED_DAY),
                                       "--stop", "2025-12-16", LOCAL)
    assert backfill.returncode == 0, backfill.stdout[-2000:] + backfill.stderr[-3000:]
    assert lake_state(ops.lake) == before
    # the next date needs writing: refused before any task, in one line saying the lake is not writable
    refused = luigi_on_read_only_lake(ops, "DailyPipeline", "--date", "2025-12-16", LOCAL)
    assert refused.returncode == SCHEDULING_ERROR, refused.stdout[-2000:] + refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr and "LakeUnreadable" not in refused.stdout + refused.stderr
    lake_folder = re.escape(str(ops.lake))
    assert re.search(rf"due to error in complete\(\) method: LakeNotWritable: the lake folder {lake_folder}"
                     r" is on a read-only file system \(\S+\): remount it read-write", refused.stderr), \
        refused.stderr[-3000:]
    assert "DailyPipeline could not be scheduled: LakeNotWritable: the lake folder" in refused.stdout, refused.stdout
    assert "what to do (lake not writable): " in refused.stdout, refused.stdout
    assert lake_state(ops.lake) == before


@pytest.mark.slow
def test_a_forced_published_date_on_a_read_only_lake_is_a_no_op_too(ops: Ops) -> None:
    # --force replaces a published date only when its Publish runs: a published, reconciled one is complete
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), LOCAL).returncode == 0
    before = lake_state(ops.lake)
    forced = luigi_on_read_only_lake(ops, "DailyPipeline", "--date", str(SEED_DAY), "--force", LOCAL)
    assert forced.returncode == 0, forced.stdout[-2000:] + forced.stderr[-3000:]
    assert "LakeNotWritable" not in forced.stdout + forced.stderr, forced.stdout[-3000:]
    assert lake_state(ops.lake) == before


def test_a_writable_lake_asks_postgres_nothing_before_the_date_s_tasks(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether the date is published (a Postgres query, asked twice a date as Luigi schedules) matters only when the
    lake may not be written: a writable lake is a statvfs and an access check."""
    from pipeline.tasks import publish

    (tmp_path / "lake").mkdir()
    monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / "lake"))
    asked: list[object] = []
    monkeypatch.setattr(publish.Publish, "complete", lambda task: asked.append(task.date) or False)
    assert isinstance(publish.DailyPipeline(date=SEED_DAY).requires(), publish.Publish)
    assert asked == [], "the publish state was asked of a writable lake"
