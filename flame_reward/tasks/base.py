"""The TaskType contract: what every judge task (built-in or plugin) provides.

A task type is data (its name, fields and verdict vocabulary) plus four functions:
``validate``, ``render`` (instruction / context / evaluation sections), ``verdicts`` and
``parse`` / ``target``. It knows nothing about models: the scoring core turns the
rendered text into a distribution over ``verdicts`` and hands it back to ``summarize``.
Adding a task type therefore never touches ``scoring.py``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flame_reward.errors import InvalidInput, VerdictParseError


@dataclass(frozen=True)
class Field:
    """One input field of a task type.

    ``truncatable`` marks fields that may be shortened when a rendered task exceeds the
    model's context (responses, source documents). The instruction, the other fields and
    the verdict slot are never cut: a judge that cannot see its own instructions is worse
    than one that sees a shortened response.
    """

    name: str
    description: str
    required: bool = True
    truncatable: bool = False


@dataclass(frozen=True)
class Swap:
    """How to present an example in the other order (pairwise tasks).

    The scoring core evaluates both presentations and averages the distributions after
    mapping the swapped one back with ``labels``; order bias cancels by construction.
    """

    fields: tuple[str, str]
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Rendered:
    """A task rendered in FLAMe's text-to-text form (before any chat template)."""

    instruction: str
    #: (heading, text, field name) in display order.
    context: tuple[tuple[str, str, str], ...]
    evaluation: str

    def text(self, overrides: Mapping[str, str] | None = None) -> str:
        """The user-facing prompt: INSTRUCTION, CONTEXT and EVALUATION sections.

        ``overrides`` replaces field texts by field name (used to truncate responses).
        """
        parts = ["INSTRUCTION:", self.instruction.strip(), "", "CONTEXT:"]
        for heading, value, name in self.context:
            if overrides and name in overrides:
                value = overrides[name]
            parts.append(f"{heading}:\n{value}")
            parts.append("")
        parts += ["EVALUATION:", self.evaluation.strip()]
        return "\n".join(parts)


@dataclass(frozen=True)
class Summary:
    """What a task type makes of a verdict distribution: the chosen label and a number."""

    label: str
    score: float


def _check_unicode(name: str, text: str) -> None:
    """Refuse text a tokenizer cannot encode (a lone surrogate from broken JSON or UTF-16)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(name, f"is not valid Unicode text (lone surrogate at character {exc.start})") from None


class TaskType(ABC):
    """Base class of every task type. Subclasses set ``name``, ``description``, ``fields``."""

    name: str = ""
    description: str = ""
    fields: tuple[Field, ...] = ()
    #: Presentation symmetry; ``None`` for tasks judged in a single order.
    swap: Swap | None = None
    #: True when the answer is free text scored by generation, not a verdict vocabulary.
    generative: bool = False
    #: Names of option fields (not rendered as context), e.g. ``labels`` or ``scale``.
    options: tuple[str, ...] = ("criteria",)

    # -- validation -----------------------------------------------------------------------
    def validate(self, example: Mapping[str, Any]) -> dict[str, Any]:
        """Check an example and return a normalised copy; raise :class:`InvalidInput`.

        Text fields must be strings; required ones must be non-empty (after stripping) so a
        missing response is never silently judged as an empty one.
        """
        if not isinstance(example, Mapping):
            raise InvalidInput("example", f"expected a mapping of fields, got {type(example).__name__}")
        known = {f.name for f in self.fields} | set(self.options)
        out: dict[str, Any] = {}
        for f in self.fields:
            value = example.get(f.name)
            if value is None:
                if f.required:
                    raise InvalidInput(f.name, f"required by task type {self.name!r} but missing")
                continue
            if not isinstance(value, str):
                raise InvalidInput(f.name, f"must be a string, got {type(value).__name__}")
            if f.required and not value.strip():
                raise InvalidInput(f.name, "is empty")
            _check_unicode(f.name, value)
            out[f.name] = value
        criteria = example.get("criteria")
        if criteria is not None and not isinstance(criteria, str):
            raise InvalidInput("criteria", f"must be a string, got {type(criteria).__name__}")
        if criteria is not None:
            _check_unicode("criteria", criteria)
        for name in self.options:
            if name in example and example[name] is not None:
                out[name] = example[name]
        unknown = sorted(set(example) - known)
        if unknown:
            # Extra columns are common (ids, metadata); they are kept out of the prompt.
            out["_extra"] = {k: example[k] for k in unknown}
        return self.validate_options(out)

    def validate_options(self, example: dict[str, Any]) -> dict[str, Any]:
        """Hook for subclasses to check and normalise their option fields."""
        return example

    # -- rendering ------------------------------------------------------------------------
    @abstractmethod
    def instruction(self, example: Mapping[str, Any]) -> str:
        """Task definition, evaluation criteria and the required output fields."""

    def context(self, example: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
        """The inputs as ordered (heading, text, field name); defaults to the present fields."""
        return tuple((f.name, example[f.name], f.name) for f in self.fields if f.name in example)

    def evaluation(self, example: Mapping[str, Any], rationale: bool = False) -> str:
        """What the model must produce (the EVALUATION section)."""
        choices = ", ".join(self.verdicts(example))
        if rationale:
            return (
                "First write 'Rationale:' followed by a short explanation, then on a new line "
                f"'Verdict:' followed by exactly one of: {choices}."
            )
        return f"Answer with exactly one of: {choices}."

    def render(self, example: Mapping[str, Any], rationale: bool = False) -> Rendered:
        """Render a validated example in the FLAMe INSTRUCTION / CONTEXT / EVALUATION form."""
        return Rendered(self.instruction(example), self.context(example), self.evaluation(example, rationale))

    def swapped(self, example: Mapping[str, Any]) -> dict[str, Any]:
        """``example`` presented in the other order: the two :attr:`swap` fields exchanged."""
        if self.swap is None:
            raise InvalidInput("task", f"task type {self.name!r} is judged in one order only; it has no swap")
        a, b = self.swap.fields
        out = dict(example)
        out[a], out[b] = example[b], example[a]
        return out

    def truncatable(self) -> tuple[str, ...]:
        """Names of the fields that may be shortened to fit the model's context."""
        return tuple(f.name for f in self.fields if f.truncatable)

    # -- verdicts -------------------------------------------------------------------------
    @abstractmethod
    def verdicts(self, example: Mapping[str, Any]) -> list[str]:
        """The verdict vocabulary for this example, in a fixed order."""

    @abstractmethod
    def summarize(self, distribution: Mapping[str, float], example: Mapping[str, Any]) -> Summary:
        """Turn a distribution over ``verdicts`` into a label and a score."""

    def parse(self, text: str, example: Mapping[str, Any]) -> str:
        """Read the verdict from generated text; raise :class:`VerdictParseError`.

        Looks for an explicit ``Verdict:`` line first (rationale mode), else accepts an
        answer that starts with a verdict label. Matching is case-insensitive but a label
        must stand alone, so "Absolutely" is never read as "A".
        """
        labels = self.verdicts(example)
        alternatives = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
        label_re = rf"(?<![\w])({alternatives})(?![\w])"
        by_lower = {lab.lower(): lab for lab in labels}
        marked = re.findall(rf"verdict\s*[:=]\s*\**\s*(?:response\s+)?{label_re}", text, flags=re.I)
        if marked:
            return by_lower[marked[-1].lower()]
        head = re.match(rf"\s*\**\s*(?:response\s+)?{label_re}", text, flags=re.I)
        if head:
            return by_lower[head.group(1).lower()]
        raise VerdictParseError(text, labels)

    def target(self, example: Mapping[str, Any], label: str, rationale: str | None = None) -> str:
        """Training target (the EVALUATION answer) for a labelled example."""
        labels = self.verdicts(example)
        if label not in labels:
            raise InvalidInput("label", f"{label!r} is not one of {labels}")
        if rationale is not None:
            return f"Rationale: {rationale.strip()}\nVerdict: {label}"
        return label


def criteria_line(example: Mapping[str, Any], default: str) -> str:
    """The evaluation-criteria sentence: the example's own ``criteria`` or the task default."""
    text = example.get("criteria") or default
    return f"Evaluation criteria: {text.strip()}"
