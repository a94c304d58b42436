"""`pipeline.quality.soda`: one SodaCL file scanned with soda-core on a real DuckDB connection."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline.lake import sqlrun
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


def _volume_scan(tmp_path: Path, low: str, name: str = "volume") -> tuple[int, list[Any]]:
    checks = tmp_path / "stg_orders.yml"
    checks.write_text(
        "checks for stg_orders:\n"
        "  - row_count between ${low} and 10:\n"
        f"      name: {name}\n"
        "  - missing_count(order_id) = 0:\n"
        "      name: ids present\n"
    )
    con = duckdb.connect()
    con.execute("create table stg_orders as select range as order_id from range(3)")
    return run_checks_file(checks, {"low": low}, lambda scan: add_duckdb(scan, con, "lake"), "lake",
                           default_table="stg_orders")


def test_a_jinja_text_is_compiled_once_per_process_and_rendered_with_each_scans_variables(
        tmp_path: Path, monkeypatch: Any) -> None:
    """soda-core compiles a Jinja template each time it resolves a `${...}` text (parse, query, rule
    text). A text with Jinja syntax beyond plain `${name}` references (a filter in a check's name; plain
    texts are substituted: tests/test_soda_variables.py) is compiled once, and each scan still renders
    its own variables."""
    import inspect

    from pipeline.quality import soda_setup

    compiled: list[str] = []
    signatures: list[Any] = []
    compile_template, signature = soda_setup._compile, inspect.signature
    monkeypatch.setattr(soda_setup, "_compile", lambda source, *a: compiled.append(source) or compile_template(source, *a))
    monkeypatch.setattr(inspect, "signature", lambda fn, **kw: signatures.append(fn) or signature(fn, **kw))
    soda_setup._template.cache_clear()
    soda_setup._signature.cache_clear()

    first = _volume_scan(tmp_path, "1", "volume from ${ low | trim }")
    compiled_once, signed_once = len(compiled), len(signatures)
    second = _volume_scan(tmp_path, "5", "volume from ${ low | trim }")

    assert first[1][0].outcome == "pass" and first[1][0].message.endswith("rule: row_count between 1 and 10")
    assert second[1][0].outcome == "fail" and second[1][0].message.endswith("rule: row_count between 5 and 10")
    assert (first[1][0].check_name, second[1][0].check_name) == ("volume from 1", "volume from 5")
    assert compiled_once > 0 and len(compiled) == compiled_once, "the second scan compiled no template"
    assert signed_once > 0 and len(signatures) == signed_once, "the second parse asked for no signature"


def test_a_checks_file_parsed_ahead_is_not_parsed_again_and_each_scan_gets_its_own_copy(
        tmp_path: Path, monkeypatch: Any) -> None:
    """soda-core parses each SodaCL file with ruamel's round-trip loader (pure Python, ~0.2 s a gate);
    the `luigi` process parses the checks files ahead (`parse_ahead`) for every gate it forks."""
    from ruamel.yaml import YAML

    from pipeline.quality import soda_setup

    loads: list[Any] = []
    load = YAML.load
    monkeypatch.setattr(YAML, "load", lambda self, stream: loads.append(stream) or load(self, stream))
    checks = tmp_path / "stg_orders.yml"
    _volume_scan(tmp_path, "1")  # writes the file
    soda_setup._parsed.cache_clear()
    loads.clear()

    soda_setup.parse_ahead([checks])
    parsed = soda_setup._parsed(checks.read_text())
    before = YAML().load(checks.read_text())
    first, second = _volume_scan(tmp_path, "1"), _volume_scan(tmp_path, "5")

    assert len(loads) == 2, "parsed ahead (and once above, as the reference), then neither scan parsed it"
    assert first[1][0].outcome == "pass" and second[1][0].outcome == "fail", "each scan its own variables"
    assert parsed == before and parsed.lc.data == before.lc.data, "the scans changed their copies, not the parse"


def test_each_scans_copy_of_a_parsed_checks_file_is_unpickled_not_deep_copied(
        tmp_path: Path, monkeypatch: Any) -> None:
    """ruamel's __deepcopy__ copies every node's attributes in Python (0.05-0.06 CPU s of a gate's files): each
    scan's copy is unpickled from the bytes parse_ahead kept, with the parse's line and column marks."""
    import copy

    from ruamel.yaml.comments import CommentedBase

    from pipeline.quality import soda_setup

    deep_copied: list[Any] = []
    deepcopy = copy.deepcopy
    monkeypatch.setattr(copy, "deepcopy", lambda value, *a: (
        deep_copied.append(value) if isinstance(value, CommentedBase) else None) or deepcopy(value, *a))
    checks = tmp_path / "stg_orders.yml"
    _volume_scan(tmp_path, "1")  # writes the file
    soda_setup.parse_ahead([checks])
    deep_copied.clear()

    first, second = _volume_scan(tmp_path, "1"), _volume_scan(tmp_path, "5")
    parsed, copied = soda_setup._parsed(checks.read_text()), soda_setup.parsed_checks(checks.read_text())

    assert first[1][0].outcome == "pass" and second[1][0].outcome == "fail", "each scan its own variables"
    assert deep_copied == [], "no scan deep-copied the parsed file"
    assert copied == parsed and copied is not parsed, "a copy of its own, equal to the parse"
    table = next(iter(parsed))
    assert copied.lc.data == parsed.lc.data and copied[table].lc.data == parsed[table].lc.data, "the line marks"
    assert copied[table][0].lc.data == parsed[table][0].lc.data, "down to the checks' own"


def test_a_checks_file_may_use_the_variables_soda_gives_itself(tmp_path: Path) -> None:
    """`${NOW}` is Soda's own (a scan's start, unless the caller gives one): not refused as unknown."""
    checks = tmp_path / "dim_user.yml"
    checks.write_text("checks for dim_user:\n  - row_count > 0:\n      filter: timestamp '${NOW}' > timestamp"
                      " '2000-01-01'\n")
    con = duckdb.connect()
    con.execute("create table dim_user as select 1 as user_id")

    exit_code, results = run_checks_file(checks, {}, lambda scan: add_duckdb(scan, con, "lake"), "lake",
                                         default_table="dim_user")
    assert [r.outcome for r in results] == ["pass"], results


def test_a_checks_file_that_is_not_yaml_is_reported_as_such(tmp_path: Path) -> None:
    """The parse-once path leaves a YAML error to soda-core's own parse, which reports it."""
    import pytest

    from pipeline.quality.results import NoChecksParsed

    checks = tmp_path / "dim_user.yml"
    checks.write_text("checks for dim_user:\n  - row_count > 0\n  - missing_count(user_id: [unclosed\n")
    con = duckdb.connect()
    con.execute("create table dim_user as select 1 as user_id")

    with pytest.raises(NoChecksParsed, match="YAML syntax error"):
        run_checks_file(checks, {}, lambda scan: add_duckdb(scan, con, "lake"), "lake", default_table="dim_user")


def test_a_check_whose_query_runs_out_of_memory_names_the_setting_not_an_errored_check(tmp_path: Path,
                                                                                   luigi_settings) -> None:
    # a SodaCL check over more distinct ids than [duckdb] memory_limit holds: the gate fails as the setting it
    # is (the runbook's "DuckDB out of memory"), not as a check that "errored" and blocks the date's data
    luigi_settings("duckdb", memory_limit="8MB")
    checks = tmp_path / "stg_events.yml"
    checks.write_text("checks for stg_events:\n  - duplicate_count(event_id) = 0:\n      name: no duplicate event_id\n")
    con = duckdb.connect()
    con.execute("create table stg_events as select 'EVT_' || range as event_id from range(2000000)")
    con.execute("set memory_limit = '8MB'")
    con.execute("set threads = 1")
    with pytest.raises(sqlrun.DuckDBOutOfMemory, match=r"^DuckDB ran out of memory under \[duckdb\] memory_limit ="
                                                        r" 8MB \((failed to|could not) .+\): raise it"):
        run_checks_file(checks, {}, lambda scan: add_duckdb(scan, con, "lake"), "lake", default_table="stg_events")
