"""The pipeline's own log lines reach the `luigi` command's log (`pipeline.tasks.task_logs`).

Luigi's default logging gives only its own logger a handler: a task that waited on Postgres, a lock or a
slow reconciliation said nothing of it, and the lines "landed N rows ...", "published D ..." were dropped.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from pipeline.tasks import task_logs
from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO

LINE = re.compile(r"^INFO: \[pid (\d+)\] \d\d:\d\d:\d\d \S+ (pipeline\.[a-z_.]+): (.*)$")  # time, zone


def _pipeline_lines(stderr: str) -> list[tuple[int, str, str]]:
    return [(int(m[1]), m[2], m[3]) for m in map(LINE.match, stderr.splitlines()) if m]


def test_a_daily_run_logs_each_step_once_with_its_process_and_time(ops: Ops) -> None:
    result = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = _pipeline_lines(result.stderr)
    said = [f"{name}: {text}" for _, name, text in lines]
    assert len(said) == len(set(said)), "a line was logged twice"
    landed = {(pid, text.split()[4]) for pid, name, text in lines
              if name == "pipeline.ingest.landing" and text.startswith("landed ")}  # "landed N rows of orders ..."
    assert {source for _, source in landed} >= {"orders", "events", "products"}, [*landed, *said]
    assert len({pid for pid, _ in landed}) == len(landed), "each landing is its task's own process"
    assert any(text.startswith(f"published {SEED_DAY}: ") for _, name, text in lines
               if name == "pipeline.serving.publish"), said
    assert any(text.startswith(f"serving reconciled for {SEED_DAY}") for _, _, text in lines), said
    assert not [line for line in said if line.startswith("pipeline.lake: wrote")], "file-level lines are DEBUG"


def test_a_logging_conf_file_is_left_to_configure_the_lines(ops: Ops, tmp_path: Path) -> None:
    """With `--logging-conf-file` the root logger's handler has the pipeline's lines, each once, as it formats them."""
    conf = tmp_path / "logging.ini"
    conf.write_text("[loggers]\nkeys=root\n[handlers]\nkeys=err\n[formatters]\nkeys=plain\n"
                    "[logger_root]\nlevel=INFO\nhandlers=err\n"
                    "[handler_err]\nclass=StreamHandler\nformatter=plain\nargs=(sys.stderr,)\n"
                    "[formatter_plain]\nformat=CONF %(name)s | %(message)s\n", encoding="utf-8")
    result = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler", "--logging-conf-file", str(conf))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not _pipeline_lines(result.stderr)
    published = [line for line in result.stderr.splitlines()
                 if line.startswith(f"CONF pipeline.serving.publish | published {SEED_DAY}: ")]
    assert len(published) == 1, result.stderr[-3000:]


def test_a_process_whose_logging_is_configured_is_left_alone() -> None:
    """pytest's capture is a root handler here, as any application's would be: nothing is added or changed."""
    ours = logging.getLogger("pipeline")
    before = (list(ours.handlers), ours.level)
    luigi_logger = logging.getLogger("luigi-interface")
    added = logging.StreamHandler()
    luigi_logger.addHandler(added)
    try:
        assert logging.getLogger().handlers
        task_logs.follow_luigi()
        assert (list(ours.handlers), ours.level) == before
    finally:
        luigi_logger.removeHandler(added)


FOLLOWING = """
import logging
from pipeline.tasks import task_logs

luigi = logging.getLogger("luigi-interface")  # Luigi's default logging at --log-level ERROR
handler = logging.StreamHandler()
handler.setLevel(logging.ERROR)
handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
luigi.addHandler(handler)
luigi.setLevel(logging.ERROR)
assert task_logs.follow_luigi()
said = logging.getLogger("pipeline.some.step")
said.info("an info line")
said.warning("a warning line")
said.error("an error line")
said.error("a bad call %s %s", 1)
said.error("after the bad call")
task_logs.stop_following()
said.error("after stopping")
"""


def test_warnings_show_whatever_luigi_s_level_and_a_bad_log_call_fails_nothing() -> None:
    """Below Luigi's level a warning still shows, as Python's last resort printed it; a bad call is reported, not
    raised into the task; a task Luigi ran in its own process leaves that process's logging as it was."""
    result = subprocess.run([sys.executable, "-c", FOLLOWING], cwd=REPO, capture_output=True, text=True, timeout=60,
                            check=False, env={**os.environ, "TZ": "Asia/Tokyo"})  # the lines name the zone
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "a warning line" in lines, lines  # the last resort's form: the message alone
    assert any(re.match(r"ERROR: \[pid \d+\] \d\d:\d\d:\d\d JST pipeline\.some\.step: an error line$", line)
               for line in lines), lines
    assert "--- Logging error ---" in lines and any(line.endswith(": after the bad call") for line in lines), lines
    assert not any("an info line" in line for line in lines), lines
    assert "after stopping" in lines, lines  # back to the last resort: no handler of ours
