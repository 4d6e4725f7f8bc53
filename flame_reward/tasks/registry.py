"""Look up task types registered through the ``register_task_types`` hook."""

from __future__ import annotations

from flame_reward.errors import UnknownTaskType
from flame_reward.registry import Registry
from flame_reward.tasks.base import TaskType

#: Every task type by name, built-ins and plugins alike. Registering the same class under
#: its name again is allowed (instances of one task type class are interchangeable).
TASK_TYPES: Registry[TaskType] = Registry(
    "register_task_types", "task type", UnknownTaskType, same=lambda old, new: type(old) is type(new)
)


def get_task_type(name: str | TaskType) -> TaskType:
    """Return the task type called ``name``; raise :class:`UnknownTaskType` if none is."""
    if isinstance(name, TaskType):
        return name
    return TASK_TYPES.lookup(name)


def list_task_types() -> dict[str, TaskType]:
    """All registered task types by name, built-ins and plugins alike."""
    return dict(sorted(TASK_TYPES.items()))


def reset() -> None:
    """Forget the registered task types; the next lookup asks the plugins again."""
    TASK_TYPES.reset()
