"""The gRPC scoring sidecar: a thin servicer over one judge, with micro-batching.

>>> from flame_reward.server import create_server
>>> server, port = create_server("127.0.0.1:0", judge)
>>> server.start()

Clients: :mod:`flame_reward.client` (``RewardClient``, ``AsyncRewardClient``). The service
is defined in ``protos/flame_reward/v1/reward.proto``; see ``docs/server.md``.
Submodules load on use, so importing the wire format (clients) does not load the server.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "create_server": "flame_reward.server.service",
    "RewardServer": "flame_reward.server.service",
    "RewardServicer": "flame_reward.server.service",
    "BearerTokenInterceptor": "flame_reward.server.service",
    "MicroBatcher": "flame_reward.server.batcher",
    "Metrics": "flame_reward.server.observability",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
