"""The unbiased pass@k estimator against hand-computed values."""

from __future__ import annotations

from itertools import combinations
from math import comb

import pytest

from flame_reward.errors import InvalidInput
from flame_reward.humaneval.passk import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (10, 3, 1, 0.3),  # k=1: the fraction correct
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 0, 5, 0.0),  # nothing correct
        (5, 4, 2, 1.0),  # n - c < k: every draw holds a correct one
        (10, 10, 1, 1.0),
        (4, 1, 4, 1.0),
        (6, 2, 3, 0.8),  # 1 - C(4,3)/C(6,3) = 1 - 4/20
    ],
)
def test_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_matches_enumeration_of_all_draws():
    n, c, k = 7, 3, 3
    draws = list(combinations([True] * c + [False] * (n - c), k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(d) for d in draws) / len(draws))


def test_stable_for_large_n():
    # The product form avoids the overflowing binomials of the textbook formula.
    value = pass_at_k(2000, 13, 100)
    assert value == pytest.approx(1 - comb(1987, 100) / comb(2000, 100), rel=1e-9)
    assert 0.0 < value < 1.0


def test_mean_over_tasks():
    assert mean_pass_at_k([(10, 3), (10, 0)], k=1) == pytest.approx(0.15)


@pytest.mark.parametrize("n, c, k", [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_invalid_arguments(n, c, k):
    with pytest.raises(InvalidInput):
        pass_at_k(n, c, k)
