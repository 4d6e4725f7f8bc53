"""Rendered task -> token ids: the chat template, and truncation that spares the instruction.

Truncation policy (documented in README): when a rendered task does not fit in
``max_length`` tokens, only the task's truncatable fields (responses, source documents)
are shortened — the longest first, each keeping its beginning and ending with a
``[...truncated]`` marker — until it fits. The instruction, the prompt, the EVALUATION
section and the verdict slot are never cut; if they alone exceed the budget the example
is rejected with :class:`InvalidInput` naming ``max_length``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.tasks.base import Rendered

TRUNCATION_MARK = " [...truncated]"


@dataclass(frozen=True)
class Encoded:
    """Token ids of one rendered task, ready for the verdict slot (or for generation)."""

    ids: list[int]
    truncated: tuple[str, ...] = ()


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_string(tokenizer: Any, user_text: str) -> str:
    """The full prompt string: the model's chat template when it has one, else plain text.

    With a template the FLAMe text is the user turn and the verdict is the first thing
    the assistant says; without one the verdict follows the EVALUATION section directly.
    """
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
        )
    return user_text + "\n"


def _ids(tokenizer: Any, text: str) -> list[int]:
    # Chat templates already contain the special tokens; plain prompts get the BOS token.
    return tokenizer(text, add_special_tokens=not has_chat_template(tokenizer))["input_ids"]


def encode(
    tokenizer: Any,
    rendered: Rendered,
    truncatable: Sequence[str],
    max_length: int,
    reserve: int = 0,
) -> Encoded:
    """Encode ``rendered`` within ``max_length - reserve`` tokens (``reserve`` keeps room for
    the verdict or a generated answer)."""
    budget = max_length - reserve
    ids = _ids(tokenizer, prompt_string(tokenizer, rendered.text()))
    if len(ids) <= budget:
        return Encoded(ids)
    fields = {name: text for _, text, name in rendered.context if name in truncatable}
    field_ids = {name: tokenizer(text, add_special_tokens=False)["input_ids"] for name, text in fields.items()}
    overflow = len(ids) - budget
    for _attempt in range(6):
        # Water-filling: cap every truncatable field at the same length c, the largest c
        # that removes `overflow` tokens, so long responses lose most and short ones none.
        lengths = sorted(len(v) for v in field_ids.values())
        total = sum(lengths)
        cap = _cap_for(lengths, total - overflow - len(fields) * 8)  # 8 ~ marker tokens
        if cap <= 0:
            raise InvalidInput(
                "max_length",
                f"the task needs {len(ids) - total} tokens without its truncatable fields "
                f"({', '.join(fields) or 'none'}); max_length={max_length} is too small",
            )
        overrides = {
            name: (tokenizer.decode(v[:cap]) + TRUNCATION_MARK if len(v) > cap else fields[name])
            for name, v in field_ids.items()
        }
        new_ids = _ids(tokenizer, prompt_string(tokenizer, rendered.text(overrides)))
        if len(new_ids) <= budget:
            cut = tuple(name for name, v in field_ids.items() if len(v) > cap)
            return Encoded(new_ids, cut)
        overflow += len(new_ids) - budget  # tokenisation at the cut differs; shave more
    raise InvalidInput("max_length", f"could not fit the task into {max_length} tokens")


def _cap_for(sorted_lengths: list[int], keep: int) -> int:
    """Largest c with sum(min(l, c)) <= keep."""
    if keep <= 0:
        return 0
    n = len(sorted_lengths)
    used = 0
    for i, length in enumerate(sorted_lengths):
        remaining = n - i
        if used + length * remaining <= keep:
            used += length
            continue
        return (keep - used) // remaining
    return sorted_lengths[-1] if sorted_lengths else 0


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> list[list[int]]:
    """Token ids of each verdict label as the start of the answer.

    A label that is a proper prefix of another (``1`` vs ``10``) gets the end-of-turn
    token appended, so P("1") means "1 and stop" rather than "starts with 1".
    """
    seqs = [tokenizer(label, add_special_tokens=False)["input_ids"] for label in labels]
    for label, seq in zip(labels, seqs):
        if not seq:
            raise InvalidInput("labels", f"label {label!r} encodes to no tokens")
    end = tokenizer.eos_token_id
    out = []
    for i, seq in enumerate(seqs):
        is_prefix = any(j != i and len(o) > len(seq) and o[: len(seq)] == seq for j, o in enumerate(seqs))
        out.append(seq + [end] if is_prefix and end is not None else list(seq))
    if len({tuple(s) for s in out}) != len(out):
        raise InvalidInput("labels", f"labels {list(labels)} are not distinguishable by this tokenizer")
    return out


