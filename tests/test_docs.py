"""The README is the front page and the docs/ pages its reference: size, first screen, and links that resolve."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page (lower case, punctuation dropped, spaces to '-')."""
    found = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_the_readme_is_a_front_page() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.encode()) <= 15_000, "README.md is over 15 KB: move reference text into docs/"
    first_screen = "\n".join(text.splitlines()[:60])
    for command in ("make demo", "make test", "DailyPipeline --date", "RangeDaily --of DailyPipeline"):
        assert command in first_screen, f"the README's first screen lacks {command!r}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: links that do not resolve: {broken}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in (REPO / "docs").glob("*.md") if f"(docs/{p.name})" not in readme]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("section", ["postgres", "publish"])
def test_every_serving_setting_is_in_the_serving_page_with_its_default(section: str) -> None:
    """docs/serving.md's `[postgres]` and `[publish]` tables list each setting of pipeline.serving.settings, with its default."""
    from pipeline.serving import settings

    text = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    table = re.split(rf"settings \(`luigi\.cfg` `\[{section}\]`\)", text, maxsplit=1, flags=re.I)[1].split("\n\n", 2)[1]
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `(\w+)` \| `([^`]*)` \|", table, re.M)}
    expected = {name: param._default for name, param in getattr(settings, section).get_params()}
    assert set(rows) == set(expected), "settings missing from (or unknown to) the table"
    for name, default in expected.items():
        shown = rows[name]
        same = shown == str(default) or (isinstance(default, float) and shown == f"{default:g}")
        assert same, f"{name}: the table says {shown}, the code {default}"


def test_every_checks_setting_is_in_luigi_cfg_and_the_gate_page_with_its_default() -> None:
    """[checks] (pipeline.quality.gate.checks): each setting in luigi.cfg with the code's default, and named in
    docs/quality-gate.md, where a settings table row, if it has one, shows that default too."""
    import configparser

    from pipeline.quality import gate

    cfg = configparser.ConfigParser(inline_comment_prefixes=("#",))
    cfg.read(REPO / "luigi.cfg", encoding="utf-8")
    page = (REPO / "docs" / "quality-gate.md").read_text(encoding="utf-8")
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `(\w+)` \| `([^`]*)` \|", page, re.M)}
    for name, param in gate.checks.get_params():
        default = param._default
        assert cfg.has_option("checks", name), f"[checks] {name} is not in luigi.cfg"
        written = cfg.get("checks", name)
        for where, shown in (("luigi.cfg", written), ("docs/quality-gate.md", rows.get(name, written))):
            same = shown == str(default) or (isinstance(default, (int, float)) and float(shown) == float(default)) \
                or (default is None and shown == "")  # an optional setting, unset
            assert same, f"[checks] {name}: {where} says {shown}, the code {default}"
        assert f"`{name}`" in page, f"[checks] {name} is not named in docs/quality-gate.md"
