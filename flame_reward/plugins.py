"""The one plugin manager, created on first use: built-in plugins and entry points alike.

Nothing is loaded when this module is imported. :func:`get_plugin_manager` (or an explicit
:func:`load_plugins`) creates the manager, loads the third-party plugins declared in the
``flame_reward`` entry-point group, then registers the built-in modules in
:data:`DEFAULT_PLUGINS` with the same ``pm.register(module, name)`` call pluggy uses for an
entry point (the same route simonw/llm's default plugins take). Built-ins are listed here
rather than as entry points of this package so they never depend on install metadata.
Set ``FLAME_REWARD_NO_PLUGINS=1`` to load only the built-ins (useful when a broken
third-party plugin prevents start-up).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import pluggy

from flame_reward import hookspecs

#: Modules holding the built-in hook implementations, in the order their hooks run.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "flame_reward.cli",
    "flame_reward.tasks.builtin",
    "flame_reward.tasks.code_correctness",
    "flame_reward.data.formats",
    "flame_reward.data.sets",
    "flame_reward.train.command",
    "flame_reward.train.heads_command",
    "flame_reward.eval.command",
    "flame_reward.rerank.command",
    "flame_reward.sidecar.command",
    "flame_reward.models.onnx_command",
    "flame_reward.selfimprove.command",
)


class PluginManager(pluggy.PluginManager):
    """pluggy's manager for the ``flame_reward`` hooks, counting (un)registrations so that
    registries filled from a hook refill after a plugin comes or goes."""

    def __init__(self) -> None:
        super().__init__("flame_reward")
        self.add_hookspecs(hookspecs)
        self.generation = 0

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        self.generation += 1
        return registered

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        removed = super().unregister(plugin, name)
        self.generation += 1
        return removed


_manager: PluginManager | None = None


def load_plugins(*, entry_points: bool | None = None) -> PluginManager:
    """Create the plugin manager afresh: entry-point plugins (unless ``entry_points`` is
    false, or ``FLAME_REWARD_NO_PLUGINS`` is set and ``entry_points`` is not given), then the
    built-ins. Hooks run built-ins first, in :data:`DEFAULT_PLUGINS` order, then plugins."""
    global _manager
    pm = PluginManager()
    if entry_points is None:
        entry_points = not os.environ.get("FLAME_REWARD_NO_PLUGINS")
    if entry_points:
        pm.load_setuptools_entrypoints("flame_reward")
    # pluggy calls the most recently registered implementation first.
    for name in reversed(DEFAULT_PLUGINS):
        module = importlib.import_module(name)
        if not pm.is_registered(module):
            pm.register(module, name=name)
    _manager = pm
    return pm


def get_plugin_manager() -> PluginManager:
    """The plugin manager, loaded by :func:`load_plugins` on first use."""
    return _manager if _manager is not None else load_plugins()


def get_plugins() -> list[dict[str, object]]:
    """Registered plugins with the hooks each implements (for ``flame-reward tasks``)."""
    pm = get_plugin_manager()
    plugins = []
    dists = {plugin: dist for plugin, dist in pm.list_plugin_distinfo()}
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        info: dict[str, object] = {
            "name": name,
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
        }
        dist = dists.get(plugin)
        if dist is not None:
            info["version"] = dist.version
            info["distribution"] = dist.project_name
        plugins.append(info)
    return plugins


__all__ = ["DEFAULT_PLUGINS", "PluginManager", "get_plugin_manager", "get_plugins", "load_plugins"]
