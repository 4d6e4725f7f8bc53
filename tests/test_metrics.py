"""Accuracy and position-consistency arithmetic on hand-made verdicts."""

import math

import pytest

from flame_reward.eval.metrics import pairwise_metrics
from flame_reward.results import Verdict


def v(o1a, o2a, tie=None):
    """A pairwise verdict from raw per-order P(A) (order 2 is swapped)."""
    orders = ({"A": o1a, "B": 1 - o1a}, {"A": o2a, "B": 1 - o2a})
    pa = 0.5 * (o1a + (1 - o2a))
    dist = {"A": pa, "B": 1 - pa}
    label = "A" if pa > 0.5 else "B" if pa < 0.5 else "tie"
    if tie is not None:
        label = tie
    return Verdict("pairwise", label, pa, dist, orders)


def test_accuracy_and_consistency():
    verdicts = [
        v(0.9, 0.2),  # prefers original A in both orders -> consistent, correct for A
        v(0.8, 0.7),  # picks first position both times -> inconsistent; debiased 0.55 -> A
        v(0.3, 0.9),  # prefers B both times -> consistent
        v(0.6, 0.6),  # first position both times, debiased exactly 0.5 -> half a point
    ]
    m = pairwise_metrics(verdicts, ["A", "A", "A", "B"])
    assert m.accuracy == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert m.accuracy_first_order == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert m.accuracy_second_order == pytest.approx((1 + 0 + 0 + 1) / 4)
    assert m.position_consistency == pytest.approx(2 / 4)
    assert m.prefers_first_position == pytest.approx((0.5 + 1 + 0.5 + 1) / 4)


def test_ties_are_counted_not_scored():
    m = pairwise_metrics([v(0.9, 0.1), v(0.5, 0.5)], ["A", "tie"])
    assert m.pairs == 2 and m.ties == 1 and m.accuracy == 1.0


def test_subsets_and_empty():
    m = pairwise_metrics([v(0.9, 0.1), v(0.1, 0.9)], ["A", "A"], subsets=["x", "y"])
    assert m.subsets["x"]["accuracy"] == 1.0 and m.subsets["y"]["accuracy"] == 0.0
    assert math.isnan(pairwise_metrics([], []).accuracy)
    with pytest.raises(ValueError):
        pairwise_metrics([v(0.9, 0.1)], [])


def test_score_accuracy_leaves_ties_out_and_halves_an_exact_half():
    from flame_reward.eval.metrics import score_accuracy

    assert score_accuracy([0.9, 0.2, 0.5, 0.7], ["A", "B", "A", "tie"]) == (1 + 1 + 0.5) / 3
    assert score_accuracy([0.6], ["B"]) == 0.0
