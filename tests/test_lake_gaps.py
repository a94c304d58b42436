"""A published date whose lake partitions are gone (deleted by hand, a lake restored from an older backup) is flagged
by the run summary with the commands that write them again, and those commands, run as printed, repair it."""
from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

import pytest

from tests.support.ops import SEED_DAY, Ops

INCOMPLETE = "published, lake INCOMPLETE"


def _summary(ops: Ops) -> str:
    result = ops.pipeline("summary", "--date", str(SEED_DAY))
    return result.stdout + result.stderr


def _fingerprint(path: Path) -> str:
    """A partition's content (the rows as DuckDB reads them: a rebuilt file may differ in its footer only; a gate's
    results in when and by which run they were checked)."""
    import duckdb

    rows = duckdb.sql(f"select * exclude (checked_at, run_id) from read_parquet('{path}') order by all" if
                      "dq_results" in str(path) else f"select * from read_parquet('{path}') order by all").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _run_what_to_do(ops: Ops, said: str) -> None:
    """Run each command the summary's `what to do (lake incomplete)` line names, as printed."""
    line = next(line for line in said.splitlines() if "what to do (lake incomplete)" in line)
    for command in re.findall(r"`([^`]+)`", line):
        args = shlex.split(command)
        result = ops.luigi(*args[1:]) if args[0] == "luigi" else ops.pipeline(*args[3:])
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])


@pytest.mark.slow
def test_gone_warehouse_mart_and_gate_partitions_are_named_and_rebuilt_by_the_commands_given(ops: Ops) -> None:
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0
    gone = [ops.lake / "warehouse" / "fact_orders" / f"load_date={SEED_DAY}" / "data.parquet",
            ops.lake / "marts" / "product_sales_daily" / f"load_date={SEED_DAY}" / "data.parquet",
            ops.lake / "audit" / "dq_results" / f"load_date={SEED_DAY}" / "data.parquet"]
    before = {path: _fingerprint(path) for path in gone}
    for path in gone:
        path.unlink()

    said = _summary(ops)
    assert INCOMPLETE in said, said
    assert "3 partition file(s) gone" in said and f"warehouse/fact_orders/load_date={SEED_DAY}/data.parquet" in said
    assert ops.pipeline("summary", "--date", str(SEED_DAY)).returncode != 0, "a range with a gap is not all published"
    assert "BuildWarehouse" in said and "BuildMarts" in said and "QualityGate" in said, said
    assert "restate" not in said.split("what to do (lake incomplete)")[1], "the raw layer is whole: no restatement"

    _run_what_to_do(ops, said)
    assert {path: _fingerprint(path) for path in gone} == before, "rebuilt from the same lake: the same rows"
    again = _summary(ops)
    assert INCOMPLETE not in again and re.search(rf"{SEED_DAY} .* published$", again, re.M), again


@pytest.mark.slow
def test_a_raw_data_file_gone_beside_its_manifest_is_named_and_restated(ops: Ops) -> None:
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0
    raw = ops.lake / "raw" / "events" / f"load_date={SEED_DAY}" / "data.parquet"
    rows = ops.lake_rows("raw", "events")
    raw.unlink()  # the manifest stays: before, nothing noticed (the lake views lost the date's events)

    said = _summary(ops)
    assert INCOMPLETE in said and f"raw/events/load_date={SEED_DAY}/data.parquet" in said, said
    assert f"python -m pipeline restate --date {SEED_DAY} --source events" in said, said

    _run_what_to_do(ops, said)
    assert ops.lake_rows("raw", "events") == rows
    assert INCOMPLETE not in _summary(ops)


@pytest.mark.slow
def test_a_published_date_with_nothing_in_the_lake_says_so(ops: Ops) -> None:
    """A lake restored from a backup older than a published date: the date is named, not called published."""
    assert ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler").returncode == 0
    for folder in ops.lake.glob(f"*/*/load_date={SEED_DAY}"):
        if "pipeline_runs" not in str(folder) and "restatements" not in str(folder):
            for path in sorted(folder.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            folder.rmdir()

    said = _summary(ops)
    assert INCOMPLETE in said and "no partition of the date is in the lake" in said, said
    assert f"python -m pipeline restate --date {SEED_DAY} --source orders --source events" in said, said
    _run_what_to_do(ops, said)
    assert INCOMPLETE not in _summary(ops)
