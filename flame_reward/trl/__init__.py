"""TRL integration: reward functions for GRPO / RLOO / online DPO, and the judge contracts TRL dropped.

Every number comes from the scoring core (:mod:`flame_reward.scoring`) through a
:class:`VerdictSource`; this package only turns TRL's batches into judge tasks and verdicts
into rewards. It does not import ``trl``: the reward functions are plain callables.

* :mod:`~flame_reward.trl.rewards`: the factories :func:`flame_pointwise_reward`,
  :func:`flame_reference_reward` and :func:`flame_group_reward`, each returning a
  :class:`FlameRewardFunction` (:mod:`~flame_reward.trl.reward_function`):

  - ``pointwise``: the expected rating of each completion on ``scale`` (one forward each).
  - ``reference``: P(completion beats the dataset's reference column), both presentation
    orders (two forwards each).
  - ``group``: completions for the same prompt play a round robin of pairwise comparisons
    (each pair in both orders, ``n(n-1)`` forwards for a group of ``n``). ``win_rate``:
    reward_i = mean_j P(i beats j); because P(i beats j) + P(j beats i) = 1 exactly, the
    rewards of a group of ``m`` judged completions sum to ``m/2``. ``bradley_terry``:
    reward_i = theta_i, the log-strength fitted with an L2 prior; a group sums to 0
    (:mod:`~flame_reward.trl.aggregation`).

* :mod:`~flame_reward.trl.judges`: :class:`FlamePairwiseJudge` and :class:`FlameRankJudge`
  keep the judge contract TRL removed in 1.1 (``trl.judges``).

* :mod:`~flame_reward.trl.sources`: the judge is an in-process ``Autorater`` or ``Scorer``,
  a model name loaded lazily (and reloaded in a child process after pickling), or any
  object with ``judge(task, examples) -> list[Verdict | ItemError]`` (:class:`VerdictSource`),
  such as the gRPC ``RewardClient``.

* :mod:`~flame_reward.trl.text`: TRL's strings and conversations as the text the judge reads.
"""

from __future__ import annotations

from flame_reward.trl.aggregation import bradley_terry, win_rates
from flame_reward.trl.judges import FlamePairwiseJudge, FlameRankJudge
from flame_reward.trl.reward_function import AsyncFlameRewardFunction, FlameRewardFunction
from flame_reward.trl.rewards import flame_group_reward, flame_pointwise_reward, flame_reference_reward
from flame_reward.trl.sources import InProcessSource, VerdictSource, as_verdict_source
from flame_reward.trl.text import to_text

__all__ = [
    "AsyncFlameRewardFunction",
    "FlamePairwiseJudge",
    "FlameRankJudge",
    "FlameRewardFunction",
    "InProcessSource",
    "VerdictSource",
    "as_verdict_source",
    "bradley_terry",
    "flame_group_reward",
    "flame_pointwise_reward",
    "flame_reference_reward",
    "to_text",
    "win_rates",
]
