"""A headless browser for the tests that check what a page renders (the daily report, the notebook's
HTML export), and a small DOM of a page's elements to assert on.

- `chromium` (session fixture): Debian's chromium, installed with apt-get when missing (never skipped);
- `headless(chromium, tmp_path, *args)`: run it with the network cut off (every host resolves to nothing);
- `Dom(text)`: every element of a page with its attributes and its text.
"""
from __future__ import annotations

import html.parser
import os
import subprocess
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (the suite never skips for it)."""
    if not os.path.exists(CHROMIUM):
        install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
            done = subprocess.run(install, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"could not install chromium (as root: apt-get update && apt-get install -y chromium):"
                            f"\n{done.stderr[-2000:]}")
    return CHROMIUM


def headless(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=900,2400", *args],
        capture_output=True, text=True, timeout=120, check=True)


class Dom(html.parser.HTMLParser):
    """Every element of a page with its attributes and its text (its descendants' included)."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "line", "path", "circle"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": ""})

    def handle_endtag(self, tag):
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index]["tag"] == tag:
                del self._open[index:]
                break

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def find(self, tag: str | None = None, **attrs: str) -> list[dict]:
        wanted = {key.replace("_", "-"): value for key, value in attrs.items()}
        return [e for e in self.elements if (tag is None or e["tag"] == tag)
                and all(e["attrs"].get(k) == v if v is not None else k in e["attrs"] for k, v in wanted.items())]

    def one(self, tag: str | None = None, **attrs: str) -> dict:
        found = self.find(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]


