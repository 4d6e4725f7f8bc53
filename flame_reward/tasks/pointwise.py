"""Pointwise rating: a response's quality on an integer scale (default 1-5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.tasks.base import Field, Summary, TaskType, criteria_line


class PointwiseTask(TaskType):
    """Rate ``response`` to ``prompt`` on ``scale`` (inclusive integer bounds, default 1-5).

    The score is the expected rating under the judge's distribution over the scale, which
    is smoother (and a better reward) than the argmax rating.
    """

    name = "pointwise"
    description = "Rate one response on an integer scale (default 1-5); score = expected rating."
    fields = (
        Field("prompt", "The user's request, or the task the response performs."),
        Field("response", "The response to rate.", truncatable=True),
        Field("source", "Source material the response is based on (e.g. an article).", required=False, truncatable=True),
        Field("reference", "A reference answer, if any.", required=False, truncatable=True),
    )
    options = ("criteria", "scale")
    default_criteria = "Overall quality: helpful, correct, clear and complete."

    def validate_options(self, example: dict[str, Any]) -> dict[str, Any]:
        scale = example.get("scale", (1, 5))
        if (
            not isinstance(scale, (list, tuple))
            or len(scale) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in scale)
            or not 0 <= scale[0] < scale[1] <= 100
        ):
            raise InvalidInput("scale", f"must be two integers [low, high] with 0 <= low < high <= 100, got {scale!r}")
        example["scale"] = (scale[0], scale[1])
        return example

    def instruction(self, example: Mapping[str, Any]) -> str:
        low, high = example["scale"]
        return (
            "You are an expert evaluator. Read the prompt and the response and rate the "
            f"response on a scale from {low} (worst) to {high} (best).\n"
            f"{criteria_line(example, self.default_criteria)}\n"
            "Output field: the rating."
        )

    def verdicts(self, example: Mapping[str, Any]) -> list[str]:
        low, high = example["scale"]
        return [str(v) for v in range(low, high + 1)]

    def summarize(self, distribution: Mapping[str, float], example: Mapping[str, Any]) -> Summary:
        expected = sum(float(label) * p for label, p in distribution.items())
        label = max(distribution, key=distribution.__getitem__)
        return Summary(label, expected)
