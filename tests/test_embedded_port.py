"""ECOMM_PG_PORT and a data folder whose server runs on another port: an error naming both settings, not adoption.

`ECOMM_PG_DATA` naming a folder whose server runs on port A while `ECOMM_PG_PORT` (or [postgres] embedded_port)
says B: every command used A without a word, so BI tools pointed at B found nobody. A server is never restarted
for it (BI sessions and other runs may use it); stopped, it starts on the configured port.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.postgres import PG_ENV, EmbeddedServer, embedded_in_temp_dir
from tests.support.processes import free_port


def _env(server: EmbeddedServer, tmp_path: Path, **settings: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    cfg = tmp_path / "luigi-test.cfg"  # never the developer's luigid (luigi.cfg's 127.0.0.1:8082)
    if not cfg.exists():
        cfg.write_text(f"[core]\nscheduler_port = {free_port()}\n")
    return {**base, "ECOMM_PG_DATA": str(server.data_dir), "ECOMM_DATA_DIR": str(tmp_path / "incoming"),
            "ECOMM_LAKE_DIR": str(tmp_path / "lake"), "LUIGI_CONFIG_PATH": str(cfg), **settings}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180, check=False)


@pytest.mark.slow
def test_a_data_folder_whose_server_runs_on_another_port_is_one_line_naming_both_settings(tmp_path: Path) -> None:
    with embedded_in_temp_dir() as server:
        running, other = server.port, free_port()
        started = _run(["pipeline.serving.pg", "start"], _env(server, tmp_path, ECOMM_PG_PORT=str(running)))
        assert started.returncode == 0 and f"port={running}" in started.stdout, started.stderr

        said = (f"the embedded Postgres in {server.data_dir} (ECOMM_PG_DATA) runs on port {running}, but ECOMM_PG_PORT"
                f" is {other}: set ECOMM_PG_PORT to {running}, or stop it (`python -m pipeline.serving.pg stop`, which"
                f" ends its sessions) so that it starts on {other}")
        mismatch = _env(server, tmp_path, ECOMM_PG_PORT=str(other))
        for command in ("dsn", "start"):
            refused = _run(["pipeline.serving.pg", command], mismatch)
            assert refused.returncode == 35 and refused.stdout == "", refused.stdout  # a setting's code
            assert refused.stderr.strip() == f"python -m pipeline.serving.pg {command}: error: {said}", refused.stderr
        for command in (["migrate"], ["report", "--date", "2025-12-15"], ["summary", "--date", "2025-12-15"]):
            # the server is up: not "cannot reach", nor the summary's "publish state unknown (Postgres not reachable)"
            refused = _run(["pipeline", *command], mismatch)
            assert refused.returncode == 35 and said in refused.stderr, refused.stderr
            assert "cannot reach" not in refused.stderr and "start it" not in refused.stderr, refused.stderr
            assert "not reachable" not in refused.stdout + refused.stderr, refused.stdout

        daily = _run(["luigi", "--module", "pipeline.tasks", "DailyPipeline", "--date", "2025-12-15",
                      "--local-scheduler"], mismatch)
        assert daily.returncode == 35 and "Traceback" not in daily.stderr, daily.stderr[-3000:]  # a setting's code
        # the error's kind, so that the summary gives the runbook's what-to-do (it gave none)
        assert f"DailyPipeline could not be scheduled: EmbeddedPortMismatch: {said}" in daily.stdout, daily.stdout[-3000:]
        assert "what to do (Postgres port setting): set the port as the message says" in daily.stdout, daily.stdout

        # no ECOMM_PG_PORT: the setting that says the port is luigi.cfg's
        cfg = tmp_path / "port.cfg"
        cfg.write_text(f"[postgres]\nembedded_port = {other}\n")
        from_cfg = _run(["pipeline.serving.pg", "dsn"], _env(server, tmp_path, LUIGI_CONFIG_PATH=str(cfg)))
        assert from_cfg.returncode == 35 and from_cfg.stderr.strip().endswith(
            f"runs on port {running}, but [postgres] embedded_port is {other}: set [postgres] embedded_port to"
            f" {running}, or stop it (`python -m pipeline.serving.pg stop`, which ends its sessions) so that it starts"
            f" on {other}"), \
            from_cfg.stderr

        status = _run(["pipeline.serving.pg", "status"], mismatch)  # the facts, then what the others refuse
        assert status.returncode == 0 and f"port {running}," in status.stdout, status.stdout + status.stderr
        assert status.stderr.strip() == f"warning: {said}", status.stderr

        # as the line says: stopped, it starts on the configured port
        assert _run(["pipeline.serving.pg", "stop"], mismatch).stdout.strip() == "stopped"
        moved = _run(["pipeline.serving.pg", "start"], mismatch)
        assert moved.returncode == 0 and f"port={other}" in moved.stdout, moved.stderr
        status = _run(["pipeline.serving.pg", "status"], mismatch)
        assert f"port {other}," in status.stdout, status.stdout + status.stderr


def test_the_runbook_tells_a_port_mismatch_from_postgres_down() -> None:
    """What luigid and the failure e-mail say: "Postgres down: start it" would fail the same way (`pg start`)."""
    from pipeline.serving.data_folder import EmbeddedPortMismatch
    from pipeline.tasks import runbook

    said = runbook.explain("DailyPipeline", dt.date(2025, 12, 15), EmbeddedPortMismatch(
        "the embedded Postgres in .pgdata (ECOMM_PG_DATA) runs on port 54321, but ECOMM_PG_PORT is 54320: ..."),
        scheduled=False)
    assert "What to do (Postgres port setting): set the port as the message says" in said, said
    assert "start it" not in said, said


@pytest.mark.parametrize("port", ["abc", "70000", "-1"])
def test_a_port_setting_that_is_no_tcp_port_is_one_line_before_any_data_folder_is_made(tmp_path: Path, port) -> None:
    """It was "not a port number" after initdb had made the data folder (70000: Postgres's own failure to start),
    exit 1, and the daily run's e-mail said "Postgres down: start it"."""
    env = {k: v for k, v in os.environ.items() if k not in PG_ENV and not k.startswith("ECOMM_")}
    env.update(ECOMM_PG_DATA=str(tmp_path / "pgdata"), ECOMM_PG_PORT=port)
    refused = _run(["pipeline.serving.pg", "start"], env)
    assert refused.returncode == 35 and refused.stderr.strip() == (
        f"python -m pipeline.serving.pg start: error: ECOMM_PG_PORT={port!r} is not a TCP port (1-65535): set it to"
        " a free one"), refused.stderr
    assert not (tmp_path / "pgdata").exists()

    from pipeline.serving.data_folder import EmbeddedPortInvalid
    from pipeline.tasks import runbook

    said = runbook.explain("DailyPipeline", dt.date(2025, 12, 15), EmbeddedPortInvalid("..."), scheduled=False)
    assert "What to do (Postgres port setting)" in said and "start it" not in said, said
