"""Landing onto a full lake disk says the lake's disk is full, not that the input file is bad.

A real full file system: a tmpfs of a few KiB as the lake (tests/support/tmpfs.py: as root or as any user).
"""
from __future__ import annotations

import datetime as dt
import errno
import re
from pathlib import Path

import pytest

from pipeline.ingest import manifests
from pipeline.lake import disk
from tests.support.ops import SEED_DAY, Ops
from tests.support.tmpfs import fill, tmpfs

TASKS = ("LandOrders", "LandEvents", "LandProducts")  # the seed day has no users snapshot to land


def test_a_landing_onto_a_full_lake_disk_blames_the_disk_not_the_file(ops: Ops) -> None:
    # events.csv is the file DuckDB's CSV reader is retried on line by line: its first write's failure was taken for
    # the file's, and the retry's for a file that "cannot be read as CSV"
    with tmpfs(ops.lake, "16k") as ops.lake:
        run = ops.luigi("LandDaily", "--date", str(SEED_DAY), "--local-scheduler")
    output = run.stdout + run.stderr
    assert run.returncode == 30, output[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "SourceFileInvalid" not in output and "cannot be read" not in output, output[-3000:]
    lake = re.escape(str(ops.lake))
    for task in TASKS:  # Luigi's one line per failed task: the full disk, the partition it could not write
        source = task.removeprefix("Land").lower()
        said = re.search(rf"Worker .*? failed +{task}\(date=\S+\): (.*)", run.stderr)
        assert said, (task, run.stderr[-3000:])
        assert re.fullmatch(
            rf"LakeDiskFull: the lake's file system \({lake}\) is full \(No space left on device; \d+ KiB free of 16"
            rf" KiB now\): {lake}/raw/{source}/load_date=[\d-]+/(data\.parquet|_manifest\.json) could not be written,"
            r" nothing was; the input files and the data are not at fault\. Free space on that disk .*, then run the date again",
            said.group(1)), said.group(1)
    assert "what to do (disk full): free space" in run.stdout, run.stdout[-3000:]
    assert "what to do (invalid file)" not in run.stdout
    assert ops.query("select count(*) from audit.pipeline_runs where status = 'failed'"
                     " and error_message like 'LakeDiskFull: the lake''s file system (%) is full (No space left%'"
                     ) == [(len(TASKS),)], "the run audit records the full disk as the tasks' failure"


def test_a_manifest_the_full_lake_disk_refuses_names_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the data fitted, its completion marker did not: the partition is not landed, and the disk is to blame
    day = dt.date(2025, 12, 15)
    with tmpfs(tmp_path / "lake", "64k") as lake:
        monkeypatch.setenv("ECOMM_LAKE_DIR", str(lake))
        (lake / "raw" / "orders" / f"load_date={day}").mkdir(parents=True)
        fill(lake)
        with pytest.raises(disk.LakeDiskFull) as caught:
            manifests.write_manifest("orders", day, {"rows": 1, "note": "x" * 8192})
        assert manifests.read_manifest("orders", day) is None
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value.__cause__, OSError)
    assert str(caught.value) == (
        f"the lake's file system ({lake}) is full (No space left on device; 0 KiB free of 64 KiB now):"
        f" {manifests.manifest_path('orders', day)} could not be written, nothing was; the input files and the data"
        " are not at fault. Free space on that disk (old lake/_archive, lake/_logs, the temp dir) or give the lake a"
        " bigger one, then run the date again")
