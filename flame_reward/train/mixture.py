"""Multitask mixtures as in FLAMe (after T5): examples-proportional with a per-task cap.

Each task's mixing rate is ``min(n_task, cap) / sum(min(n_j, cap))``: big tasks cannot
drown small ones beyond the cap (FLAMe uses 2^16). Explicit ``weights`` replace the rates
(a uniform mix for FLAMe-RM, tail-patch weights for FLAMe-Opt-RM). Everything is seeded:
the same inputs and seed give the same mixture, order included.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TypeVar

from flame_reward.errors import InvalidInput

T = TypeVar("T")
DEFAULT_CAP = 2**16


def mixing_rates(sizes: Mapping[str, int], cap: int = DEFAULT_CAP,
                 weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Mixing rate per task (they sum to 1)."""
    if cap < 1:
        raise InvalidInput("cap", f"must be >= 1, got {cap}")
    if weights is not None:
        unknown = set(weights) - set(sizes)
        if unknown:
            raise InvalidInput("weights", f"unknown tasks {sorted(unknown)}")
        if any(w < 0 for w in weights.values()):
            raise InvalidInput("weights", "weights must be non-negative")
        raw = {name: float(weights.get(name, 0.0)) for name in sizes}
    else:
        raw = {name: float(min(n, cap)) for name, n in sizes.items()}
    total = sum(raw.values())
    if total <= 0:
        raise InvalidInput("weights" if weights is not None else "tasks", "nothing to mix (all weights or sizes are 0)")
    return {name: value / total for name, value in raw.items()}


def mix(
    tasks: Mapping[str, Sequence[T]],
    *,
    cap: int = DEFAULT_CAP,
    weights: Mapping[str, float] | None = None,
    total: int | None = None,
    seed: int = 0,
) -> list[tuple[str, T]]:
    """A shuffled mixture of ``(task name, item)``.

    Without ``total``: each task contributes ``min(n, cap)`` items (examples-proportional
    with cap; with ``weights``, the largest number of items that keeps the rates without
    repeating any). With ``total``: that many items drawn at the mixing rates; a task is
    repeated (reshuffled per pass) only when its share exceeds its size.
    """
    sizes = {name: len(items) for name, items in tasks.items()}
    rates = mixing_rates(sizes, cap, weights)
    rng = random.Random(seed)
    if total is None:
        if weights is None:
            counts = {name: min(n, cap) for name, n in sizes.items()}
        else:
            # Scale so that no task with a positive rate needs more than it has.
            scale = min(sizes[n] / r for n, r in rates.items() if r > 0)
            counts = {name: int(round(rates[name] * scale)) for name in sizes}
    else:
        if total < 0:
            raise InvalidInput("total", f"must be >= 0, got {total}")
        counts = _apportion(rates, total)
    out: list[tuple[str, T]] = []
    for name in sorted(tasks):
        items = list(tasks[name])
        if not items or counts[name] == 0:
            continue
        picked: list[T] = []
        while len(picked) < counts[name]:
            batch = items[:]
            rng.shuffle(batch)
            picked.extend(batch[: counts[name] - len(picked)])
        out.extend((name, item) for item in picked)
    rng.shuffle(out)
    return out


def _apportion(rates: Mapping[str, float], total: int) -> dict[str, int]:
    """Integer counts summing to ``total`` (largest remainders), deterministic."""
    exact = {n: r * total for n, r in rates.items()}
    counts = {n: int(v) for n, v in exact.items()}
    left = total - sum(counts.values())
    for n in sorted(exact, key=lambda n: (-(exact[n] - counts[n]), n))[:left]:
        counts[n] += 1
    return counts
