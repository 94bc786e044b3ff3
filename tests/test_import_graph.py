"""The package's shape, read from the source (ast, nothing imported): the runtime never imports the
offline build tools, and the import graph of ``edgeportrait`` has no cycles.

Both module-level and function-level (lazy) imports count: a lazy import only moves a cycle from
start-up to the first call. Imports under ``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "edgeportrait"
BUILD = "edgeportrait_build"


def _modules(package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a package by its own name, for its __init__)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth (functions, classes, try blocks)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules ``name`` imports, by dotted name (``from pkg import sub`` is ``pkg.sub`` if
    ``sub`` is a module, else ``pkg``)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = name.split(".")
            if not is_package:
                base.pop()
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            out.add(sub if sub in known else target)
    return out


def graph(*packages: str) -> dict[str, set[str]]:
    """The import graph of ``packages`` (default: the runtime, edgeportrait)."""
    modules = {k: v for p in (packages or (PACKAGE,)) for k, v in _modules(p).items()}
    known = set(_modules(PACKAGE)) | set(_modules(BUILD))
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (depth-first search, white/grey/black)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue  # outside the package
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    """The checks below are only as good as the graph: a function-level import is in it."""
    edges = graph()
    assert "edgeportrait.segment.segmenter" in edges["edgeportrait.segment.cli"]  # imported inside main()
    assert "edgeportrait_build.build" in edges["edgeportrait.cli"]  # `model build`, lazily
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_runtime_module_imports_the_build_tools() -> None:
    """Only the CLI's `model build` (a lazy import in cli.py) reaches edgeportrait_build."""
    offenders = {
        name: sorted(i for i in imported if i == BUILD or i.startswith(BUILD + "."))
        for name, imported in graph().items()
        if name != "edgeportrait.cli"
    }
    assert not {k: v for k, v in offenders.items() if v}, offenders
    assert {i for i in graph()["edgeportrait.cli"] if i.startswith(BUILD)} == {"edgeportrait_build.build"}


def test_the_runtime_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_build_tools_have_no_cycle_either() -> None:
    """build and report once imported each other (report read the pins from build); the pins now
    live in edgeportrait_build.pinned."""
    cycle = find_cycle(graph(PACKAGE, BUILD))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
