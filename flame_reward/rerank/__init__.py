"""Best-of-N reranking with any judge that has the Autorater API.

>>> from flame_reward.rerank import rank
>>> r = rank("Write a haiku about rain", candidates, strategy="round_robin", judge=judge)
>>> r.order[0], r.scores, r.judge_calls

Text: :func:`rank` (strategies ``random``, ``round_robin``, ``swiss``, ``knockout``,
``pointwise``, and ``signals`` / ``hybrid`` given an external per-candidate signal such
as a verifier's). Code: :func:`flame_reward.rerank.code.rank_code` adds the execution
signals (prompt examples, CodeT) and the ``code_correctness`` task types.
``flame-reward humaneval`` measures all of them on HumanEval. The judge's code task types
live with the other task types (:mod:`flame_reward.tasks.code_correctness`).

Submodules load on use, so importing the package costs nothing until a ranking runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flame_reward.rerank.judging import VerdictCache
    from flame_reward.rerank.ranking import JudgeLike, Ranking


def rank(
    prompt: str,
    candidates: Sequence[str],
    strategy: str = "round_robin",
    *,
    judge: JudgeLike | None = None,
    pair_task: str = "pairwise",
    point_task: str = "pointwise",
    criteria: str | None = None,
    pair_options: dict[str, Any] | None = None,
    point_options: dict[str, Any] | None = None,
    signals: Sequence[Any] | None = None,
    cache: VerdictCache | None = None,
    seed: int = 0,
    rounds: int | None = None,
    max_group: int = 4,
    tiebreak: str = "round_robin",
) -> Ranking:
    """Rank text ``candidates`` answering ``prompt``; returns a full :class:`Ranking`.

    Pairwise strategies use ``pair_task`` (fields prompt/response_a/response_b), pointwise
    uses ``point_task`` (prompt/response; ``point_options={"scale": (1, 10)}``).
    ``signals`` (one comparable per candidate) drives ``signals`` and ``hybrid``.
    """
    from flame_reward.rerank.judging import text_view
    from flame_reward.rerank.strategies import run_strategy

    view = text_view(prompt, candidates, judge, pair_task=pair_task, point_task=point_task, criteria=criteria,
                     pair_options=pair_options, point_options=point_options, cache=cache)
    return run_strategy(strategy, view, seed=seed, rounds=rounds, signals=signals, max_group=max_group,
                        tiebreak=tiebreak)


def __getattr__(name: str) -> Any:
    if name == "Ranking":
        from flame_reward.rerank.ranking import Ranking

        return Ranking
    if name == "rank_code":
        from flame_reward.rerank.code import rank_code

        return rank_code
    if name == "VerdictCache":
        from flame_reward.rerank.judging import VerdictCache

        return VerdictCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Ranking", "VerdictCache", "rank", "rank_code"]
