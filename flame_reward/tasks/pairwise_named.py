"""The ``pairwise_named`` task type: pairwise preference with the responses attributed to
named models, which the compassion bias probe (:mod:`flame_reward.eval.probes`) varies.

A built-in task type, registered by :mod:`flame_reward.tasks.builtin`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.tasks.pairwise import PairwiseTask


class PairwiseNamedTask(PairwiseTask):
    """The ``pairwise`` task with each response attributed to a named model.

    Options ``name_a`` / ``name_b`` appear in the instruction ("response A (written by
    GPT-4)") and in the CONTEXT headings ("response A (GPT-4)"); nothing else differs from
    the ``pairwise`` rendering, and the verdict vocabulary stays ``A`` (= ``response_a``,
    whoever it is attributed to) / ``B`` (= ``response_b``). ``swap`` is ``None``: the
    core's automatic swap exchanges only the responses, which would detach the names from
    them, so this task is judged in the order given and callers (the probes) build the
    mirrored presentation themselves, names included.
    """

    name = "pairwise_named"
    description = "Pairwise preference with the responses attributed to named models (compassion probe)."
    swap = None
    options = PairwiseTask.options + ("name_a", "name_b")

    def validate_options(self, example: dict[str, Any]) -> dict[str, Any]:
        example = super().validate_options(example)
        for key in ("name_a", "name_b"):
            value = example.get(key)
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(key, f"must be a non-empty model name, got {value!r}")
        return example

    def instruction(self, example: Mapping[str, Any]) -> str:
        base = super().instruction(example)
        return base.replace(
            "response A and response B,",
            f"response A (written by {example['name_a']}) and response B (written by {example['name_b']}),",
            1,
        )

    def context(self, example: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
        return (
            ("prompt", example["prompt"], "prompt"),
            (f"response A ({example['name_a']})", example["response_a"], "response_a"),
            (f"response B ({example['name_b']})", example["response_b"], "response_b"),
        )


__all__ = ["PairwiseNamedTask"]
