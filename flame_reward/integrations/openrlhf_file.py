"""OpenRLHF's file mode: ``--reward.remote_url /path/to/openrlhf_file.py``.

OpenRLHF imports a ``.py`` reward URL and calls its ``reward_func(queries, prompts,
labels)`` once per sample, from a worker thread, many at once. This file's
``reward_func`` answers OpenRLHF's contract (:mod:`flame_reward.integrations.openrlhf`)
with verdicts from the gRPC sidecar (``FLAME_REWARD_TARGET=host:port``) or, without one,
from the judge loaded in the rollout process, where concurrent calls meet in one
micro-batcher (:mod:`flame_reward.integrations.judge_sources`).

Settings come from the environment, read on the first call (set them for Ray workers
through the job's ``runtime_env``; see docs/ppo.md):

* ``FLAME_REWARD_MODE`` (``pointwise`` | ``reference``), ``FLAME_REWARD_SCALE`` (``1-5``),
  ``FLAME_REWARD_NORMALIZE``, ``FLAME_REWARD_CRITERIA``, ``FLAME_REWARD_INVALID_REWARD``,
  ``FLAME_REWARD_STRIP_MARKUP``;
* ``FLAME_REWARD_TARGET`` and ``FLAME_REWARD_TOKEN`` for the sidecar, or in process
  ``FLAME_REWARD_MODEL``, ``FLAME_REWARD_ADAPTER``, ``FLAME_REWARD_DEVICE``,
  ``FLAME_REWARD_DTYPE``, ``FLAME_REWARD_BATCH_SIZE``, ``FLAME_REWARD_MAX_LENGTH``,
  ``FLAME_REWARD_THREADS``, ``FLAME_REWARD_BACKEND``.

For settings in code, write your own file: ``reward_func = make_reward_func(mode="reference",
target="10.0.0.5:50051")``.

A sample the judge cannot read gets the mode's floor (flagged in ``extra_logs``); a judge
that cannot be reached raises, which OpenRLHF logs, leaving that reward ``None``, rather
than training on made-up numbers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flame_reward.integrations.judge_sources import MODEL_OPTIONS, make_source
from flame_reward.integrations.openrlhf import RewardSpec, build_examples, make_reply, parse_options, parse_request

SPEC_KEYS: tuple[str, ...] = ("mode", "scale", "normalize", "criteria", "invalid_reward", "strip_markup")
_INTS = ("batch_size", "max_length", "threads")


def make_reward_func(*, spec: RewardSpec | None = None, source: Any = None, **settings: Any
                     ) -> Callable[..., dict[str, Any]]:
    """An OpenRLHF ``reward_func``. ``settings``: :class:`RewardSpec` fields (``mode``,
    ``scale``, ...), ``target``/``url``/``token`` for a sidecar, or model options
    (``model``, ``max_length``, ...) for a judge in this process. ``source``: any object
    with ``judge(task, examples)`` instead."""
    spec_options = {k: settings.pop(k) for k in SPEC_KEYS if k in settings}
    spec = (spec or RewardSpec()).updated(spec_options)
    source = source if source is not None else make_source(**settings)

    def reward_func(queries: Sequence[Any], prompts: Sequence[Any], labels: Sequence[Any] | None = None,
                    **kwargs: Any) -> dict[str, Any]:
        body = {"query": list(queries), "prompts": list(prompts),
                "labels": list(labels) if labels is not None else None}
        queries_, prompts_, labels_ = parse_request(body, max_items=1 << 20)
        examples, slots, errors = build_examples(spec, queries_, prompts_, labels_)
        results = source.judge(spec.task, examples) if examples else []
        return make_reply(spec, len(queries_), slots, results, errors)

    reward_func.spec = spec  # type: ignore[attr-defined]
    reward_func.source = source  # type: ignore[attr-defined]
    return reward_func


def settings_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """``make_reward_func`` settings from ``FLAME_REWARD_*`` variables (see the module docstring)."""
    out: dict[str, Any] = {}
    spec: dict[str, str] = {}
    for key in SPEC_KEYS:
        value = environ.get(f"FLAME_REWARD_{key.upper()}")
        if value not in (None, ""):
            spec[key] = value
    out.update(parse_options(spec))
    for key in ("target", "url", "token", *MODEL_OPTIONS):
        value = environ.get(f"FLAME_REWARD_{key.upper()}")
        if value in (None, ""):
            continue
        if key in _INTS:
            try:
                out[key] = int(value)
            except ValueError:
                from flame_reward.errors import InvalidInput

                raise InvalidInput(f"FLAME_REWARD_{key.upper()}", f"expected an integer, got {value!r}") from None
        else:
            out[key] = value
    return out


_lock = threading.Lock()
_configured: list[Callable[..., dict[str, Any]]] = []


def reward_func(queries: Sequence[Any], prompts: Sequence[Any], labels: Sequence[Any] | None = None,
                **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF's entry point, configured from the environment on first use."""
    with _lock:
        if not _configured:
            _configured.append(make_reward_func(**settings_from_env()))
    return _configured[0](queries, prompts, labels, **kwargs)


__all__ = ["SPEC_KEYS", "make_reward_func", "reward_func", "settings_from_env"]
