"""flame-reward: a FLAMe-style LLM autorater as a drop-in reward for RLHF stacks.

The public API is importable from here::

    from flame_reward import Autorater, flame_pointwise_reward, RewardClient

Only the errors and ``hookimpl`` are imported with the package; every other name is
imported from its module on first use (PEP 562), so ``import flame_reward`` (and a plugin
importing ``TaskType`` or ``hookimpl``) never loads torch, transformers or gRPC. The
modules named in ``_LAZY`` are where each name lives and stay importable directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

#: Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    # the judge and what it returns
    "Autorater": "flame_reward.autorater",
    "Verdict": "flame_reward.results",
    "ItemError": "flame_reward.results",
    "Generation": "flame_reward.results",
    # the task-type contract
    "TaskType": "flame_reward.tasks.base",
    "Field": "flame_reward.tasks.base",
    "Rendered": "flame_reward.tasks.base",
    "Summary": "flame_reward.tasks.base",
    "Swap": "flame_reward.tasks.base",
    "criteria_line": "flame_reward.tasks.base",
    "get_task_type": "flame_reward.tasks.registry",
    "list_task_types": "flame_reward.tasks.registry",
    # rewards for RL trainers, and the sidecar's client
    "flame_pointwise_reward": "flame_reward.trl",
    "flame_reference_reward": "flame_reward.trl",
    "flame_group_reward": "flame_reward.trl",
    "RewardClient": "flame_reward.sidecar.client",
    # plugins
    "get_plugin_manager": "flame_reward.plugins",
}

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from flame_reward.autorater import Autorater
    from flame_reward.sidecar.client import RewardClient
    from flame_reward.plugins import get_plugin_manager
    from flame_reward.results import Generation, ItemError, Verdict
    from flame_reward.tasks.base import Field, Rendered, Summary, Swap, TaskType, criteria_line
    from flame_reward.tasks.registry import get_task_type, list_task_types
    from flame_reward.trl import flame_group_reward, flame_pointwise_reward, flame_reference_reward


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flame_reward' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later reads skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Autorater",
    "DataError",
    "Field",
    "FlameRewardError",
    "Generation",
    "InvalidInput",
    "ItemError",
    "ModelLoadError",
    "Rendered",
    "RewardClient",
    "Summary",
    "Swap",
    "TaskType",
    "UnknownTaskType",
    "Verdict",
    "VerdictParseError",
    "__version__",
    "criteria_line",
    "flame_group_reward",
    "flame_pointwise_reward",
    "flame_reference_reward",
    "get_plugin_manager",
    "get_task_type",
    "hookimpl",
    "list_task_types",
]
