"""A section or option name in the configuration files that nothing reads (a misspelling) stops the run with one line
naming it, the file and the closest known name, before any task runs: it was ignored and the default used (exit 0)."""
from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

from tests.support.luigi_config import refused_before_any_work
from tests.support.paths import REPO

D = dt.date(2025, 12, 15)
WILL_NOT_RUN = ("WARNING: Will not run DailyPipeline(date=2025-12-15) or any dependencies due to error in complete()"
                " method: ")


@pytest.mark.parametrize(("settings", "said"), [
    ("[checks]\nlate_fail_prc = 5\n",
     "[checks] late_fail_prc is not an option of [checks] (did you mean late_fail_pct?)"),
    ("[chekcs]\nlate_fail_pct = 5\n", "[chekcs] is not a section the pipeline or Luigi reads (did you mean checks?)"),
    ("[duckdb]\nmemroy_limit = 10MB\n",
     "[duckdb] memroy_limit is not an option of [duckdb] (did you mean memory_limit?)"),
    ("[model]\nbusiness_time_zone = Europe/Berlin\n",
     "[model] business_time_zone is not an option of [model] (did you mean business_timezone?)"),
    ("[freshness]\nmax_age_hour = 1\n",
     "[freshness] max_age_hour is not an option of [freshness] (did you mean max_age_hours?)"),
    ("[email]\nreciever = x@y\n", "[email] reciever is not an option of [email] (did you mean receiver?)"),
])
def test_a_misspelled_name_stops_the_daily_command_naming_it_and_its_file(tmp_path: Path, settings: str,
                                                                          said: str) -> None:
    named, stderr = refused_before_any_work(tmp_path, settings, D, said)
    assert named == [f"{WILL_NOT_RUN}{said}: correct its name or remove it in {tmp_path / 'operator.cfg'} (a name"
                     " nothing reads would leave the default in use)"], stderr[-3000:]


def test_the_names_luigi_reads_besides_the_settings_classes_are_taken(luigi_settings) -> None:
    """Older dash names (a parameter's config_path), options Luigi reads raw, free-form sections, a task's section."""
    from pipeline import setting_names

    luigi_settings("core", **{"default-scheduler-host": "127.0.0.1", "rpc-retry-wait": 3, "smtp_host": "localhost",
                              "no_configure_logging": "false"})
    luigi_settings("worker", **{"keep-alive": "true"})
    luigi_settings("resources", duckdb_memory=4)
    luigi_settings("DailyPipeline", force="false")
    luigi_settings("task_history", db_connection="sqlite://")
    luigi_settings("prometheus", use_task_family_in_labels="true")
    assert setting_names.unknown_setting() is None
    luigi_settings("worker", keep_alvie="true")  # the same check, one name wrong
    assert setting_names.unknown_setting() == (
        "[worker] keep_alvie is not an option of [worker] (did you mean keep_alive?): correct its name or remove it in"
        " luigi.cfg (or in the file LUIGI_CONFIG_PATH names) (a name nothing reads would leave the default in use)")


def test_every_settings_class_of_the_pipeline_is_known() -> None:
    """A luigi.Config the check does not import would make its own section unknown: each is in SETTINGS_MODULES."""
    from pipeline import setting_names

    known = setting_names.known_names()
    trees = [ast.parse(path.read_text()) for path in (REPO / "pipeline").rglob("*.py")]
    sections = [node.name for tree in trees for node in ast.walk(tree)
                if isinstance(node, ast.ClassDef) and any(ast.unparse(base) == "luigi.Config" for base in node.bases)]
    assert sections and not [name for name in sections if name not in known], sections



def test_luigids_own_section_is_known(luigi_settings) -> None:
    """luigid reads [cors] (luigi.server, which a run does not import): a shared luigi.cfg holding it is not refused,
    a misspelled option of it is."""
    from pipeline import setting_names

    luigi_settings("cors", enabled="true", allow_any_origin="false")
    assert setting_names.unknown_setting() is None
    luigi_settings("cors", enabeld="true")
    assert (setting_names.unknown_setting() or "").startswith(
        "[cors] enabeld is not an option of [cors] (did you mean enabled?)")


def test_a_section_luigis_own_code_reads_is_not_refused(luigi_settings) -> None:
    """A machine-wide /etc/luigi/luigi.cfg may hold sections other pipelines' Luigi modules read (luigid's [datadog],
    contrib's [hdfs]): they are Luigi's, not a misspelling; a section nothing reads still is."""
    from pipeline import setting_names

    luigi_settings("datadog", api_key="x")
    luigi_settings("hdfs", client="webhdfs")
    assert setting_names.unknown_setting() is None
    luigi_settings("chekcs", late_fail_pct="5")
    assert (setting_names.unknown_setting() or "").startswith("[chekcs] is not a section")


def test_the_settings_are_checked_again_when_they_change(luigi_settings) -> None:
    """check_settings remembers the settings it found usable (a backfill asks once a date), not past a change."""
    from pipeline import config
    from pipeline.tasks import publish

    publish.check_settings()
    publish.check_settings()
    luigi_settings("checks", late_fail_prc="5")
    with pytest.raises(config.BadSetting, match="late_fail_prc"):
        publish.check_settings()
