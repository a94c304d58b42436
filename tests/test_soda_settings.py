"""soda-core reads and writes no settings file of its own in a pipeline process (`pipeline.quality.soda_setup`).

soda-core takes its settings from the first of ~/.soda, ./.soda and /tmp/.soda that exists, and writes its
defaults (usage telemetry on) into the first it can create. On a shared host, a user without a writable HOME made
/tmp/.soda (mode 0700), and every other user's gate then failed reading it (PermissionError), so no date published.
"""
from __future__ import annotations

import os
import subprocess
import sys

from tests.support.ops import SEED_DAY, Ops
from tests.support.paths import REPO


def test_a_date_publishes_whatever_soda_settings_file_the_host_holds(ops: Ops, tmp_path) -> None:
    """The gate and the serving checks run with a ~/.soda/config.yml that cannot be read (a folder in its place),
    as with another user's /tmp/.soda; and nothing is written into the user's HOME."""
    home = tmp_path / "home"
    (home / ".soda" / "config.yml").mkdir(parents=True)  # exists, and reading it fails (IsADirectoryError)
    ops.extra_env["HOME"] = str(home)
    result = ops.luigi("DailyPipeline", "--date", str(SEED_DAY), "--local-scheduler")
    assert result.returncode == 0, result.stderr[-3000:]
    assert ops.query("select count(*) from audit.publish_log where load_date = %s", [SEED_DAY]) == [(1,)]
    assert sorted(p.name for p in (home / ".soda").iterdir()) == ["config.yml"]
    assert sorted(p.name for p in home.iterdir()) == [".soda"]


def test_soda_core_sees_telemetry_off_and_writes_nothing(tmp_path) -> None:
    """With no settings file anywhere it could read, soda-core made one (telemetry on, a cookie id): in HOME, the
    current folder or /tmp. It holds its settings in memory only."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    code = ("from pipeline.quality import soda\n"
            "from soda.common.config_helper import ConfigHelper\n"
            "from soda.telemetry.soda_telemetry import SodaTelemetry\n"
            "assert ConfigHelper.get_instance().send_anonymous_usage_stats is False\n"
            "assert SodaTelemetry.get_instance().soda_config.send_anonymous_usage_stats is False\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                            check=False, env={**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert list(home.iterdir()) == [] and list(cwd.iterdir()) == []
