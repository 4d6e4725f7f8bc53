"""Every pluggy hook flame-reward offers, typed and documented.

Plugins are Python packages that declare an entry point in the ``flame_reward`` group
(``[project.entry-points.flame_reward] my_plugin = "my_package.plugin"``) and implement
some of these hooks with ``@flame_reward.hookimpl``. The built-in task types use the same
hook, so a plugin's task type is a first-class citizen everywhere: the CLI, the TRL
adapter, the server and the reranker all look task types up by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from flame_reward.tasks.base import TaskType

hookspec = pluggy.HookspecMarker("flame_reward")
hookimpl = pluggy.HookimplMarker("flame_reward")


@hookspec
def register_task_types(register: Callable[[TaskType], None]) -> None:
    """Register task types by calling ``register(task_type_instance)``.

    A task type subclasses :class:`flame_reward.tasks.TaskType` and provides its fields,
    its rendering in the FLAMe INSTRUCTION / CONTEXT / EVALUATION form, its verdict
    vocabulary, a parser for generated answers and a training target. Registering two
    different classes under one name is an error.
    """


@hookspec
def register_pair_formats(register: Callable[[Any], None]) -> None:
    """Register pairwise data formats for ``eval-pairs`` by calling ``register(PairFormat)``.

    A :class:`flame_reward.data.formats.PairFormat` names a format, detects it from a row
    and converts a row into a preference pair (raising ``InvalidInput`` naming the field
    for a malformed row, which is then reported with its line number and skipped).
    """


@hookspec
def register_datasets(register: Callable[[Any], None]) -> None:
    """Register named training/evaluation datasets by calling ``register(dataset)``.

    Used by the training recipe: a dataset yields labelled task examples and has a
    deterministic dev split that training never sees.
    """
