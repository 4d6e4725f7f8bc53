"""Tournament arithmetic over a pairwise comparison function (no model in here).

``compare(pairs)`` takes a batch of index pairs ``(i, j)`` and returns ``P(i beats j)``
for each, so one round is one batched judge call. The judge's pairwise score is already
debiased (both presentation orders averaged), so a comparison is symmetric:
``P(j beats i) = 1 - P(i beats j)``.

* :func:`round_robin`: every pair once (``n(n-1)/2`` comparisons, one batch); a
  candidate's score is its expected number of wins (the sum of its win probabilities,
  a soft Copeland score), as in FLAMe's code reranking; the arithmetic is the package's
  one round robin (:mod:`flame_reward.round_robin`).
* :func:`swiss`: ``ceil(log2 n)`` rounds; each round pairs candidates with equal or near
  points that have not met yet (``n/2`` comparisons per round, one batch per round);
  ranked by points (sum of win probabilities), then Buchholz (the opponents' points).
* :func:`knockout`: single elimination (``n - 1`` comparisons, one batch per round);
  ranked by the round reached, then by how close each loss was.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flame_reward.round_robin import expected_wins, pairings

Compare = Callable[[Sequence[tuple[int, int]]], list[float]]


@dataclass(frozen=True)
class Result:
    """Scores (one per candidate, higher is better; floats or tuples), the games played as
    ``(i, j, P(i beats j))`` and extra figures."""

    scores: list[Any]
    games: list[tuple[int, int, float]]
    details: dict[str, Any] = field(default_factory=dict)


def round_robin(n: int, compare: Compare) -> Result:
    """Every pair once, in one batch. Score = expected wins (:func:`flame_reward.round_robin.expected_wins`);
    ``details["wins"]`` counts hard wins (``P > 0.5`` is a win, exactly 0.5 half a win each)."""
    pairs = pairings(range(n))
    probs = compare(pairs) if pairs else []
    outcomes = dict(zip(pairs, probs))
    expected = expected_wins(outcomes, range(n))
    wins = [0.0] * n
    for (i, j), p in outcomes.items():
        if p > 0.5:
            wins[i] += 1
        elif p < 0.5:
            wins[j] += 1
        else:
            wins[i] += 0.5
            wins[j] += 0.5
    games = [(i, j, p) for (i, j), p in outcomes.items()]
    return Result([expected[i] for i in range(n)], games, {"wins": wins, "rounds": 1 if pairs else 0})


def swiss_rounds(n: int) -> int:
    """Default number of Swiss rounds: ``ceil(log2 n)`` (enough to separate a unique best)."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 0


def swiss(n: int, compare: Compare, rounds: int | None = None) -> Result:
    """Swiss-system tournament; see the module docstring.

    Each round sorts by points (ties by index) and pairs the best unpaired candidate with
    the next best it has not met (a rematch only when nothing else is left). With an odd
    count the lowest-standing candidate without a bye sits out and gets 0.5 (a coin flip's
    worth, so a bye neither helps nor hurts on average).
    """
    if rounds is None:
        rounds = swiss_rounds(n)
    points = [0.0] * n
    opponents: list[list[int]] = [[] for _ in range(n)]
    met: set[frozenset[int]] = set()
    byes: set[int] = set()
    games: list[tuple[int, int, float]] = []
    played_rounds = 0
    for _ in range(rounds if n > 1 else 0):
        standing = sorted(range(n), key=lambda i: (-points[i], i))
        if n % 2:
            bye = next((i for i in reversed(standing) if i not in byes), standing[-1])
            byes.add(bye)
            points[bye] += 0.5
            standing.remove(bye)
        pairs: list[tuple[int, int]] = []
        while standing:
            a = standing.pop(0)
            b = next((c for c in standing if frozenset((a, c)) not in met), standing[0])
            standing.remove(b)
            pairs.append((a, b))
        probs = compare(pairs)
        for (a, b), p in zip(pairs, probs):
            points[a] += p
            points[b] += 1.0 - p
            opponents[a].append(b)
            opponents[b].append(a)
            met.add(frozenset((a, b)))
            games.append((a, b, p))
        played_rounds += 1
    buchholz = [sum(points[o] for o in opponents[i]) for i in range(n)]
    scores = [(points[i], buchholz[i]) for i in range(n)]
    return Result(scores, games, {"points": points, "buchholz": buchholz, "rounds": played_rounds,
                                  "byes": sorted(byes)})


def knockout(n: int, compare: Compare) -> Result:
    """Single elimination over the candidates in index order (an odd one out advances)."""
    alive = list(range(n))
    reached = [0] * n
    margin = [1.0] * n  # P(win) in the game a candidate lost; 1.0 for the champion
    games: list[tuple[int, int, float]] = []
    rnd = 0
    while len(alive) > 1:
        pairs = [(alive[k], alive[k + 1]) for k in range(0, len(alive) - 1, 2)]
        probs = compare(pairs)
        winners = []
        for (a, b), p in zip(pairs, probs):
            winner, loser, p_loser = (a, b, 1.0 - p) if p >= 0.5 else (b, a, p)
            winners.append(winner)
            margin[loser] = p_loser
            games.append((a, b, p))
        if len(alive) % 2:
            winners.append(alive[-1])
        rnd += 1
        for w in winners:
            reached[w] = rnd
        alive = winners
    scores = [(float(reached[i]), margin[i]) for i in range(n)]
    return Result(scores, games, {"round_reached": reached, "rounds": rnd})


__all__ = ["Compare", "Result", "knockout", "round_robin", "swiss", "swiss_rounds"]
