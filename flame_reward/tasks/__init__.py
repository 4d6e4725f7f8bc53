"""FLAMe task types: the text-to-text format and the registry of task types."""

from flame_reward.tasks.base import Field, Rendered, Summary, Swap, TaskType
from flame_reward.tasks.registry import get_task_type, list_task_types

__all__ = ["Field", "Rendered", "Summary", "Swap", "TaskType", "get_task_type", "list_task_types"]
