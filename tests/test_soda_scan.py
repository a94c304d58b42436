"""`pipeline.quality.soda`: one SodaCL file scanned with soda-core on a real DuckDB connection."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from pipeline.quality.soda import Scan, add_duckdb, run_checks_file


class StartsAnotherScan:
    """A DuckDB connection that starts another soda-core scan when Soda runs its first query (after
    parsing the checks), as the gate's side-by-side scans do at any moment (one table per core)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.started = False

    def execute(self, *args: Any) -> Any:
        if not self.started:
            self.started = True
            Scan()
        return self._con.execute(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_a_scan_keeps_its_errors_when_another_scan_starts_meanwhile(tmp_path: Path) -> None:
    checks = tmp_path / "dim_user.yml"
    checks.write_text("checks for dim_user:\n  - row_count > 0:\n      name: has rows\n  - row_count >>> 0\n")
    con = duckdb.connect()
    con.execute("create table dim_user as select 1 as user_id")
    other = StartsAnotherScan(con)

    code, results = run_checks_file(checks, {}, lambda scan: add_duckdb(scan, other, "lake"), "lake",
                                    default_table="dim_user")

    assert other.started
    by_name = {r.check_name: r for r in results}
    assert by_name["has rows"].outcome == "pass"
    assert code == 3, "the check Soda could not parse is an error of this scan"
    assert by_name["scan of dim_user.yml"].outcome == "error"
    assert 'Invalid check "row_count >>> 0"' in by_name["scan of dim_user.yml"].message
