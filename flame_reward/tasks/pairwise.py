"""Pairwise preference: which of two responses better answers the prompt (optional tie)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.tasks.base import Field, Summary, Swap, TaskType, criteria_line


class PairwiseTask(TaskType):
    """Compare ``response_a`` and ``response_b`` for ``prompt``.

    Verdicts: ``A``, ``B`` and, with ``allow_tie=True``, ``tie``. The score is
    P(A is better) + ½·P(tie), averaged over both presentation orders by the core. Without
    an explicit tie label, ``tie_margin`` turns close calls into ``tie``:
    ``|P(A) - P(B)| <= tie_margin``.
    """

    name = "pairwise"
    description = "Which of two responses better answers the prompt (A/B, optional tie)."
    fields = (
        Field("prompt", "The user's request or conversation so far."),
        Field("response_a", "The first candidate response.", truncatable=True),
        Field("response_b", "The second candidate response.", truncatable=True),
    )
    swap = Swap(("response_a", "response_b"), {"A": "B", "B": "A", "tie": "tie"})
    options = ("criteria", "allow_tie", "tie_margin")
    default_criteria = (
        "Prefer the response that is more helpful, correct, honest and harmless, and that "
        "follows the prompt's instructions; length and style alone are not merits."
    )

    def validate_options(self, example: dict[str, Any]) -> dict[str, Any]:
        allow_tie = example.get("allow_tie", False)
        if not isinstance(allow_tie, bool):
            raise InvalidInput("allow_tie", f"must be true or false, got {allow_tie!r}")
        margin = example.get("tie_margin", 0.0)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0.0 <= margin < 1.0:
            raise InvalidInput("tie_margin", f"must be a number in [0, 1), got {margin!r}")
        example["allow_tie"] = allow_tie
        example["tie_margin"] = float(margin)
        return example

    def instruction(self, example: Mapping[str, Any]) -> str:
        tie = " If both are equally good or equally bad, answer tie." if example.get("allow_tie") else ""
        return (
            "You are an expert evaluator. Read the prompt and two candidate responses, "
            "response A and response B, and decide which response is better."
            f"{tie}\n{criteria_line(example, self.default_criteria)}\n"
            "Output field: the better response."
        )

    def context(self, example: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
        return (
            ("prompt", example["prompt"], "prompt"),
            ("response A", example["response_a"], "response_a"),
            ("response B", example["response_b"], "response_b"),
        )

    def verdicts(self, example: Mapping[str, Any]) -> list[str]:
        return ["A", "B", "tie"] if example.get("allow_tie") else ["A", "B"]

    def summarize(self, distribution: Mapping[str, float], example: Mapping[str, Any]) -> Summary:
        p_a, p_b = distribution["A"], distribution["B"]
        p_tie = distribution.get("tie", 0.0)
        score = p_a + 0.5 * p_tie
        if p_tie > max(p_a, p_b) or abs(p_a - p_b) <= example.get("tie_margin", 0.0):
            label = "tie"
        else:
            label = "A" if p_a > p_b else "B"
        return Summary(label, score)
