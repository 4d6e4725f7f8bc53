"""The built-in task types, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from flame_reward.hookspecs import hookimpl
from flame_reward.tasks.base import TaskType
from flame_reward.tasks.classification import ClassificationTask
from flame_reward.tasks.open_ended import OpenEndedTask
from flame_reward.tasks.pairwise import PairwiseTask
from flame_reward.tasks.pairwise_named import PairwiseNamedTask
from flame_reward.tasks.pointwise import PointwiseTask


@hookimpl
def register_task_types(register: Callable[[TaskType], None]) -> None:
    register(PairwiseTask())
    register(PointwiseTask())
    register(ClassificationTask())
    register(OpenEndedTask())
    register(PairwiseNamedTask())
