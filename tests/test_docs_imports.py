"""Every ``from flame_reward... import ...`` / ``import flame_reward...`` line in the README's,
the docs' and the plugins' READMEs' code blocks imports, so a reader copying one never
meets an ImportError."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "plugins").glob("*/README.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
IMPORT = re.compile(r"^\s*(from\s+flame_reward[\w.]*\s+import\s+|import\s+flame_reward\b)")


def doc_imports() -> list[tuple[str, int, str]]:
    """(file, line number, statement) for each flame_reward import in a fenced code block."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for block in FENCE.finditer(text):
            first_line = text.count("\n", 0, block.start(1)) + 1
            lines = block.group(1).splitlines()
            i = 0
            while i < len(lines):
                if IMPORT.match(lines[i]):
                    statement, start = lines[i].split("#")[0].strip(), i
                    while statement.count("(") > statement.count(")"):  # a parenthesised import
                        i += 1
                        statement += " " + lines[i].split("#")[0].strip()
                    found.append((str(path.relative_to(ROOT)), first_line + start, statement))
                i += 1
    return found


def optional_extras() -> set[str]:
    """Import names of the packages in pyproject's optional-dependencies (e.g. onnxruntime_gpu)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirements in project.get("optional-dependencies", {}).values():
        for req in requirements:
            names.add(re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0].replace("-", "_").lower())
    return names


IMPORTS = doc_imports()


def test_the_docs_show_imports():
    files = {f for f, _, _ in IMPORTS}
    assert "README.md" in files and len(IMPORTS) >= 10, IMPORTS


@pytest.mark.parametrize(("where", "line", "statement"), IMPORTS, ids=[f"{f}:{n}" for f, n, _ in IMPORTS])
def test_doc_import_works(where, line, statement):
    try:
        exec(compile(statement, f"{where}:{line}", "exec"), {})
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing != "flame_reward" and missing.lower() in optional_extras():
            pytest.skip(f"{statement!r} needs the optional {missing}")
        raise
