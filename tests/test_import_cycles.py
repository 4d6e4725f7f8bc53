"""No import cycles inside ``flame_reward/``, read from the source with ``ast``.

Every ``import`` / ``from ... import`` statement counts, including those inside functions
(a function-local import only postpones a cycle, it does not remove it). Relative imports
are resolved against the importing module's package. Importing ``a.b.c`` also runs the
``__init__`` of ``a.b``, so that package is an edge too, unless it is an ancestor of the
importing module (an ancestor is already initialised, or initialising, before its
submodule's first line runs). Imports under ``if TYPE_CHECKING:`` are left out: they never
run, so they cannot form a cycle. Names loaded through importlib (built-in plugins, the
front door's lazy attributes) are run-time look-ups by name, not module dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "flame_reward"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package ``root``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package that importing it runs."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        targets: list[str] = []
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
                continue
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets.append(base)
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
            targets += [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        if is_package:
            ancestors.add(name)
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                step = ".".join(parts[:i])
                if step in modules and step not in ancestors and step != name:
                    graph[name].add(step)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path ``a -> ... -> a``) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles = []
    for group in groups:
        start = min(group)
        path, seen = [start], {start}
        while True:  # walk inside the group until a module repeats
            nxt = min(w for w in graph[path[-1]] if w in group)
            if nxt in seen:
                cycles.append(path[path.index(nxt):] + [nxt])
                break
            path.append(nxt)
            seen.add(nxt)
    return cycles


def test_flame_reward_has_no_import_cycles():
    graph = import_graph(PACKAGE_ROOT)
    # The graph really is read from the code: known edges of the core are in it.
    assert "flame_reward.tasks.registry" in graph["flame_reward.scoring"]
    assert "flame_reward.models.backends" in graph["flame_reward.scoring"]
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_reader_finds_hidden_cycles(tmp_path):
    # A cycle through a function-local relative import and a package __init__.
    pkg = tmp_path / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text("def f():\n    from .sub.leaf import g\n    return g\n")
    (pkg / "sub" / "__init__.py").write_text("from demo.sub import helper\n")
    (pkg / "sub" / "helper.py").write_text("import demo.core\n")
    (pkg / "sub" / "leaf.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from demo import core\ng = 1\n")
    graph = import_graph(pkg)
    assert graph["demo.core"] == {"demo.sub", "demo.sub.leaf"}
    assert graph["demo.sub.leaf"] == set()  # TYPE_CHECKING imports never run
    cycles = find_cycles(graph)
    assert len(cycles) == 1 and set(cycles[0]) == {"demo.core", "demo.sub", "demo.sub.helper"}
