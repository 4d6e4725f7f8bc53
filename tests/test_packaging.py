"""Every third-party module the package imports is declared in pyproject.toml.

A package that merely sits on the developer's machine once hid a missing declaration
(``onnxscript``) until a fresh machine failed the suite; this reads the imports from the
code, so a new undeclared import fails here rather than on a user's machine.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(pyproject: Path) -> set[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {_norm(re.split(r"[<>=!~\[; ]", s, maxsplit=1)[0]) for s in specs}


def _imported_tops(package: Path) -> dict[str, str]:
    """Top-level module name -> first file importing it (module-level and function-local)."""
    found: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def _undeclared(package: Path, pyproject: Path, own: set[str]) -> list[str]:
    declared = _declared(pyproject) | {_norm(pyproject.parent.name)}
    providers = metadata.packages_distributions()
    missing = []
    for top, where in sorted(_imported_tops(package).items()):
        if top in sys.stdlib_module_names or top in own:
            continue
        dists = {_norm(d) for d in providers.get(top, [top])}
        if not dists & declared:
            missing.append(f"{top} (imported in {where}; provided by {sorted(dists)})")
    return missing


def test_every_import_of_the_package_is_declared():
    assert _undeclared(ROOT / "flame_reward", ROOT / "pyproject.toml", {"flame_reward"}) == []


def test_every_import_of_the_example_plugin_is_declared():
    plugin = ROOT / "plugins" / "flame-reward-faithfulness"
    own = {"flame_reward", "flame_reward_faithfulness"}
    assert _undeclared(plugin / "flame_reward_faithfulness", plugin / "pyproject.toml", own) == []
