"""Every pluggy hook flame-reward offers, typed; each one is called by the package.

A plugin is a module (or object) with functions marked ``@flame_reward.hookimpl`` whose
names are hooks below; a separately installed package declares it as an entry point in
the ``flame_reward`` group. The built-ins are plugins registered the same way (see
:mod:`flame_reward.plugins`), so a plugin's task type, pair format, data set or command is
looked up exactly like a built-in one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from argparse import ArgumentParser, _SubParsersAction

    from flame_reward.data.formats import PairFormat
    from flame_reward.data.sets import NamedSet
    from flame_reward.tasks.base import TaskType

hookspec = pluggy.HookspecMarker("flame_reward")
hookimpl = pluggy.HookimplMarker("flame_reward")


@hookspec
def register_commands(subparsers: _SubParsersAction[ArgumentParser]) -> None:
    """Add ``flame-reward`` subcommands: ``subparsers.add_parser(...)``, then ``set_defaults(fn=run)``
    with ``run(args) -> int`` (its exit status)."""


@hookspec
def register_task_types(register: Callable[[TaskType], None]) -> None:
    """Register task types by calling ``register(task_type_instance)``; names are unique."""


@hookspec
def register_pair_formats(register: Callable[[PairFormat], None]) -> None:
    """Register pairwise row formats (read by ``read_pairs`` and ``eval-pairs``) by calling
    ``register(PairFormat(...))``; detection tries them in registration order."""


@hookspec
def register_datasets(register: Callable[[NamedSet], None]) -> None:
    """Register named human-labelled sets (``load_pairs`` / ``load_scores`` / ``load_classes``,
    ``eval-pairs``, ``train``) by calling ``register(NamedSet(...))``."""
