"""Result types returned by the scoring core and everything built on it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """A judge's verdict on one example, read from the next-token distribution.

    ``distribution`` is over the task's verdict labels and, for tasks with two
    presentation orders (pairwise), is the average of both orders mapped back to the
    original labels — order bias cancels by construction. ``orders`` keeps the raw
    distribution of each presentation exactly as presented (for pairwise:
    ``orders[0]`` with the responses as given, ``orders[1]`` with them swapped, so
    ``orders[1]["A"]`` is the probability for the original ``response_b``).
    ``score`` is the task's number: P(A better) for pairwise, the expected rating for
    pointwise, P(first label) for classification.
    ``head`` names the trained verdict head (route) that took part, or is ``None`` when
    the verdict is the raw model's (:mod:`flame_reward.models.heads`); ``raw_score`` is
    then the raw model's score from the same forward pass (``None`` when no head took part:
    ``score`` is the raw model's).
    """

    task: str
    label: str
    score: float
    distribution: dict[str, float]
    orders: tuple[dict[str, float], ...] = ()
    tokens: int = 0
    truncated: tuple[str, ...] = ()
    head: str | None = None
    raw_score: float | None = None

    @property
    def consistent(self) -> bool | None:
        """For two-order tasks: does each order, on its own, prefer the same response?"""
        if len(self.orders) != 2 or "A" not in self.orders[0]:
            return None
        first = self.orders[0]["A"] >= self.orders[0]["B"]
        second = self.orders[1]["B"] >= self.orders[1]["A"]
        return first == second

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["orders"] = list(self.orders)
        out["truncated"] = list(self.truncated)
        return out


@dataclass(frozen=True)
class ItemError:
    """An example that could not be judged; it keeps its place in the results."""

    index: int
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"error": f"{self.field}: {self.message}", "field": self.field}


@dataclass(frozen=True)
class Generation:
    """A generated judgment: the text, and the verdict parsed from it or the parse error."""

    task: str
    text: str
    label: str | None
    error: str | None = None
    samples: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["samples"] = list(self.samples)
        return out
