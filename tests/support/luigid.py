"""A real `luigid` for the tests: on a free loopback port, its state and logs in a temporary folder
(the `luigid` fixture, registered by tests/conftest.py)."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO
from tests.support.processes import free_port, wait_for


class Luigid:
    """A luigid subprocess on 127.0.0.1:<port> with its state and logs in a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        (root / "log").mkdir(parents=True)
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("luigid")), "--address", "127.0.0.1", "--port", str(self.port),
             "--logdir", str(root / "log"), "--state-path", str(root / "state.pickle")],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._up, timeout=30, what="luigid to listen")

    def _up(self) -> bool:
        assert self.process.poll() is None, "luigid exited"
        try:
            self.get("/api/task_list", {"status": "DONE"})
        except OSError:
            return False
        return True

    def get(self, path: str, data: dict[str, Any] | None = None) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if data is not None:
            url += "?" + urllib.parse.urlencode({"data": json.dumps(data)})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
        return json.loads(body)["response"] if path.startswith("/api/") else body.decode()

    def tasks(self, status: str) -> dict[str, Any]:
        return self.get("/api/task_list", {"status": status, "upstream_status": "", "search": ""})

    def scheduler_args(self) -> list[str]:
        return ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(self.port)]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[Luigid]:
    server = Luigid(tmp_path / "luigid")
    yield server
    server.stop()
