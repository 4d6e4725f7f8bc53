"""flame-reward: a FLAMe-style LLM autorater as a drop-in reward for RLHF stacks."""

from flame_reward.errors import (
    DataError,
    FlameRewardError,
    InvalidInput,
    ModelLoadError,
    UnknownTaskType,
    VerdictParseError,
)
from flame_reward.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "FlameRewardError",
    "InvalidInput",
    "ModelLoadError",
    "UnknownTaskType",
    "VerdictParseError",
    "hookimpl",
    "__version__",
]
