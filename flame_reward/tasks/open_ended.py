"""Open-ended evaluation: the judge writes free text (a critique, a corrected answer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.tasks.base import Field, Summary, TaskType, criteria_line


class OpenEndedTask(TaskType):
    """Free-text evaluation, answered in generation mode only.

    There is no verdict vocabulary: ``parse`` returns the stripped text (an empty answer is
    a parse failure) and the training target is the reference ``output``.
    """

    name = "open_ended"
    description = "Free-text evaluation (e.g. a critique); generation mode only."
    fields = (
        Field("prompt", "The evaluation request, e.g. 'Critique this answer'."),
        Field("response", "The text under evaluation.", required=False, truncatable=True),
    )
    generative = True

    def instruction(self, example: Mapping[str, Any]) -> str:
        return (
            "You are an expert evaluator. Carry out the evaluation request on the context.\n"
            f"{criteria_line(example, 'Be specific, accurate and concise.')}\n"
            "Output field: the evaluation, as free text."
        )

    def evaluation(self, example: Mapping[str, Any], rationale: bool = False) -> str:
        return "Write the evaluation."

    def verdicts(self, example: Mapping[str, Any]) -> list[str]:
        return []

    def summarize(self, distribution: Mapping[str, float], example: Mapping[str, Any]) -> Summary:
        raise InvalidInput("task", "open_ended has no verdict vocabulary; use generation mode")

    def parse(self, text: str, example: Mapping[str, Any]) -> str:
        from flame_reward.errors import VerdictParseError

        if not text.strip():
            raise VerdictParseError(text, ["<non-empty text>"])
        return text.strip()

    def target(self, example: Mapping[str, Any], label: str, rationale: str | None = None) -> str:
        if not isinstance(label, str) or not label.strip():
            raise InvalidInput("output", "open_ended training examples need a non-empty reference output")
        return label.strip()
