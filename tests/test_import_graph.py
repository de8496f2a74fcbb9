"""The package's module-level imports form no cycle.

A cycle makes a module's names depend on which module of the circle happened to be
imported first (a half-initialised module, an ImportError that comes and goes), and
it is the sign of two concepts that share a home. Imports inside functions (asked
for when called) and under `if TYPE_CHECKING:` (for the type checker alone) are not
module-level and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "loaderkit"

Graph = dict[str, set[str]]


def module_names(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _absolute(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The module an `ImportFrom` names, relative imports made absolute."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _module_level(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The imports run when a module is imported: at its top level, also inside
    `if`/`try`/`with` blocks, but not in functions, classes or `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                found += _module_level(node.body)
            found += _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(handler.body for handler in node.handlers)):
                found += _module_level(block)
        elif isinstance(node, ast.With):
            found += _module_level(node.body)
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports at module level. `from package import
    module` depends on that module; `from module import name`, on the module."""
    out = set()
    for node in _module_level(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
            continue
        base = _absolute(name, path, node)
        submodules = {f"{base}.{alias.name}" for alias in node.names} & modules.keys()
        out |= submodules
        if len(submodules) < len(node.names):
            out.add(base)
    return (out & modules.keys()) - {name}


def import_graph(root: Path = PACKAGE) -> Graph:
    modules = module_names(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle through each back edge of a depth-first walk (none: the graph is a DAG)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the walk's path, 2: done
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                found.append([*path[path.index(target):], target])
            elif target not in state:
                walk(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_graph_sees_a_cycle_and_names_it(tmp_path: Path) -> None:
    package = tmp_path / "loaderkit"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("from loaderkit.inner import b\n")
    (package / "inner" / "b.py").write_text("from . import c\n")
    (package / "inner" / "c.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from loaderkit import d\n"
        "def later():\n    from loaderkit.inner import b\n"
        "from loaderkit.inner import b\n")
    (package / "d.py").write_text("import loaderkit.inner.c\n")
    graph = import_graph(package)
    assert graph["loaderkit.d"] == {"loaderkit.inner.c"}
    [cycle] = cycles(graph)
    assert cycle[0] == cycle[-1] and sorted(cycle[1:]) == ["loaderkit.inner.b", "loaderkit.inner.c"]
