"""Lake files are read through Arrow's own files, so a process may exit right after reading them.

The luigi command prints its run summary from lake files (the run audit) and exits. Read through a Python
file object, Arrow's reader threads held buffers wrapping Python bytes and freed them after `read()` had
returned; one freed during interpreter shutdown ended the thread in a way C++ cannot unwind, and the
command aborted after all its work ("terminate called without an active exception", exit -6; about one
exit in eight of `import pipeline.tasks` + four forks + reading 19 run-audit files on a 2-core machine,
0 in 100 once files are opened as Arrow native files). The abort is a race too rare for a test loop to
catch reliably, so this pins the contract that removes it.
"""
from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline import lake


def test_a_local_lake_file_opens_as_an_arrow_native_file(lake_root) -> None:
    path = str(lake_root / "audit" / "pipeline_runs" / "data.parquet")
    lake.write_table(path, pa.table({"run_id": ["r1", "r2"], "rows": [3, 4]}))

    with lake.open_input(path) as handle:
        assert isinstance(handle, pa.NativeFile)
    assert lake.read_rows(path) == [{"run_id": "r1", "rows": 3}, {"run_id": "r2", "rows": 4}]


def test_a_missing_lake_file_is_file_not_found(lake_root) -> None:
    with pytest.raises(FileNotFoundError):
        lake.open_input(str(lake_root / "audit" / "restatements" / "missing.json"))
