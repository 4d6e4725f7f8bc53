"""flame-reward plugin: summary faithfulness as a yes/no classification task."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flame_reward import hookimpl
from flame_reward.tasks.base import Field, Summary, TaskType, criteria_line


class SummaryFaithfulnessTask(TaskType):
    """Is every claim in ``summary`` supported by ``source``? Verdicts ``yes``/``no``.

    The score is P(yes): a faithfulness reward for summarisation policies. A summary that
    adds a fact absent from the source is unfaithful even if the fact is true.
    """

    name = "summary_faithfulness"
    description = "Is every claim in the summary supported by the source? (yes/no); score = P(yes)."
    fields = (
        Field("source", "The source document the summary is based on.", truncatable=True),
        Field("summary", "The summary (or summary sentence) to check.", truncatable=True),
    )
    default_criteria = (
        "The summary is faithful only if every statement in it is supported by the source; "
        "added, contradicted or distorted facts make it unfaithful, even if they are true elsewhere."
    )

    def instruction(self, example: Mapping[str, Any]) -> str:
        return (
            "You are an expert fact checker. Read the source document and the summary and "
            "decide whether the summary is faithful to the source.\n"
            f"{criteria_line(example, self.default_criteria)}\n"
            "Output field: faithful (yes or no)."
        )

    def verdicts(self, example: Mapping[str, Any]) -> list[str]:
        return ["yes", "no"]

    def summarize(self, distribution: Mapping[str, float], example: Mapping[str, Any]) -> Summary:
        label = "yes" if distribution["yes"] >= distribution["no"] else "no"
        return Summary(label, distribution["yes"])


@hookimpl
def register_task_types(register: Callable[[TaskType], None]) -> None:
    register(SummaryFaithfulnessTask())


def _faithfulness_pair(row: Mapping[str, Any]) -> Any:
    """A pair of summaries of one document, ``faithful`` and ``unfaithful``: the faithful one wins."""
    from flame_reward.data.formats import PairFields
    from flame_reward.errors import InvalidInput

    for name in ("document", "faithful", "unfaithful"):
        if not isinstance(row.get(name), str) or not row[name].strip():
            raise InvalidInput(name, "missing or empty")
    prompt = "Summarize the following document faithfully.\n\n" + row["document"]
    return PairFields(prompt, row["faithful"], row["unfaithful"], "A", row.get("subset"))


@hookimpl
def register_pair_formats(register: Callable[[Any], None]) -> None:
    from flame_reward.data.formats import PairFormat

    register(PairFormat(
        "faithfulness-pairs",
        "document, faithful, unfaithful (the faithful summary wins)",
        lambda row: "faithful" in row and "unfaithful" in row,
        _faithfulness_pair,
    ))
