"""The editable prompt templates of the self-improving loops.

The defaults ship as text files beside this module (``templates/*.txt``); ``--templates
DIR`` overrides any of them with a file of the same name. A template is plain text with
``{placeholder}`` slots; only the slots listed in :data:`TEMPLATES` are filled, so braces
elsewhere in a template (or in the inserted text) are left alone.

=========================  =================  =================================================
template                   placeholders       used for
=========================  =================  =================================================
``similar_instruction``    ``{instruction}``  Self-Taught: ask the generator for a "similar but
                                              different" instruction
``answer``                 ``{instruction}``  the user turn that asks a model to answer an
                                              instruction (Self-Taught answers, Meta-Rewarding actor)
``judge_criteria``         (none)             Meta-Rewarding: the judge's pointwise criteria
``meta_judge_prompt``      ``{task}``         Meta-Rewarding: the meta-judge's view of the judge's
                                              task (the judgments are the two responses)
``meta_judge_criteria``    (none)             Meta-Rewarding: what makes one judgment better
=========================  =================  =================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flame_reward.errors import InvalidInput

#: Template name -> the placeholders it must contain.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "similar_instruction": ("instruction",),
    "answer": ("instruction",),
    "judge_criteria": (),
    "meta_judge_prompt": ("task",),
    "meta_judge_criteria": (),
}

DEFAULT_DIR = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Templates:
    """The loaded templates (name -> text) and where each came from."""

    texts: Mapping[str, str]
    origins: Mapping[str, str]

    def fill(self, name: str, **values: str) -> str:
        """The template ``name`` with its placeholders replaced by ``values``."""
        if name not in self.texts:
            raise InvalidInput("template", f"unknown template {name!r}; known: {', '.join(TEMPLATES)}")
        missing = set(TEMPLATES[name]) - set(values)
        if missing:
            raise InvalidInput("template", f"{name}: no value for {', '.join(sorted(missing))}")
        text = self.texts[name]
        for key in TEMPLATES[name]:
            text = text.replace("{" + key + "}", values[key])
        return text.strip()

    def text(self, name: str) -> str:
        """A template without placeholders (criteria), stripped."""
        return self.fill(name)

    def digest(self) -> str:
        """sha256 over every template's text: a run records it, and resuming checks it."""
        h = hashlib.sha256()
        for name in sorted(self.texts):
            h.update(name.encode() + b"\0" + self.texts[name].encode() + b"\0")
        return h.hexdigest()


def load_templates(directory: str | Path | None = None) -> Templates:
    """The shipped templates, each replaced by ``directory/<name>.txt`` when that file exists.

    Raises :class:`InvalidInput` (field ``--templates``) for a missing directory, a ``.txt``
    file that names no template, an empty template, or one that lacks a placeholder.
    """
    texts: dict[str, str] = {}
    origins: dict[str, str] = {}
    for name in TEMPLATES:
        path = DEFAULT_DIR / f"{name}.txt"
        texts[name] = path.read_text(encoding="utf-8")
        origins[name] = "default"
    if directory is not None:
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise InvalidInput("--templates", f"{str(directory)!r} is not a directory")
        for path in sorted(root.glob("*.txt")):
            if path.stem not in TEMPLATES:
                raise InvalidInput("--templates", f"{path.name} names no template; known: "
                                                  f"{', '.join(n + '.txt' for n in TEMPLATES)}")
            texts[path.stem] = path.read_text(encoding="utf-8")
            origins[path.stem] = str(path)
    for name, text in texts.items():
        if not text.strip():
            raise InvalidInput("--templates", f"template {name} ({origins[name]}) is empty")
        for key in TEMPLATES[name]:
            if "{" + key + "}" not in text:
                raise InvalidInput("--templates", f"template {name} ({origins[name]}) lacks the "
                                                  f"{{{key}}} placeholder")
    return Templates(texts, origins)


__all__ = ["DEFAULT_DIR", "TEMPLATES", "Templates", "load_templates"]
