"""Self-improving judges: the Self-Taught Evaluator loop and Meta-Rewarding.

- :mod:`~flame_reward.selfimprove.self_taught`: synthetic pairs from "similar but
  different" instructions, sampled rationale-then-verdict judgments kept when correct,
  LoRA SFT of the judge (``flame-reward self-taught``).
- :mod:`~flame_reward.selfimprove.meta_reward`: one model as actor, judge and
  meta-judge, actor and judge preference pairs, DPO (``flame-reward meta-reward``).

Both are built on the core (generation mode and verdict scoring), the training recipe's
trainer and the evaluation adapters; see ``docs/self_improving.md``.
"""

from flame_reward.selfimprove.meta_reward import (
    MetaRewardConfig,
    actor_pair,
    run_meta_reward,
)
from flame_reward.selfimprove.self_taught import SelfTaughtConfig, run_self_taught

__all__ = ["MetaRewardConfig", "SelfTaughtConfig", "actor_pair", "run_meta_reward", "run_self_taught"]
