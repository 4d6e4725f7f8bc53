"""The unbiased pass@k estimator of Chen et al. (2021), "Evaluating Large Language Models
Trained on Code" (the Codex paper)."""

from __future__ import annotations

from typing import Iterable

from flame_reward.errors import InvalidInput

__all__ = ["pass_at_k", "mean_pass_at_k"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of ``k`` samples drawn without replacement from ``n``
    (of which ``c`` are correct) is correct: ``1 - C(n-c, k) / C(n, k)``.

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``, which never forms the huge binomial
    coefficients and so stays exact enough for n in the thousands.
    """
    if n < 1:
        raise InvalidInput("n", f"must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise InvalidInput("c", f"must be in [0, n={n}], got {c}")
    if not 1 <= k <= n:
        raise InvalidInput("k", f"must be in [1, n={n}], got {k}")
    if n - c < k:
        return 1.0  # every draw of k must include a correct sample
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Mean of :func:`pass_at_k` over tasks given as ``(n, c)`` pairs."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values:
        raise InvalidInput("counts", "no tasks")
    return sum(values) / len(values)
