"""The one plugin manager: built-in plugins and setuptools entry points alike.

As in simonw/llm, the default plugins are registered through the same call as
third-party ones, so nothing built in has a privileged path a plugin cannot take.
Set ``FLAME_REWARD_NO_PLUGINS=1`` to load only the built-ins (useful when a broken
third-party plugin prevents start-up).
"""

from __future__ import annotations

import importlib
import os

import pluggy

from flame_reward import hookspecs

#: Modules holding the built-in hook implementations.
DEFAULT_PLUGINS = ("flame_reward.tasks.builtin", "flame_reward.tasks.code_correctness")

pm = pluggy.PluginManager("flame_reward")
pm.add_hookspecs(hookspecs)

if not os.environ.get("FLAME_REWARD_NO_PLUGINS"):
    pm.load_setuptools_entrypoints("flame_reward")

for _name in DEFAULT_PLUGINS:
    _module = importlib.import_module(_name)
    if not pm.is_registered(_module):
        pm.register(_module, name=_name)


def get_plugins() -> list[dict[str, object]]:
    """Registered plugins with the hooks each implements (for ``flame-reward tasks``)."""
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
