"""A Ray Serve deployment of the judge: ``serve run flame_reward.integrations.ray_serve:app``.

Each replica holds one :class:`~flame_reward.autorater.Autorater`; single-item calls are
gathered with ``@serve.batch`` (``max_batch_size``, ``batch_wait_timeout_s``) and judged in
one call into the core per task type, off the replica's event loop so requests keep
queueing while a batch runs. Replicas and their resources come from the builder's
arguments::

    serve run flame_reward.integrations.ray_serve:app num_replicas=4 num_gpus=1 \\
        max_length=2048 mode=reference

Faces of one deployment:

* Python: ``handle.judge.remote(task, example)`` -> a verdict dict, or ``{"error", "field"}``
  (:mod:`flame_reward.sidecar.jsonwire`); ``handle.judge_many.remote(task, examples)``.
* HTTP (Serve's proxy, port 8000): ``POST /get_reward`` answers OpenRLHF's contract
  (:mod:`flame_reward.integrations.openrlhf`), so ``--reward.remote_url
  http://head:8000/get_reward`` spreads OpenRLHF's calls over the replicas; ``POST
  /v1/judge`` takes ``{"task", "examples"}``. Errors are JSON with the offending field.
  Serve's proxy has no auth of its own: keep it on a private network (docs/ppo.md).

Builder arguments (strings from the command line are parsed): ``num_replicas`` (default
1), ``num_cpus`` (default 1), ``num_gpus`` (default 0), ``max_batch_size`` (32),
``batch_wait_timeout_s`` (0.005), ``max_ongoing_requests`` (256); the judge's ``model``,
``adapter``, ``device``, ``dtype``, ``batch_size``, ``max_length``, ``threads``,
``backend``, ``quantize``; and the ``/get_reward`` defaults ``mode``, ``scale``,
``normalize``, ``criteria``, ``invalid_reward``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ray import serve

from flame_reward.errors import InvalidInput
from flame_reward.integrations.judge_sources import MODEL_OPTIONS
from flame_reward.integrations.openrlhf import RewardSpec, parse_options
from flame_reward.results import ItemError
from flame_reward.sidecar.jsonwire import check_task, result_from_json, result_to_json

SPEC_KEYS: tuple[str, ...] = ("mode", "scale", "normalize", "criteria", "invalid_reward", "strip_markup")
DEPLOYMENT_KEYS: dict[str, type] = {"num_replicas": int, "num_cpus": float, "num_gpus": float,
                                    "max_batch_size": int, "batch_wait_timeout_s": float,
                                    "max_ongoing_requests": int}
_INT_MODEL_OPTIONS = ("batch_size", "max_length", "threads")


@serve.deployment
class FlameJudge:
    """One replica: an Autorater behind ``@serve.batch`` (see the module docstring)."""

    def __init__(self, model_options: Mapping[str, Any], spec: Mapping[str, Any], max_batch_size: int = 32,
                 batch_wait_timeout_s: float = 0.005) -> None:
        from flame_reward.autorater import Autorater

        options = dict(model_options)
        self.autorater = Autorater.from_pretrained(options.pop("model", None), **options)
        self.spec = RewardSpec(**dict(spec))
        self._batched.set_max_batch_size(max_batch_size)
        self._batched.set_batch_wait_timeout_s(batch_wait_timeout_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _batched(self, items: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        by_task: dict[str, list[int]] = {}
        for i, (task, _) in enumerate(items):
            by_task.setdefault(task, []).append(i)
        out: list[dict[str, Any]] = [{}] * len(items)
        for task, slots in by_task.items():
            examples = [items[i][1] for i in slots]
            try:  # one call into the core per task type; off the loop so requests keep queueing
                results = await asyncio.to_thread(self.autorater.judge, task, examples, on_error="return")
            except InvalidInput as exc:  # e.g. an unknown task type: every item of it gets the error
                results = [ItemError(k, exc.field, exc.reason) for k in range(len(examples))]
            for i, result in zip(slots, results):
                if isinstance(result, ItemError):  # each item was its own request
                    result = ItemError(0, result.field, result.message)
                out[i] = result_to_json(result)
        return out

    async def judge(self, task: str, example: Mapping[str, Any]) -> dict[str, Any]:
        """One example -> a verdict dict or ``{"error", "field", "index": 0}``; an unknown
        task type raises :class:`InvalidInput` naming ``task``."""
        check_task(task)
        return await self._batched((task, dict(example)))

    async def judge_many(self, task: str, examples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Several examples (each joins the batches on its own) -> one result dict each."""
        check_task(task)
        results = await asyncio.gather(*(self._batched((task, dict(ex))) for ex in examples))
        return [r | ({"index": i} if "error" in r else {}) for i, r in enumerate(results)]

    async def __call__(self, request: Any) -> Any:
        """HTTP: ``POST /get_reward`` (OpenRLHF) and ``POST /v1/judge``."""
        from starlette.responses import JSONResponse

        from flame_reward.integrations.openrlhf import build_examples, make_reply, parse_request
        from flame_reward.sidecar.jsonwire import parse_judge_request

        path = request.url.path.rstrip("/")
        try:
            if request.method != "POST":
                raise InvalidInput("method", f"{request.method} is not allowed; POST a JSON body")
            try:
                body = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidInput("body", f"not valid JSON ({exc})") from None
            if path.endswith("/get_reward"):
                spec = self.spec.updated(dict(request.query_params))
                queries, prompts, labels = parse_request(body)
                examples, slots, errors = build_examples(spec, queries, prompts, labels)
                raw = await self.judge_many(spec.task, examples) if examples else []
                results = [result_from_json(r, i) for i, r in enumerate(raw)]
                return JSONResponse(make_reply(spec, len(queries), slots, results, errors))
            if path.endswith("/v1/judge"):
                task, examples = parse_judge_request(body, max_items=1 << 16)
                return JSONResponse({"model": self.autorater.model_name,
                                     "results": await self.judge_many(task, examples)})
            return JSONResponse({"error": f"route: {path or '/'} not found; use /get_reward or /v1/judge",
                                 "field": "route"}, status_code=404)
        except InvalidInput as exc:
            return JSONResponse({"error": str(exc), "field": exc.field}, status_code=400)


def _typed(key: str, value: Any, kind: type) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidInput(key, f"expected {kind.__name__}, got {value!r}") from None


def app(args: dict[str, Any]) -> Any:
    """Serve's application builder: ``serve run flame_reward.integrations.ray_serve:app key=value ...``."""
    args = dict(args or {})
    unknown = sorted(set(args) - set(DEPLOYMENT_KEYS) - set(MODEL_OPTIONS) - set(SPEC_KEYS))
    if unknown:
        raise InvalidInput(unknown[0], "unknown argument; known: "
                                       f"{', '.join([*DEPLOYMENT_KEYS, *MODEL_OPTIONS, *SPEC_KEYS])}")
    deploy = {k: _typed(k, args[k], kind) for k, kind in DEPLOYMENT_KEYS.items() if k in args}
    model = {k: (_typed(k, args[k], int) if k in _INT_MODEL_OPTIONS else args[k]) for k in MODEL_OPTIONS if k in args}
    spec = parse_options({k: args[k] for k in SPEC_KEYS if k in args})
    RewardSpec(**spec)  # fail here, not in every replica
    num_gpus = deploy.get("num_gpus", 0.0)
    if num_gpus and "device" not in model:
        model["device"] = "cuda"
    options = {"num_replicas": deploy.get("num_replicas", 1),
               "max_ongoing_requests": deploy.get("max_ongoing_requests", 256),
               "ray_actor_options": {"num_cpus": deploy.get("num_cpus", 1.0), "num_gpus": num_gpus}}
    return FlameJudge.options(**options).bind(model, spec, deploy.get("max_batch_size", 32),
                                              deploy.get("batch_wait_timeout_s", 0.005))


__all__ = ["FlameJudge", "app"]
