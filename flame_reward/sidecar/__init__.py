"""The scoring sidecar in one package: the gRPC servicer over one judge with its
micro-batcher, auth and lifecycle, the wire format, the HTTP face, and the clients.

>>> from flame_reward.sidecar import create_server
>>> server, port = create_server("127.0.0.1:0", judge)
>>> server.start()

Clients: :mod:`flame_reward.sidecar.client` (``RewardClient``, ``AsyncRewardClient``). The service
is defined in ``protos/flame_reward/v1/reward.proto``; see ``docs/server.md``.
Submodules load on use, so importing the wire format (clients) does not load the server.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "create_server": "flame_reward.sidecar.server",
    "RewardServer": "flame_reward.sidecar.server",
    "RewardServicer": "flame_reward.sidecar.service",
    "BearerTokenInterceptor": "flame_reward.sidecar.auth",
    "MicroBatcher": "flame_reward.sidecar.batcher",
    "Metrics": "flame_reward.sidecar.observability",
    "RewardClient": "flame_reward.sidecar.client",
    "AsyncRewardClient": "flame_reward.sidecar.client",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
