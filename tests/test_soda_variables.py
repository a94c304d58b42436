"""soda-core's `${...}` resolution in a pipeline process (`pipeline/quality/soda_setup.py`): a text holding only plain
`${name}` references is rendered by substitution, exactly as Jinja renders it; any other text goes through Jinja."""
from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline.quality import gate, soda_setup
from pipeline.quality.gate_settings import gate_variables
from pipeline.quality.soda import add_duckdb, run_checks_file

# soda_setup is imported first (above): Jinja below is soda-core's class with the pipeline's resolution
from soda.common.jinja import Jinja  # noqa: E402,I001

# the serving reconciliation's own variables (pipeline.quality.serving_reconciliation), beside the gate's
SERVING_VARIABLES = {"expected_order_rows": "100000", "expected_event_rows": "1000000",
                     "expected_revenue_cents": "1234567890"}


def _texts(node: Any) -> list[str]:
    return [text for text in soda_setup.strings(node) if "${" in text]


def _checks_texts() -> list[tuple[str, str]]:
    return [(str(path.relative_to(gate.checks_dir())), text)
            for path in sorted(gate.checks_dir().rglob("*.yml"))
            for text in _texts(soda_setup.parsed_checks(path.read_text(encoding="utf-8")))]


def _jinja(text: str, variables: dict[str, Any]) -> str:
    """What soda-core's own Jinja.resolve renders (a template compiled afresh, rendered by Jinja's runtime)."""
    return soda_setup._compile(text).render(dict(variables))


def test_every_variable_text_of_the_checks_renders_by_substitution_exactly_as_jinja_renders_it() -> None:
    texts = _checks_texts()
    variables = {**gate_variables(dt.date(2026, 1, 5)), **SERVING_VARIABLES}
    files = {path for path, _ in texts}

    assert len(texts) > 100 and len(files) == len(list(gate.checks_dir().rglob("*.yml"))), "every checks file"
    for path, text in texts:
        assert soda_setup.plain_parts(text) is not None, f"{path}: {text!r} is rendered by substitution"
        assert Jinja.resolve(text, variables) == _jinja(text, variables), f"{path}: {text!r}"


@pytest.mark.parametrize("text", [
    "a ${a} b", "${ a }\n", "${a}\n\n", "plain\n", "${n}${d}${f}${day}${nothing}", "${a}}", "$${a}", "${\na\n}",
    "${a} and ${n}\n",
])
def test_a_plain_text_renders_as_jinja_does_whatever_the_values_types(text: str) -> None:
    variables = {"a": "x", "n": 5, "d": decimal.Decimal("1.50"), "f": 0.1, "day": dt.date(2026, 1, 5),
                 "nothing": None}

    assert soda_setup.plain_parts(text) is not None
    assert Jinja.resolve(text, variables) == _jinja(text, variables)


def test_the_process_environment_wins_over_a_variable_as_in_soda_cores_jinja_context(monkeypatch: Any) -> None:
    monkeypatch.setenv("PERF2_NAME", "from the environment")

    assert Jinja.resolve("${PERF2_NAME}!", {"PERF2_NAME": "a variable"}) == "from the environment!"
    assert Jinja.resolve("${PERF2_NAME}!", {"PERF2_NAME": "a variable"}) == _jinja("${PERF2_NAME}!", {})


@pytest.mark.parametrize("text", [
    "${ a | upper }", "{% if a %}${a}{% endif %}", "{# note #}${a}", "{{ a }} ${a}", "${a.b}", "${-a}", "${ a -}",
    "${true}", "${none}", "${env_var}", "${range}", "${undefined_name}", "x\r\n${a}\r\n", "${ 'x' }", "${a ~ a}",
])
def test_a_text_with_other_jinja_syntax_or_names_goes_through_jinja(text: str, monkeypatch: Any) -> None:
    through_jinja: list[str] = []
    resolve = soda_setup._resolve
    monkeypatch.setattr(soda_setup, "_resolve", lambda t, *a: through_jinja.append(t) or resolve(t, *a))
    variables = {"a": "x", "true": "a variable", "env_var": "a variable"}  # `range`: a global of Jinja's

    assert Jinja.resolve(text, variables) == _jinja(text, variables)
    assert through_jinja == [text]


def test_a_scan_of_plain_variable_texts_compiles_no_template(tmp_path: Path, monkeypatch: Any) -> None:
    """soda-core compiles a Jinja template for each `${...}` text it resolves (parse, query, rule text); the
    checks' texts hold plain references only and are rendered without one."""
    compiled: list[str] = []
    compile_template = soda_setup._compile
    monkeypatch.setattr(soda_setup, "_compile",
                        lambda source, *a: compiled.append(source) or compile_template(source, *a))
    soda_setup._template.cache_clear()
    checks = tmp_path / "stg_orders.yml"
    checks.write_text(
        "checks for stg_orders:\n"
        "  - row_count between ${low} and 10:\n"
        "      name: volume on ${load_date}\n"
        "  - missing_count(order_id) = 0:\n"
        "      name: ids present\n"
        "      filter: order_id >= ${low}\n"
    )
    con = duckdb.connect()
    con.execute("create table stg_orders as select range as order_id from range(3)")

    code, results = run_checks_file(checks, {"low": "1", "load_date": "2026-01-05"},
                                    lambda scan: add_duckdb(scan, con, "lake"), "lake", default_table="stg_orders")

    by_name = {r.check_name: r for r in results}
    assert code == 0 and by_name["volume on 2026-01-05"].message.endswith("rule: row_count between 1 and 10")
    assert by_name["ids present"].outcome == "pass"
    assert compiled == [], "no template compiled for plain `${name}` texts"
