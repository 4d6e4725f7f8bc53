"""The one batched generation loop: judge rationales, probe answers, self-improving samples, code samples.

Inputs are sorted by length before batching, so each left-padded batch holds rows of
similar length and pads little; results come back in input order. Decoding drops special
tokens and keeps surrounding whitespace (callers that want stripped text strip it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from flame_reward.progress import progress_bar

SeedPolicy = Literal["offset", "same"]


def generate_texts(
    backend: Any,
    tokenizer: Any,
    inputs: Sequence[Sequence[int]],
    *,
    batch_size: int,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    num_samples: int = 1,
    seed: int | None = None,
    seed_policy: SeedPolicy = "offset",
    progress: bool = False,
    desc: str = "generating",
    unit: str = "it",
) -> list[list[str]]:
    """``num_samples`` decoded continuations of each token-id row, in input order.

    Args:
        backend: anything with :meth:`TorchBackend.generate` (left-pads a batch, returns new tokens).
        tokenizer: decodes the new tokens.
        inputs: one list of prompt token ids per input.
        batch_size: inputs per ``backend.generate`` call (each brings ``num_samples`` rows).
        max_new_tokens, temperature, top_p, num_samples: passed to ``backend.generate``
            (``temperature=0`` is greedy).
        seed: ``None`` leaves the random state alone. With ``seed_policy="offset"`` the
            batch starting at sorted position ``k`` draws with ``seed + k``, so batches do not
            repeat one random stream; ``"same"`` seeds every batch with ``seed``.
        progress, desc, unit: a progress bar counting inputs.

    Returns:
        One list of ``num_samples`` texts per input.
    """
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    texts: list[list[str]] = [[] for _ in inputs]
    bar = progress_bar(total=len(inputs), desc=desc, enabled=progress, unit=unit)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch_seed = seed if seed is None or seed_policy == "same" else seed + start
        rows = backend.generate([inputs[i] for i in chunk], max_new_tokens=max_new_tokens, temperature=temperature,
                                top_p=top_p, num_samples=num_samples, seed=batch_seed)
        for j, i in enumerate(chunk):
            texts[i] = [tokenizer.decode(r, skip_special_tokens=True)
                        for r in rows[j * num_samples:(j + 1) * num_samples]]
        bar.update(len(chunk))
    bar.close()
    return texts


def batches_needed(count: int, batch_size: int) -> int:
    """How many ``backend.generate`` calls :func:`generate_texts` makes for ``count`` inputs."""
    return -(-count // batch_size)


__all__ = ["SeedPolicy", "batches_needed", "generate_texts"]
