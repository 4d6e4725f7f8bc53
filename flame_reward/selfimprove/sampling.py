"""Plain chat generation for the loops' generator and actor roles.

The judge roles go through the scoring core (:meth:`Autorater.generate` and
:meth:`Autorater.judge`); writing instructions and answers is ordinary chat: the text is
the user turn of the model's chat template and the reply is decoded up to end-of-turn.
Generation runs through the core's backend (:meth:`TorchBackend.generate`), batched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from flame_reward.encoding import has_chat_template, prompt_string
from flame_reward.progress import progress_bar


class ChatSampler:
    """``sampler(texts, num_samples=..., seed=...)`` -> one list of replies per text.

    ``backend`` is a :class:`~flame_reward.models.backends.TorchBackend` (or anything with its
    ``generate``); replies are stripped of surrounding whitespace.
    """

    def __init__(self, backend: Any, tokenizer: Any, *, max_new_tokens: int = 128, temperature: float = 0.7,
                 top_p: float = 0.95, batch_size: int = 8, progress: bool = False) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.batch_size = batch_size
        self.progress = progress

    def prompt(self, text: str) -> str:
        """The prompt string the model sees for ``text`` (as DPO trains it)."""
        return prompt_string(self.tokenizer, text)

    def __call__(self, texts: Sequence[str], *, num_samples: int = 1, seed: int = 0,
                 desc: str = "generating") -> list[list[str]]:
        special = not has_chat_template(self.tokenizer)
        ids = [self.tokenizer(self.prompt(t), add_special_tokens=special)["input_ids"] for t in texts]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[list[str]] = [[] for _ in texts]
        per_batch = max(1, self.batch_size // max(1, num_samples))
        bar = progress_bar(total=len(texts), desc=desc, enabled=self.progress, unit="prompt")
        for start in range(0, len(order), per_batch):
            chunk = order[start:start + per_batch]
            rows = self.backend.generate([ids[i] for i in chunk], max_new_tokens=self.max_new_tokens,
                                         temperature=self.temperature, top_p=self.top_p,
                                         num_samples=num_samples, seed=seed + start)
            for j, i in enumerate(chunk):
                out[i] = [self.tokenizer.decode(r, skip_special_tokens=True).strip()
                          for r in rows[j * num_samples:(j + 1) * num_samples]]
            bar.update(len(chunk))
        bar.close()
        return out


_LEADS = re.compile(r"^\s*(?:\*\*)?\s*(?:new|modified|rewritten|similar)?\s*(?:instruction|question|prompt)\s*"
                    r"(?:\*\*)?\s*[:\-]\s*(?:\*\*)?", re.IGNORECASE)


def clean_instruction(text: str, max_chars: int = 1000) -> str:
    """A generated instruction without a leading ``New instruction:`` label, wrapping quotes
    or anything after an answer the model went on to write (cut at ``Answer:`` /
    ``Response:``); at most ``max_chars`` characters."""
    text = text.strip()
    text = _LEADS.sub("", text, count=1).strip()
    cut = re.search(r"\n\s*(?:\*\*)?\s*(?:answer|response|output|original instruction)\s*(?:\*\*)?\s*:", text, re.IGNORECASE)
    if cut:
        text = text[:cut.start()].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text[:max_chars].strip()


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive form, to tell whether two texts are the same."""
    return " ".join(text.lower().split()).strip(" .!?\"'")


__all__ = ["ChatSampler", "clean_instruction", "normalise"]
