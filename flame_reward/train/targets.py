"""Labelled examples -> token ids with a loss mask on the EVALUATION target only.

The prompt is encoded exactly as the scoring core encodes it (same rendering, chat
template and truncation policy), so the model is trained on precisely the text it will
be asked to judge; the target is the verdict (or, for generation-mode examples, the
rationale then the verdict) followed by the end-of-turn token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flame_reward.encoding import encode
from flame_reward.tasks.registry import get_task_type
from flame_reward.train.examples import LabelledExample

IGNORE = -100


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]


def tokenize_example(tokenizer: Any, item: LabelledExample, max_length: int, rationale: str | None = None) -> TokenizedExample:
    """Prompt ids (masked with -100) + target ids (trained on).

    ``rationale`` (default: the example's own ``rationale``) makes the target the
    generation-mode answer, a rationale then the verdict, on the prompt rendered for it.
    """
    if rationale is None:
        rationale = item.rationale
    task = get_task_type(item.task)
    example = task.validate(item.example)
    target = task.target(example, item.label, rationale)
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        target_ids = target_ids + [tokenizer.eos_token_id]
    enc = encode(tokenizer, task.render(example, rationale=rationale is not None), task.truncatable(),
                 max_length, len(target_ids))
    return TokenizedExample(enc.ids + target_ids, [IGNORE] * len(enc.ids) + target_ids)
