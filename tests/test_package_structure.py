"""The shape of pipeline/: small modules, no import cycle, and the product never imports its tooling or tests.

Read from the source with `ast` (nothing is imported), so an import inside a function counts as much
as one at the top: a cycle hidden in a function is still a cycle a reader has to untangle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"
MAX_LINES = 400
# Modules allowed over MAX_LINES for now, with why. An entry that is back under the limit fails the
# test, so the list only shrinks.
OVER_LIMIT: dict[str, str] = {}  # module -> why it may be over the limit for now (a test fails once it is not)
# The only place the product may reach tooling: the fault hook loads the fault engine when ECOMM_FAULT is set.
ALLOWED_TOOLING = {("pipeline.faults", "devtools.faults")}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> every module it imports (pipeline modules resolved to the module, others by full name)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` the module mod
                # (outside pipeline/ the full dotted name is kept: `from devtools import faults`)
                targets.update(base if base in modules and f"{base}.{alias.name}" not in modules
                               else f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {_owner(target, modules) for target in targets} - {name}
    return graph


def _owner(target: str, modules: dict[str, Path]) -> str:
    """The pipeline module a dotted name lives in (itself when it is no pipeline module)."""
    name = target
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or target


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_in_pipeline() -> None:
    assert cycles(imports(_modules())) == []


def forbidden(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(module, import) pairs where the product reaches devtools/ or tests/ outside ALLOWED_TOOLING."""
    return sorted((module, target) for module, targets in graph.items() for target in targets
                  if target.split(".")[0] in ("devtools", "tests") and (module, target) not in ALLOWED_TOOLING)


def test_the_product_imports_neither_its_tooling_nor_its_tests() -> None:
    assert forbidden(imports(_modules())) == []


@pytest.mark.parametrize("module", sorted(_modules().values()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(module: Path) -> None:
    lines = len(module.read_text(encoding="utf-8").splitlines())
    name = str(module.relative_to(PACKAGE))
    if name in OVER_LIMIT:
        assert lines > MAX_LINES, f"{name} is {lines} lines now: remove it from OVER_LIMIT"
    else:
        assert lines <= MAX_LINES, f"{name} is {lines} lines (limit {MAX_LINES}): split it by concern"


def test_the_checks_find_cycles_and_forbidden_imports(tmp_path: Path) -> None:
    """The graph and cycle finder themselves, on a made-up package: a cycle through a function-level
    import, and an import of the tooling."""
    root = tmp_path / "pipeline"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "a.py").write_text("from pipeline.sub import b\n")
    (root / "sub" / "b.py").write_text("def f():\n    from . import c\n")
    (root / "sub" / "c.py").write_text("import pipeline.a\nfrom devtools import faults\n")
    modules = {".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__"): p
               for p in sorted(root.rglob("*.py"))}
    graph = imports(modules)
    assert cycles(graph) == [["pipeline.a", "pipeline.sub.b", "pipeline.sub.c"]]
    assert forbidden(graph) == [("pipeline.sub.c", "devtools.faults")]
