"""Classification: assign one label from a set (default yes/no) to a response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.tasks.base import Field, Summary, TaskType, criteria_line


class ClassificationTask(TaskType):
    """Answer ``prompt`` (a question about ``response``) with one of ``labels``.

    The score is the probability of the first label (``yes`` by default), so a yes/no
    task doubles as a reward ("is this response correct?").
    """

    name = "classification"
    description = "Pick one label from a set (default yes/no); score = P(first label)."
    fields = (
        Field("prompt", "The question to answer about the response."),
        Field("response", "The text being classified.", truncatable=True),
        Field("source", "Source material the response is checked against.", required=False, truncatable=True),
    )
    options = ("criteria", "labels")

    def validate_options(self, example: dict[str, Any]) -> dict[str, Any]:
        labels = example.get("labels", ("yes", "no"))
        if isinstance(labels, str) or not isinstance(labels, (list, tuple)) or len(labels) < 2:
            raise InvalidInput("labels", f"must be a list of at least two strings, got {labels!r}")
        if not all(isinstance(x, str) and x.strip() for x in labels):
            raise InvalidInput("labels", "every label must be a non-empty string")
        lowered = [x.strip().lower() for x in labels]
        if len(set(lowered)) != len(lowered):
            dupes = sorted({x for x in lowered if lowered.count(x) > 1})
            raise InvalidInput("labels", f"duplicate labels {dupes} (labels are matched case-insensitively)")
        example["labels"] = tuple(x.strip() for x in labels)
        return example

    def instruction(self, example: Mapping[str, Any]) -> str:
        default = "Answer the question about the response accurately."
        return (
            "You are an expert evaluator. Read the context and answer the question with one "
            f"of the labels: {', '.join(example['labels'])}.\n"
            f"{criteria_line(example, default)}\n"
            "Output field: the label."
        )

    def context(self, example: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
        items = []
        if "source" in example:
            items.append(("source", example["source"], "source"))
        items += [("response", example["response"], "response"), ("question", example["prompt"], "prompt")]
        return tuple(items)

    def verdicts(self, example: Mapping[str, Any]) -> list[str]:
        return list(example["labels"])

    def summarize(self, distribution: Mapping[str, float], example: Mapping[str, Any]) -> Summary:
        label = max(distribution, key=distribution.__getitem__)
        return Summary(label, distribution[example["labels"][0]])
