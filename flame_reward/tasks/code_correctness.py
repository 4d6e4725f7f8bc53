"""Judge task types for code: which implementation correctly solves a problem.

Registered through the ``register_task_types`` hook like the built-ins (this module is
listed in :data:`flame_reward.plugins.DEFAULT_PLUGINS`). It imports only the task
contract, so loading it never pulls in the reranker or a model.

* ``code_correctness`` (pairwise): ``problem``, ``code_a``, ``code_b`` -> ``A``/``B``;
  score = P(A is correct rather than B), both presentation orders averaged by the core.
* ``code_correctness_pointwise``: ``problem``, ``code`` -> ``yes``/``no``; score = P(yes),
  the judge's probability that the implementation is correct.

``problem`` is the public problem statement only (for HumanEval: the prompt, i.e. the
signature and docstring with its examples); hidden tests never belong in it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.hookspecs import hookimpl
from flame_reward.tasks.base import Field, Summary, Swap, TaskType, criteria_line

CODE_CRITERIA = (
    "Functional correctness only: the implementation must return the right result for every "
    "valid input the problem describes, edge cases included, and must run without errors. "
    "Style, comments, naming and efficiency do not matter unless they make the result wrong."
)


def _fence(code: str, language: str) -> str:
    return f"```{language}\n{code.rstrip()}\n```"


class CodeCorrectnessTask(TaskType):
    """Pairwise: which of two implementations correctly solves the problem?"""

    name = "code_correctness"
    description = "Which of two code implementations correctly solves the problem (A/B, both orders)."
    fields = (
        Field("problem", "The problem statement (e.g. a function signature and docstring)."),
        Field("code_a", "The first candidate implementation.", truncatable=True),
        Field("code_b", "The second candidate implementation.", truncatable=True),
    )
    swap = Swap(("code_a", "code_b"), {"A": "B", "B": "A"})
    options = ("criteria", "language")

    def validate_options(self, example: dict[str, Any]) -> dict[str, Any]:
        language = example.get("language", "python")
        if not isinstance(language, str) or not language.strip():
            raise InvalidInput("language", f"must be a non-empty string, got {language!r}")
        example["language"] = language.strip()
        return example

    def instruction(self, example: Mapping[str, Any]) -> str:
        return (
            "You are an expert programmer reviewing code. Read the programming problem and two "
            "candidate implementations, implementation A and implementation B, and decide which "
            "implementation correctly solves the problem. If both or neither are correct, pick the "
            "one more likely to pass a thorough set of tests.\n"
            f"{criteria_line(example, CODE_CRITERIA)}\n"
            "Output field: the implementation that solves the problem correctly."
        )

    def context(self, example: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
        lang = example.get("language", "python")
        return (
            ("problem", _fence(example["problem"], lang), "problem"),
            ("implementation A", _fence(example["code_a"], lang), "code_a"),
            ("implementation B", _fence(example["code_b"], lang), "code_b"),
        )

    def verdicts(self, example: Mapping[str, Any]) -> list[str]:
        return ["A", "B"]

    def summarize(self, distribution: Mapping[str, float], example: Mapping[str, Any]) -> Summary:
        p_a, p_b = distribution["A"], distribution["B"]
        return Summary("A" if p_a >= p_b else "B", p_a)


class CodeCorrectnessPointwiseTask(TaskType):
    """Pointwise: does this implementation correctly solve the problem? P(yes)."""

    name = "code_correctness_pointwise"
    description = "Does a code implementation correctly solve the problem (yes/no); score = P(yes)."
    fields = (
        Field("problem", "The problem statement (e.g. a function signature and docstring)."),
        Field("code", "The candidate implementation.", truncatable=True),
    )
    options = ("criteria", "language")
    validate_options = CodeCorrectnessTask.validate_options

    def instruction(self, example: Mapping[str, Any]) -> str:
        return (
            "You are an expert programmer reviewing code. Read the programming problem and the "
            "candidate implementation, and decide whether the implementation correctly solves "
            "the problem.\n"
            f"{criteria_line(example, CODE_CRITERIA)}\n"
            "Output field: yes if the implementation is correct, no otherwise."
        )

    def context(self, example: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
        lang = example.get("language", "python")
        return (
            ("problem", _fence(example["problem"], lang), "problem"),
            ("implementation", _fence(example["code"], lang), "code"),
        )

    def evaluation(self, example: Mapping[str, Any], rationale: bool = False) -> str:
        if rationale:
            return super().evaluation(example, rationale)
        return "Is the implementation correct? Answer with exactly one of: yes, no."

    def verdicts(self, example: Mapping[str, Any]) -> list[str]:
        return ["yes", "no"]

    def summarize(self, distribution: Mapping[str, float], example: Mapping[str, Any]) -> Summary:
        p_yes = distribution["yes"]
        return Summary("yes" if p_yes >= distribution["no"] else "no", p_yes)


@hookimpl
def register_task_types(register: Callable[[TaskType], None]) -> None:
    register(CodeCorrectnessTask())
    register(CodeCorrectnessPointwiseTask())
