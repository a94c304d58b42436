"""A setting in luigi.cfg that cannot be read: one line naming `[section] option = value`, never a traceback.

`[compaction]` is read by the Publish task after its transaction committed: a bad value there is a
warning and no compaction, not a failed publish.
"""
from __future__ import annotations

import datetime as dt
import logging

import pytest

from tests.support.serving import event, order, write_facts

D = dt.date(2025, 12, 14)


@pytest.mark.parametrize(("option", "value", "expected"), [("closed_months", "abc", "expected true or false"),
                                                           ("after_days", "soon", "expected a whole number")])
def test_a_bad_compaction_setting_is_one_warning_and_the_publish_succeeds(
        fresh_db, serving_lake, luigi_settings, caplog: pytest.LogCaptureFixture, option: str, value: str,
        expected: str) -> None:
    from pipeline import tasks
    from pipeline.serving import publish

    luigi_settings("compaction", **{option: value})
    write_facts(D, [order("ORD_1", D)], [event("EVT_1", D)])
    with caplog.at_level(logging.WARNING, logger="pipeline.serving.compaction"):
        tasks.Publish(date=D, force=True).run()
    assert publish.is_published(D) and tasks.Publish(date=D).complete(), "published and reconciled"
    said = [r.getMessage() for r in caplog.records if r.name == "pipeline.serving.compaction"]
    assert said == [f"automatic compaction of closed months skipped: [compaction] {option} = {value!r} is not valid"
                    f" ({expected}): fix it in luigi.cfg (or in the file LUIGI_CONFIG_PATH names), or remove it for"
                    " the default"], said
