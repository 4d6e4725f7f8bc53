"""verl's custom reward function: ``compute_score`` backed by the flame-reward judge.

verl (0.9) calls ``compute_score(data_source=, solution_str=, ground_truth=, extra_info=,
**reward_kwargs)`` once per sample from its reward loop and awaits it when it is a
coroutine function. ``solution_str`` is the response alone: **verl does not pass the
prompt**, so the dataset must carry it in ``extra_info`` (key ``prompt`` by default,
``prompt_key`` to change it): a string, or a list of chat messages. See docs/ppo.md for
the dataset preparation and config::

    reward:
      custom_reward_function:
        path: <site-packages>/flame_reward/integrations/verl.py
        name: compute_score
        reward_kwargs: {mode: pointwise, target: "10.0.0.5:50051"}

``reward_kwargs``:

* ``mode``: ``pointwise`` (the response rated on ``scale``; ``normalize`` maps the
  expected rating to [0, 1]) or ``reference`` (P(response beats ``ground_truth``), both
  presentation orders). ``criteria``, ``invalid_reward`` as in
  :class:`~flame_reward.integrations.openrlhf.RewardSpec`.
* where verdicts come from: ``target`` (gRPC sidecar ``host:port``), ``url`` (HTTP sidecar
  ``http://host:port``), with ``token``; or neither, and the judge runs in the reward
  worker's process (``model``, ``max_length``, ``batch_size``, ``device``, ...), where
  concurrent samples meet in one micro-batcher.

The return value is a dict with the same keys for every sample of a run (verl stacks
them per key): ``score`` (the reward), ``truncated`` (1.0 when the judge shortened the
response), ``head`` (1.0 when a trained verdict head took part in the verdict, 0.0 for the
raw model's), ``error`` (``""``, or why the sample got ``invalid_reward``), and ``rating``
(pointwise: the expected rating) or ``p_better`` (reference: the win probability). A
sample the judge cannot read (empty response, no prompt in ``extra_info``, no reference)
scores the mode's floor with the reason in ``error``; it never raises. A bad setting in
``reward_kwargs`` raises at the first sample, naming it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.integrations.judge_sources import MODEL_OPTIONS, make_source
from flame_reward.integrations.openrlhf import RewardSpec, clean_response, parse_options
from flame_reward.results import ItemError

SPEC_KEYS: tuple[str, ...] = ("mode", "scale", "normalize", "criteria", "invalid_reward")
SOURCE_KEYS: tuple[str, ...] = ("target", "url", "token", "timeout_s", *MODEL_OPTIONS)
#: Passed by verl's reward managers when a reward-model router is configured; not ours.
VERL_KEYS: tuple[str, ...] = ("reward_router_address", "reward_model_tokenizer")

_lock = threading.Lock()
_setups: dict[str, tuple[RewardSpec, Any]] = {}


def _setup(kwargs: Mapping[str, Any]) -> tuple[RewardSpec, Any, str]:
    """(spec, verdict source, prompt key) for these ``reward_kwargs``; one per process."""
    key = json.dumps(sorted((k, v) for k, v in kwargs.items() if k not in VERL_KEYS), default=str)
    prompt_key = str(kwargs.get("prompt_key", "prompt"))
    with _lock:
        if key not in _setups:
            unknown = sorted(set(kwargs) - set(SPEC_KEYS) - set(SOURCE_KEYS) - set(VERL_KEYS) - {"prompt_key"})
            if unknown:
                raise InvalidInput(unknown[0], "unknown reward_kwargs key; known: "
                                               f"{', '.join((*SPEC_KEYS, 'prompt_key', *SOURCE_KEYS))}")
            spec_options = {k: kwargs[k] for k in SPEC_KEYS if k in kwargs}
            if isinstance(spec_options.get("scale"), (list, tuple)):
                spec_options["scale"] = tuple(int(v) for v in spec_options["scale"])
            spec = RewardSpec(strip_markup=False, **parse_options(spec_options))
            source = make_source(**{k: kwargs[k] for k in SOURCE_KEYS if k in kwargs})
            _setups[key] = (spec, source)
    spec, source = _setups[key]
    return spec, source, prompt_key


def _as_list(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, str) else value


def prompt_text(value: Any) -> str:
    """The prompt from ``extra_info``: a string, or chat messages (one message: its content;
    several: ``role: content`` blocks)."""
    value = _as_list(value)
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple)) and value and all(isinstance(m, Mapping) for m in value):
        parts = [(str(m.get("role", "user")), m.get("content")) for m in value]
        if not all(isinstance(c, str) for _, c in parts):
            raise InvalidInput("extra_info.prompt", "chat messages need string 'content'")
        text = parts[0][1] if len(parts) == 1 else "\n\n".join(f"{role}: {c}" for role, c in parts)
    else:
        raise InvalidInput("extra_info.prompt", f"expected a string or a list of chat messages, got {type(value).__name__}")
    if not text.strip():
        raise InvalidInput("extra_info.prompt", "is empty")
    return text


def _example(spec: RewardSpec, solution_str: Any, ground_truth: Any, extra_info: Any, prompt_key: str) -> dict[str, Any]:
    if not isinstance(extra_info, Mapping) or extra_info.get(prompt_key) is None:
        raise InvalidInput(f"extra_info.{prompt_key}", "missing: verl does not pass the prompt to compute_score, "
                                                       "so the dataset must carry it in extra_info (docs/ppo.md)")
    prompt = prompt_text(extra_info[prompt_key])
    if not isinstance(solution_str, str):
        raise InvalidInput("solution_str", f"expected a string, got {type(solution_str).__name__}")
    response = clean_response(solution_str, strip_markup=False)
    if not response:
        raise InvalidInput("solution_str", "is empty")
    ex: dict[str, Any] = {"prompt": prompt}
    if spec.criteria:
        ex["criteria"] = spec.criteria
    if spec.mode == "pointwise":
        ex.update(response=response, scale=spec.scale)
    else:
        if not isinstance(ground_truth, str) or not ground_truth.strip():
            raise InvalidInput("ground_truth", f"reference mode needs the reference answer, got {ground_truth!r}")
        ex.update(response_a=response, response_b=ground_truth.strip())
    return ex


def _result(spec: RewardSpec, score: float, value: float, truncated: float, error: str,
            head: float = 0.0) -> dict[str, Any]:
    key = "rating" if spec.mode == "pointwise" else "p_better"
    return {"score": float(score), key: float(value), "truncated": truncated, "head": head, "error": error}


def _invalid(spec: RewardSpec, error: str) -> dict[str, Any]:
    """The floor, with the lowest rating (pointwise) or a win probability of 0 (reference)."""
    return _result(spec, spec.floor, float(spec.scale[0]) if spec.mode == "pointwise" else 0.0, 0.0, error)


async def compute_score(data_source: Any = None, solution_str: Any = None, ground_truth: Any = None,
                        extra_info: Any = None, **reward_kwargs: Any) -> dict[str, Any]:
    """verl's ``custom_reward_function`` (see the module docstring).

    Args:
        data_source: the dataset's ``data_source`` (not used by the judge).
        solution_str: the response, decoded without special tokens.
        ground_truth: ``reward_model.ground_truth``; the reference answer in ``reference`` mode.
        extra_info: the dataset's ``extra_info``; must hold the prompt.
        **reward_kwargs: the config's ``reward_kwargs`` (mode, scale, target, ...).

    Returns:
        ``{"score", "rating" | "p_better", "truncated", "head", "error"}``, the same keys for every sample.
    """
    spec, source, prompt_key = _setup(reward_kwargs)
    try:
        example = _example(spec, solution_str, ground_truth, extra_info, prompt_key)
    except InvalidInput as exc:
        return _invalid(spec, str(exc))
    (result,) = await source.ajudge(spec.task, [example])
    if isinstance(result, ItemError):
        return _invalid(spec, f"{result.field}: {result.message}")
    reward, _ = spec.reward(result)
    return _result(spec, reward, result.score, 1.0 if result.truncated else 0.0, "",
                   1.0 if result.head is not None else 0.0)


__all__ = ["compute_score", "prompt_text"]
