"""The judge contracts TRL removed in 1.1 (``trl.judges``), for your own loops and Best-of-N."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from flame_reward.errors import InvalidInput
from flame_reward.results import Verdict
from flame_reward.trl.reward_function import FlameRewardFunction, group_rewards
from flame_reward.trl.sources import JudgeHolder
from flame_reward.trl.text import Unjudgeable, to_text


class FlamePairwiseJudge:
    """The ``BasePairwiseJudge`` contract of TRL <= 1.0 (``trl.judges``), for your own loops.

    ``judge(prompts, completions, shuffle_order=True, return_scores=False)``: ``completions``
    holds one pair per prompt. Returns the index (0 or 1) of the better completion of each
    pair, or with ``return_scores=True`` P(the first is better). Both presentation orders are
    always scored and averaged, so position bias cancels without shuffling; ``shuffle_order``
    is accepted for compatibility and changes nothing. A pair the judge cannot read gives
    -1 (``NaN`` with ``return_scores``), as the old contract specified. Exact ties (0.5, e.g.
    identical completions) go to the first completion.
    """

    def __init__(self, judge: Any = None, *, criteria: str | None = None,
                 judge_kwargs: Mapping[str, Any] | None = None) -> None:
        self.holder = JudgeHolder(judge, judge_kwargs)
        self.criteria = criteria

    def judge(self, prompts: Sequence[Any], completions: Sequence[Sequence[Any]], shuffle_order: bool = True,
              return_scores: bool = False) -> list[int] | list[float]:
        if len(prompts) != len(completions):
            raise InvalidInput("completions", f"{len(completions)} pairs for {len(prompts)} prompts")
        slots, examples = [], []
        for k, (prompt, pair) in enumerate(zip(prompts, completions)):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise InvalidInput("completions", f"item {k} must be a pair of completions")
            try:
                ex: dict[str, Any] = {"prompt": to_text(prompt, "prompt"), "response_a": to_text(pair[0], "completion"),
                                      "response_b": to_text(pair[1], "completion")}
            except Unjudgeable:
                continue
            if self.criteria is not None:
                ex["criteria"] = self.criteria
            slots.append(k)
            examples.append(ex)
        scores: list[float] = [math.nan] * len(prompts)
        for k, res in zip(slots, self.holder.judge("pairwise", examples)):
            if isinstance(res, Verdict):
                scores[k] = float(res.score)
        if return_scores:
            return scores
        return [-1 if math.isnan(s) else (0 if s >= 0.5 else 1) for s in scores]


class FlameRankJudge:
    """The ``BaseRankJudge`` contract of TRL <= 1.0 for Best-of-N: ``judge(prompts,
    completions) -> list[list[int]]``, each list the candidate indices best first.

    ``method="tournament"`` ranks by round-robin win rate (``n(n-1)`` forwards per prompt);
    ``"pointwise"`` by expected rating (``n`` forwards). Ties keep the candidates' order;
    candidates the judge cannot read come last.
    """

    def __init__(self, judge: Any = None, *, method: Literal["tournament", "pointwise"] = "tournament",
                 criteria: str | None = None, scale: tuple[int, int] = (1, 5),
                 judge_kwargs: Mapping[str, Any] | None = None) -> None:
        if method not in ("tournament", "pointwise"):
            raise InvalidInput("method", f"must be 'tournament' or 'pointwise', got {method!r}")
        self.method = method
        self.reward = FlameRewardFunction(judge, judge_kwargs=judge_kwargs, criteria=criteria, scale=scale,
                                          mode="group" if method == "tournament" else "pointwise",
                                          name=f"flame_rank_{method}")

    def scores(self, prompts: Sequence[Any], completions: Sequence[Sequence[Any]]) -> list[list[float | None]]:
        """Each candidate's score (win rate or expected rating; ``None`` if unreadable)."""
        if len(prompts) != len(completions):
            raise InvalidInput("completions", f"{len(completions)} candidate lists for {len(prompts)} prompts")
        flat_p = [p for p, cands in zip(prompts, completions) for _ in cands]
        flat_c = [c for cands in completions for c in cands]
        bounds, start = [], 0
        for cands in completions:
            bounds.append(list(range(start, start + len(cands))))
            start += len(cands)
        invalid: dict[int, str] = {}
        if self.method == "tournament":
            rewards, _ = group_rewards(self.reward, bounds, flat_p, flat_c, invalid)
        else:
            rewards, _ = self.reward.judge_each(flat_p, flat_c, {}, invalid)
        return [[rewards.get(i) for i in g] for g in bounds]

    def judge(self, prompts: Sequence[Any], completions: Sequence[Sequence[Any]], shuffle_order: bool = True) -> list[list[int]]:
        out = []
        for row in self.scores(prompts, completions):
            out.append(sorted(range(len(row)), key=lambda k: (row[k] is None, -(row[k] or 0.0), k)))
        return out


__all__ = ["FlamePairwiseJudge", "FlameRankJudge"]
