"""Where the integrations get verdicts: in process (batched), the gRPC sidecar, or the HTTP sidecar.

Trainers call a reward once per sample from many threads or coroutines at once (OpenRLHF's
file mode from ``asyncio.to_thread``, verl's reward loop from ``asyncio.gather``). In
process, those calls meet in one :class:`~flame_reward.sidecar.batcher.MicroBatcher`
around one :class:`~flame_reward.autorater.Autorater` per process, exactly as concurrent
RPCs meet in the sidecar; remotely, the sidecar batches them.

Every source has ``judge(task, examples)`` (blocking) and ``ajudge(task, examples)``
(awaitable), each returning one ``Verdict`` or ``ItemError`` per example, in order.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from flame_reward.errors import FlameRewardError, InvalidInput
from flame_reward.results import ItemError, Verdict

#: Autorater.from_pretrained options a source spec may carry.
MODEL_OPTIONS: tuple[str, ...] = ("model", "adapter", "device", "dtype", "batch_size", "max_length", "threads",
                                  "backend", "quantize")

_LOCK = threading.Lock()
_BATCHERS: dict[str, Any] = {}


class InProcessSource:
    """One Autorater per (model options) per process, behind one MicroBatcher."""

    def __init__(self, options: Mapping[str, Any] | None = None, *, max_batch_size: int = 32,
                 max_wait_ms: float = 5.0, timeout_s: float = 600.0, judge: Any = None) -> None:
        options = dict(options or {})
        unknown = sorted(set(options) - set(MODEL_OPTIONS))
        if unknown:
            raise InvalidInput(unknown[0], f"unknown model option; known: {', '.join(MODEL_OPTIONS)}")
        self.options = options
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.timeout_s = timeout_s
        self._judge = judge

    def _batcher(self) -> Any:
        from flame_reward.sidecar.batcher import MicroBatcher

        key = f"{id(self._judge)}" if self._judge is not None else json.dumps(sorted(self.options.items()), default=str)
        with _LOCK:
            batcher = _BATCHERS.get(key)
            if batcher is None:
                judge = self._judge
                if judge is None:
                    from flame_reward.autorater import Autorater

                    judge = Autorater.from_pretrained(self.options.get("model"),
                                                      **{k: v for k, v in self.options.items() if k != "model"})
                batcher = MicroBatcher(judge, max_batch_size=self.max_batch_size, max_wait_ms=self.max_wait_ms,
                                       max_queue=1 << 20)
                _BATCHERS[key] = batcher
            return batcher

    def judge(self, task: str, examples: Sequence[Mapping[str, Any]]) -> list[Verdict | ItemError]:
        if not examples:
            return []
        return list(self._batcher().submit(task, list(examples)).result(self.timeout_s))

    async def ajudge(self, task: str, examples: Sequence[Mapping[str, Any]]) -> list[Verdict | ItemError]:
        if not examples:
            return []
        batcher = await asyncio.to_thread(self._batcher)  # the first call loads the model
        future = batcher.submit(task, list(examples))
        return list(await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s))


def close_in_process(timeout: float | None = 10.0) -> int:
    """Stop every process-wide in-process batcher (and its worker thread) and forget it;
    the next in-process call starts afresh. Returns how many were stopped. For clean
    shutdown of a trainer process and for tests, which must not leave threads behind."""
    with _LOCK:
        batchers = list(_BATCHERS.values())
        _BATCHERS.clear()
    for batcher in batchers:
        batcher.close(timeout)
    return len(batchers)


class GrpcSource:
    """The gRPC sidecar (``flame-reward serve``) through :class:`~flame_reward.sidecar.client.RewardClient`
    (one sync client per process, one async client per event loop)."""

    def __init__(self, target: str, *, token: str | None = None, timeout_s: float = 600.0) -> None:
        self.target = target
        self.token = token
        self.timeout_s = timeout_s
        self._sync: Any = None
        self._async: dict[int, Any] = {}

    def judge(self, task: str, examples: Sequence[Mapping[str, Any]]) -> list[Verdict | ItemError]:
        if self._sync is None:
            from flame_reward.sidecar.client import RewardClient

            with _LOCK:
                if self._sync is None:
                    self._sync = RewardClient(self.target, token=self.token, timeout=self.timeout_s)
        return list(self._sync.judge(task, list(examples))) if examples else []

    async def ajudge(self, task: str, examples: Sequence[Mapping[str, Any]]) -> list[Verdict | ItemError]:
        if not examples:
            return []
        loop = id(asyncio.get_running_loop())
        client = self._async.get(loop)
        if client is None:
            from flame_reward.sidecar.client import AsyncRewardClient

            client = self._async[loop] = AsyncRewardClient(self.target, token=self.token, timeout=self.timeout_s)
        return list(await client.judge(task, list(examples)))


class HttpSource:
    """The HTTP sidecar's ``POST /v1/judge`` (``flame-reward serve --http``), over aiohttp."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def judge(self, task: str, examples: Sequence[Mapping[str, Any]]) -> list[Verdict | ItemError]:
        return asyncio.run(self.ajudge(task, examples))

    async def ajudge(self, task: str, examples: Sequence[Mapping[str, Any]]) -> list[Verdict | ItemError]:
        import aiohttp

        from flame_reward.sidecar.jsonwire import result_from_json

        if not examples:
            return []
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(f"{self.url}/v1/judge", json={"task": task, "examples": list(examples)},
                                    headers=headers) as response:
                try:
                    body = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    body = None
                if response.status != 200 or not isinstance(body, dict):
                    detail = body.get("error") if isinstance(body, dict) else (await response.text())[:200]
                    if response.status == 400 and isinstance(body, dict) and body.get("field"):
                        raise InvalidInput(str(body["field"]), str(detail).partition(": ")[2] or str(detail))
                    raise FlameRewardError(f"{self.url}/v1/judge answered HTTP {response.status}: {detail}")
        results = body.get("results")
        if not isinstance(results, list) or len(results) != len(examples):
            raise FlameRewardError(f"{self.url}/v1/judge returned {len(results or [])} results for {len(examples)}")
        return [result_from_json(r, i) for i, r in enumerate(results)]


def make_source(*, target: str | None = None, url: str | None = None, token: str | None = None,
                timeout_s: float = 600.0, **model_options: Any) -> InProcessSource | GrpcSource | HttpSource:
    """A gRPC source for ``target`` (host:port), an HTTP source for ``url``, else in process
    with ``model_options`` (:data:`MODEL_OPTIONS`)."""
    if target and url:
        raise InvalidInput("target", "give either target (gRPC) or url (HTTP), not both")
    if (target or url) and model_options:
        raise InvalidInput(sorted(model_options)[0], "model options apply in process only, not with a sidecar")
    if target:
        return GrpcSource(target, token=token, timeout_s=timeout_s)
    if url:
        return HttpSource(url, token=token, timeout_s=timeout_s)
    return InProcessSource(model_options, timeout_s=timeout_s)


__all__ = ["GrpcSource", "HttpSource", "InProcessSource", "MODEL_OPTIONS", "close_in_process", "make_source"]
