"""What every reranking strategy returns, and how judge cost is counted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class JudgeLike(Protocol):
    """The part of :class:`~flame_reward.autorater.Autorater` the strategies use.

    ``judge(task, examples, on_error=...)`` returns one verdict (with ``.score``) or item
    error per example, in input order. Any object with this method works, so the
    strategies rank text as well as code, with any judge.
    """

    def judge(self, task: Any, examples: Sequence[Mapping[str, Any]], **kwargs: Any) -> list[Any]: ...


@dataclass(frozen=True)
class Ranking:
    """A full ranking of ``n`` candidates.

    ``order``: candidate indices, best first (ties in ``scores`` by lower index, except
    for ``random``, whose order is a seeded shuffle). ``scores``: one per candidate, in
    candidate order, higher is better; a number, or a tuple compared lexicographically
    (the execution-grounded strategies use ``(examples pass rate, CodeT score, judge)``).

    ``judge_calls`` counts **presentations the judge scores** (rows of a forward pass):
    a pairwise judgment in both presentation orders is 2, a pointwise rating 1. Pairs of
    identical candidates are not judged (their debiased score is exactly 0.5) and a pair
    or text judged once is not judged again within a ranking. The count does not depend
    on the verdict cache: ``details["cached_calls"]`` says how many of them were answered
    from it. ``details["judgments"]`` counts pair (or pointwise) judgments.
    """

    order: list[int]
    scores: list[Any]
    judge_calls: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    strategy: str = ""

    @property
    def best(self) -> int:
        """Index of the top-ranked candidate."""
        return self.order[0]

    def top_group(self) -> list[int]:
        """Every candidate whose score ties the best one (the pick is one of these)."""
        best = self.scores[self.order[0]]
        return [i for i in self.order if self.scores[i] == best]

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "order": list(self.order),
            "scores": [list(s) if isinstance(s, tuple) else s for s in self.scores],
            "judge_calls": self.judge_calls,
            "details": self.details,
        }


def order_by(scores: Sequence[Any]) -> list[int]:
    """Indices by score, best first; ties keep the lower index first."""
    return sorted(range(len(scores)), key=lambda i: _Desc(scores[i], i))


class _Desc:
    """Sort key: higher score first, then lower index (works for floats and tuples)."""

    __slots__ = ("score", "index")

    def __init__(self, score: Any, index: int) -> None:
        self.score = score
        self.index = index

    def __lt__(self, other: _Desc) -> bool:
        if self.score != other.score:
            return bool(self.score > other.score)
        return self.index < other.index


__all__ = ["JudgeLike", "Ranking", "order_by"]
