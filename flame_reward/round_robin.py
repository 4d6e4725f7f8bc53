"""One round robin: every pair of candidates judged once, win rates from the outcomes.

The judge's pairwise score is debiased (the core scores both presentation orders and
averages them), so one judgment per unordered pair is enough: ``P(j beats i) = 1 - P(i
beats j)`` exactly. A round robin of ``n`` candidates is therefore ``n(n-1)/2`` pairwise
judgments, ``n(n-1)`` presentations. The reranker, the TRL group rewards and the sidecar's
``Rank`` all score it with the arithmetic here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flame_reward.errors import FlameRewardError
from flame_reward.results import ItemError, Verdict

Pair = tuple[int, int]
PairExample = Callable[[int, int], Mapping[str, Any]]


def pairings(members: Sequence[int]) -> list[Pair]:
    """Every unordered pair of ``members`` once, as ``(earlier, later)`` in ``members`` order."""
    members = list(members)
    return [(i, j) for a, i in enumerate(members) for j in members[a + 1:]]


def _p_beats(outcomes: Mapping[Pair, float], i: int, j: int) -> float:
    return outcomes[(i, j)] if (i, j) in outcomes else 1.0 - outcomes[(j, i)]


def expected_wins(outcomes: Mapping[Pair, float], members: Sequence[int]) -> dict[int, float]:
    """Each member's expected number of wins, ``sum_j P(i beats j)`` (a soft Copeland score).

    Args:
        outcomes: ``P(i beats j)`` for each pair of members, under either ``(i, j)`` or ``(j, i)``.
        members: the candidates of one round robin.

    Returns:
        ``{member: expected wins}``; over ``m`` members they sum to ``m(m-1)/2``.
    """
    wins = {i: 0.0 for i in members}
    # Pair order adds each member's outcomes in members order, the same sum as a loop over j.
    for i, j in pairings(members):
        p = _p_beats(outcomes, i, j)
        wins[i] += p
        wins[j] += 1.0 - p
    return wins


def win_rates(outcomes: Mapping[Pair, float], members: Sequence[int]) -> dict[int, float]:
    """Each member's mean ``P(i beats j)`` over the other members.

    Args:
        outcomes: ``P(i beats j)`` for each pair of members, under either ``(i, j)`` or ``(j, i)``.
        members: the candidates of one round robin.

    Returns:
        ``{member: win rate}``; over ``m`` members they sum to ``m/2``, and a lone member gets 0.5.
    """
    members = list(members)
    if len(members) == 1:
        return {members[0]: 0.5}
    return {i: w / (len(members) - 1) for i, w in expected_wins(outcomes, members).items()}


@dataclass
class Games:
    """The judged pairs of one or more round robins.

    ``outcomes``: ``P(i beats j)`` per judged or tied pair; ``errors``: the pairs the judge
    rejected (an :class:`ItemError` each); ``verdicts``: the verdicts the judge returned, in
    pair order; ``judged``: pairs sent to the judge (ties are not).
    """

    outcomes: dict[Pair, float] = field(default_factory=dict)
    errors: dict[Pair, ItemError] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    judged: int = 0


def play(
    judge: Any,
    task: str,
    groups: Sequence[Sequence[int]],
    example: PairExample,
    *,
    tie: Callable[[int, int], bool] | None = None,
) -> Games:
    """Judge every pair of every group in one ``judge.judge`` call.

    Args:
        judge: any object whose ``judge(task, examples)`` returns one :class:`Verdict` or
            :class:`ItemError` per example, in order (a TRL verdict source, the sidecar's
            queued judge, an Autorater wrapped to return errors).
        task: the pairwise task type; ``Verdict.score`` is P(the first response wins).
        groups: the round robins, each a list of candidate indices.
        example: ``example(i, j)`` is the task example presenting ``i`` first and ``j`` second.
        tie: pairs for which ``tie(i, j)`` is true score exactly 0.5 without a judgment (the
            debiased score of two identical texts is 0.5 by symmetry).

    Returns:
        The :class:`Games`: every pair lands in ``outcomes`` or in ``errors``.
    """
    games = Games()
    jobs: list[Pair] = []
    examples: list[Mapping[str, Any]] = []
    for group in groups:
        for i, j in pairings(group):
            if tie is not None and tie(i, j):
                games.outcomes[(i, j)] = 0.5
                continue
            jobs.append((i, j))
            examples.append(example(i, j))
    results = list(judge.judge(task, examples)) if examples else []
    if len(results) != len(examples):
        raise FlameRewardError(f"the judge returned {len(results)} verdicts for {len(examples)} examples")
    games.judged = len(jobs)
    for pair, result in zip(jobs, results):
        if isinstance(result, ItemError):
            games.errors[pair] = result
        else:
            games.verdicts.append(result)
            games.outcomes[pair] = float(result.score)
    return games


__all__ = ["Games", "Pair", "PairExample", "expected_wins", "pairings", "play", "win_rates"]
