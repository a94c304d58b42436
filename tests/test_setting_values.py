"""A value the tasks can read but not use stops the daily command with one line naming it before any task runs: a
catalog URL that is not http(s) or a ready marker with a / failed tasks after the date was landed and staged (or
with a traceback), a weekday of 9 was taken as 2, no catalog attempt as one, no rows per COPY batch failed the preload
with a pyarrow error naming no setting, an [email] / [smtp] value crashed the run when the first failure mail was
sent."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.support.luigi_config import refused_before_any_work

D = dt.date(2025, 12, 15)
WILL_NOT_RUN = ("WARNING: Will not run DailyPipeline(date=2025-12-15) or any dependencies due to error in complete()"
                " method: ")
FIX = ": fix it in luigi.cfg (or in the file LUIGI_CONFIG_PATH names), or remove it for the default"


@pytest.mark.parametrize(("settings", "said"), [
    ("[publish]\ncopy_batch_rows = 0\n",
     "[publish] copy_batch_rows = '0' is not valid (expected 1 or more: rows per batch written to Postgres)" + FIX),
    ("[catalog]\nweekday = 9\n", "[catalog] weekday = '9' is not valid (expected 0 to 6: 0 is Monday, 6 Sunday)" + FIX),
    ("[catalog]\nattempts = 0\n", "[catalog] attempts = '0' is not valid (expected 1 or more: the landing task's"
                                  " attempts at the API, the first included)" + FIX),
    ("[catalog]\nproducts_url = ftp://x\n", "[catalog] products_url = 'ftp://x' is not an http(s) URL of a"
                                            " DummyJSON-style API (e.g. https://dummyjson.com/products); leave it"
                                            " empty to read catalog files"),
    # [smtp] was once read by the first failure mail only: exit 40
    ("[smtp]\nport = abc\n[email]\nreceiver = ops@example.com\nforce_send = true\n",
     "[smtp] port = 'abc' is not valid (expected a whole number)" + FIX),
    ("[landing]\nready_marker = a/b\n",
     "[landing] ready_marker = 'a/b' is not a plain file name (e.g. _SUCCESS): name the file the sender writes"),
])
def test_a_value_no_task_can_use_stops_the_daily_command_before_any_work(tmp_path: Path, settings: str,
                                                                          said: str) -> None:
    named, stderr = refused_before_any_work(tmp_path, settings, D, said)
    assert named and named[0] == WILL_NOT_RUN + said, stderr[-3000:]
    if "force_send = true" in settings:  # the refusal's own e-mail cannot be sent: said at the end, not a crash
        assert f"was NOT sent: {said}; nobody was alerted" in stderr, stderr[-3000:]


@pytest.mark.parametrize(("variable", "value", "said"), [
    ("ECOMM_PRODUCTS_URL", "ftp://x", "ECOMM_PRODUCTS_URL='ftp://x' is not an http(s) URL"),
    ("ECOMM_USERS_URL", "file:///u.json", "ECOMM_USERS_URL='file:///u.json' is not an http(s) URL"),
    ("ECOMM_READY_MARKER", "a/b", "ECOMM_READY_MARKER='a/b' is not a plain file name"),
])
def test_a_variable_no_task_can_use_is_refused_with_the_settings_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str) -> None:
    from pipeline.config import BadSetting
    from pipeline.tasks.publish import check_settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(BadSetting, match="^" + said.replace("(", r"\(").replace(")", r"\)")):
        check_settings()


@pytest.mark.parametrize(("values", "said"), [
    ({"orders_min_rows": "-1"}, "[checks] needs 0 <= orders_min_rows <= orders_max_rows, got -1 and 500000"),
    ({"orders_min_rows": "600000"}, "[checks] needs 0 <= orders_min_rows <= orders_max_rows, got 600000 and 500000"),
    ({"events_max_rows": "10"}, "[checks] needs 0 <= events_min_rows <= events_max_rows, got 500 and 10"),
    ({"freshness_warn_hours": "-1"}, "[checks] needs freshness_warn_hours >= 0, got -1"),
])
def test_gate_bounds_that_cannot_mean_anything_are_refused_before_a_run(luigi_settings, values: dict[str, str],
                                                                        said: str) -> None:
    """A negative bound or hour count, or a minimum above the maximum, made the gate's check pass or fail every date."""
    from pipeline.config import BadSetting
    from pipeline.tasks.publish import check_settings

    luigi_settings("checks", **values)
    with pytest.raises(BadSetting) as refused:
        check_settings()
    assert str(refused.value) == said


def test_restate_refuses_a_bad_setting_before_it_archives_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   luigi_settings, capsys) -> None:
    """It archived the date's landed files, then its run refused the setting (exit 35), leaving the date pending."""
    from pipeline.tasks import restate

    monkeypatch.setenv("ECOMM_LAKE_DIR", str(tmp_path / "lake"))
    monkeypatch.setenv("ECOMM_DATA_DIR", str(tmp_path / "incoming"))
    luigi_settings("checks", late_fail_pct="abc")
    assert restate.main(["--date", str(D), "--source", "orders"]) == 35
    assert capsys.readouterr().err.splitlines() == [
        "[checks] late_fail_pct = 'abc' is not valid (expected a number)" + FIX]
    assert not (tmp_path / "lake").exists(), "nothing archived"
