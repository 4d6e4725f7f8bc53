"""Best-of-N strategies over a :class:`~flame_reward.rerank.judging.JudgeView`.

Judge-only strategies (what the judge alone is worth):

* ``round_robin``: every pair, both presentation orders (FLAMe's reranking setting);
  ``n(n-1)`` presentations, e.g. 90 for 10 candidates, in one batched judge call.
* ``swiss``: ``ceil(log2 n)`` Swiss rounds; ``2 * n/2`` presentations per round (40 for 10).
* ``knockout``: single elimination; ``2(n-1)`` presentations (18 for 10).
* ``pointwise``: one rating per candidate, ranked by its expected score (``n``).

Baseline: ``random`` (a seeded shuffle; every score ties, so the expected top-1 is the
mean pass rate).

Signal-grounded: ``signals`` ranks by an external per-candidate signal (tuples compare
lexicographically) with no judge; ``hybrid`` ranks by the signal and lets the judge
order only the **top group** (candidates tied on the best signal), deduplicated and
capped at ``max_group`` distinct texts, so its cost stays small (at most
``max_group * (max_group - 1)`` presentations with the round-robin tiebreak, 12 for 4).
For code the signal is the prompt examples' pass rate, then the CodeT score
(:mod:`flame_reward.rerank.code`).
"""

from __future__ import annotations

import random as _random
from collections.abc import Sequence
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.rerank import tournament
from flame_reward.rerank.judging import JudgeView
from flame_reward.rerank.ranking import Ranking, order_by
from flame_reward.round_robin import pairings, win_rates

JUDGE_STRATEGIES = ("round_robin", "swiss", "knockout", "pointwise")
"""Strategies whose ranking comes from the judge alone."""
TEXT_STRATEGIES = ("random", *JUDGE_STRATEGIES, "signals", "hybrid")
"""Strategies :func:`run_strategy` knows (``signals`` and ``hybrid`` need ``signals=``)."""
NOT_JUDGED = -1.0
"""The judge component of a hybrid score for candidates the judge did not see."""


def _finish(strategy: str, view: JudgeView, scores: list[Any], extra: dict[str, Any],
            order: list[int] | None = None) -> Ranking:
    details = {**view.usage.as_details(), **extra}
    return Ranking(order if order is not None else order_by(scores), scores, view.usage.calls, details, strategy)


def run_strategy(
    strategy: str,
    view: JudgeView,
    *,
    seed: int = 0,
    rounds: int | None = None,
    signals: Sequence[Any] | None = None,
    max_group: int = 4,
    tiebreak: str = "round_robin",
) -> Ranking:
    """Rank ``view``'s candidates with ``strategy`` (see the module docstring)."""
    n = view.n
    if n < 1:
        raise InvalidInput("candidates", "no candidates to rank")
    if strategy == "random":
        order = _random.Random(seed).sample(range(n), n)
        return _finish(strategy, view, [0.0] * n, {"seed": seed}, order)
    if strategy == "round_robin":
        res = tournament.round_robin(n, view.compare)
        return _finish(strategy, view, res.scores, {"wins": res.details["wins"], "games": len(res.games)})
    if strategy == "swiss":
        res = tournament.swiss(n, view.compare, rounds)
        return _finish(strategy, view, res.scores, {"rounds": res.details["rounds"], "games": len(res.games),
                                                    "points": res.details["points"]})
    if strategy == "knockout":
        res = tournament.knockout(n, view.compare)
        return _finish(strategy, view, res.scores, {"rounds": res.details["rounds"], "games": len(res.games)})
    if strategy == "pointwise":
        return _finish(strategy, view, view.rate(range(n)), {})
    if strategy in ("signals", "hybrid"):
        if signals is None or len(signals) != n:
            raise InvalidInput("signals", f"strategy {strategy!r} needs one signal per candidate ({n})")
        keys = [s if isinstance(s, tuple) else (s,) for s in signals]
        if strategy == "signals":
            return _finish(strategy, view, list(keys), {})
        return _hybrid(view, keys, max_group=max_group, tiebreak=tiebreak)
    raise InvalidInput("strategy", f"unknown strategy {strategy!r}; known: {', '.join(TEXT_STRATEGIES)}")


def _hybrid(view: JudgeView, keys: list[tuple[Any, ...]], *, max_group: int, tiebreak: str) -> Ranking:
    if max_group < 1:
        raise InvalidInput("max_group", f"must be >= 1, got {max_group}")
    if tiebreak not in ("round_robin", "pointwise"):
        raise InvalidInput("tiebreak", f"must be round_robin or pointwise, got {tiebreak!r}")
    n = view.n
    best = max(keys)
    group = [i for i in range(n) if keys[i] == best]
    distinct = view.distinct(group)
    judged = distinct[:max_group]
    judge_score: dict[str, float] = {}
    if len(judged) > 1:
        if tiebreak == "round_robin":
            pairs = pairings(judged)
            rates = win_rates(dict(zip(pairs, view.compare(pairs))), judged)
            values = [rates[i] for i in judged]
        else:
            values = view.rate(judged)
        judge_score = {view.texts[i]: v for i, v in zip(judged, values)}
    elif judged:
        judge_score = {view.texts[judged[0]]: 1.0}
    scores = [(*keys[i], judge_score.get(view.texts[i], NOT_JUDGED)) for i in range(n)]
    extra = {"group": len(group), "group_distinct": len(distinct), "judged": len(judged) if len(judged) > 1 else 0,
             "tiebreak": tiebreak, "max_group": max_group}
    return _finish("hybrid", view, scores, extra)


__all__ = ["JUDGE_STRATEGIES", "NOT_JUDGED", "TEXT_STRATEGIES", "run_strategy"]
