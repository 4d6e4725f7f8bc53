"""Self-improving judges: the Self-Taught Evaluator loop and Meta-Rewarding.

- :mod:`~flame_reward.selfimprove.self_taught`: synthetic pairs from "similar but
  different" instructions, sampled rationale-then-verdict judgments kept when correct,
  LoRA SFT of the judge (``flame-reward self-taught``).
- :mod:`~flame_reward.selfimprove.meta_reward`: one model as actor, judge and
  meta-judge, actor and judge preference pairs, DPO (``flame-reward meta-reward``).

Both are built on the core (generation mode and verdict scoring), the training recipe's
trainer and the evaluation adapters; see ``docs/self_improving.md``. The names below load
on first use, so registering the commands (``selfimprove.command``, a built-in plugin)
does not import the loops.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MetaRewardConfig": "flame_reward.selfimprove.meta_reward",
    "actor_pair": "flame_reward.selfimprove.meta_reward",
    "run_meta_reward": "flame_reward.selfimprove.meta_reward",
    "SelfTaughtConfig": "flame_reward.selfimprove.self_taught",
    "run_self_taught": "flame_reward.selfimprove.self_taught",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = ["MetaRewardConfig", "SelfTaughtConfig", "actor_pair", "run_meta_reward", "run_self_taught"]
