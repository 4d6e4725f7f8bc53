"""Pairwise accuracy and position-consistency arithmetic over verdicts.

Conventions (documented in README):
- A pair counts as correct when the judge's debiased P(label's response) > P(other);
  an exact tie of the two probabilities earns half a point.
- Pairs whose human label is ``tie`` are left out of accuracy and counted separately
  (``ties``); when the judge may answer tie, ``tie_agreement`` reports the share of
  human ties it called tie.
- Per-order accuracy reads each presentation on its own (``orders[0]`` as given,
  ``orders[1]`` swapped), which is where position bias shows.
- Position consistency is the share of pairs whose preferred response is the same in
  both presentations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from flame_reward.results import Verdict


@dataclass
class PairwiseMetrics:
    """Accuracy figures over a set of judged pairs."""

    pairs: int = 0
    ties: int = 0
    accuracy: float = float("nan")
    accuracy_first_order: float = float("nan")
    accuracy_second_order: float = float("nan")
    position_consistency: float = float("nan")
    prefers_first_position: float = float("nan")
    tie_agreement: float | None = None
    subsets: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _point(p_label: float, p_other: float) -> float:
    if p_label > p_other:
        return 1.0
    if p_label == p_other:
        return 0.5
    return 0.0


def pairwise_metrics(
    verdicts: Sequence[Verdict], labels: Sequence[str], subsets: Sequence[str | None] | None = None
) -> PairwiseMetrics:
    """Compute :class:`PairwiseMetrics` for verdicts on pairs with human ``labels`` (A/B/tie)."""
    if len(verdicts) != len(labels):
        raise ValueError(f"{len(verdicts)} verdicts for {len(labels)} labels")
    m = PairwiseMetrics(pairs=len(verdicts))
    correct, first, second, consistent, first_pos = [], [], [], [], []
    tie_hits = []
    for v, label in zip(verdicts, labels):
        if len(v.orders) == 2:
            consistent.append(1.0 if v.consistent else 0.0)
            # Share of presentations in which the judge picked whatever was shown first.
            first_pos.append(0.5 * ((v.orders[0]["A"] > v.orders[0]["B"]) + (v.orders[1]["A"] > v.orders[1]["B"])))
        if label == "tie":
            m.ties += 1
            tie_hits.append(1.0 if v.label == "tie" else 0.0)
            continue
        other = "B" if label == "A" else "A"
        correct.append(_point(v.distribution[label], v.distribution[other]))
        if len(v.orders) >= 1:
            first.append(_point(v.orders[0][label], v.orders[0][other]))
        if len(v.orders) == 2:
            # In the swapped presentation the label's response is shown under the other letter.
            second.append(_point(v.orders[1][other], v.orders[1][label]))
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    m.accuracy = mean(correct)
    m.accuracy_first_order = mean(first)
    m.accuracy_second_order = mean(second)
    m.position_consistency = mean(consistent)
    m.prefers_first_position = mean(first_pos)
    if tie_hits and any("tie" in v.distribution for v in verdicts):
        m.tie_agreement = mean(tie_hits)
    if subsets is not None:
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(subsets):
            groups.setdefault(s or "all", []).append(i)
        if len(groups) > 1:
            for name, idx in sorted(groups.items()):
                sub = pairwise_metrics([verdicts[i] for i in idx], [labels[i] for i in idx])
                m.subsets[name] = {"pairs": sub.pairs, "accuracy": sub.accuracy,
                                   "position_consistency": sub.position_consistency}
    return m


def score_accuracy(scores: Sequence[float], labels: Sequence[str]) -> float:
    """Accuracy of debiased P(A) ``scores`` against human labels (A/B/tie), with the
    conventions above: ties left out, a score of exactly 0.5 earns half a point."""
    points = [_point(s, 1 - s) if label == "A" else _point(1 - s, s)
              for s, label in zip(scores, labels) if label != "tie"]
    return sum(points) / len(points) if points else float("nan")


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either variable accounted for), as SummEval reports it."""
    n = len(x)
    if n != len(y):
        raise ValueError(f"{n} values against {len(y)}")
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denom = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denom if denom else float("nan")


def proportion_interval(p: float, n: int, z: float = 1.96) -> float:
    """Half-width of the normal 95% interval of a proportion ``p`` measured on ``n`` items."""
    return z * (p * (1 - p) / n) ** 0.5 if n else float("nan")


def tau_interval(n: int, z: float = 1.96) -> float:
    """Half-width of the 95% interval of Kendall's tau under independence (``sqrt(2(2n+5)/(9n(n-1)))``)."""
    return z * (2 * (2 * n + 5) / (9 * n * (n - 1))) ** 0.5 if n > 1 else float("nan")
