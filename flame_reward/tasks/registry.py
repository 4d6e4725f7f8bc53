"""Look up task types registered through the ``register_task_types`` hook."""

from __future__ import annotations

from flame_reward.errors import UnknownTaskType
from flame_reward.plugins import pm
from flame_reward.tasks.base import TaskRegistry, TaskType

_registry: TaskRegistry | None = None


def _load() -> TaskRegistry:
    global _registry
    if _registry is None:
        registry = TaskRegistry()
        pm.hook.register_task_types(register=registry.add)
        _registry = registry
    return _registry


def reset() -> None:
    """Forget the cached registry (after registering a plugin at run time)."""
    global _registry
    _registry = None


def get_task_type(name: str | TaskType) -> TaskType:
    """Return the task type called ``name``; raise :class:`UnknownTaskType` if none is."""
    if isinstance(name, TaskType):
        return name
    types = _load().types
    if name not in types:
        raise UnknownTaskType(name, list(types))
    return types[name]


def list_task_types() -> dict[str, TaskType]:
    """All registered task types by name, built-ins and plugins alike."""
    return dict(sorted(_load().types.items()))
