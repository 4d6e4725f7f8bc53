"""Gated heads: a trained adapter takes part only in the judgments it was trained for.

An adapter directory may carry ``heads.json``, the list of *routes* its head was trained
for: a task type, its verdict vocabulary and the exact criteria text (``null`` for the
task's default criteria). Such an adapter is *gated*: the scoring core routes every
rendered item, so items on a route are judged with the adapted weights and every other
item with the raw model's weights, bit for bit. A criteria text matches only when it is
the same text after stripping surrounding whitespace (what the prompt renders); a
paraphrase is another criteria and is judged by the raw model.

Why gating in code rather than training the adapter's "off" state: a trained gate is
only ever approximately off (the shipped probe's two criteria detectors have no off state
at all, and a paraphrase of its helpfulness criteria turns one partly on), so "identical
to the raw model" could only be measured, never guaranteed. Swapping the raw weights in
makes it true by construction, at no cost to the trained criteria.

An adapter without ``heads.json`` is *ungated*: it takes part in every judgment, as
before. A gated head keeps both weight sets of the few modules the adapter changes (the
shipped one: three matrices of the last layer, ~10 MB in fp32) and swaps tensors, so
neither route pays for the other; outside a routed call the raw weights are in place
(generation, and any code that uses the model directly, see the raw model).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame_reward.errors import ModelLoadError

HEADS_FILE = "heads.json"
FORMAT = "flame-reward-heads"
VERSION = 1


def _criteria_key(text: Any) -> str | None:
    """What the prompt renders: a criteria's stripped text, ``None`` for the task default."""
    if isinstance(text, str) and text.strip():
        return text.strip()
    return None


@dataclass(frozen=True)
class Route:
    """One kind of judgment a head was trained for."""

    task: str
    criteria: str | None
    verdicts: tuple[str, ...]

    def matches(self, task: str, example: Mapping[str, Any], verdicts: Sequence[str]) -> bool:
        return (task == self.task and tuple(verdicts) == self.verdicts
                and _criteria_key(example.get("criteria")) == _criteria_key(self.criteria))

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "criteria": self.criteria, "verdicts": list(self.verdicts)}


def read_routes(adapter_dir: str | Path) -> tuple[str, tuple[Route, ...]] | None:
    """``(head name, routes)`` from ``adapter_dir/heads.json``, or ``None`` when the adapter
    has none (ungated). A malformed file is an error naming the field, never "ungated"."""
    path = Path(adapter_dir).expanduser() / HEADS_FILE
    if not path.is_file():
        return None
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelLoadError(f"{where}: 'format' must be {FORMAT!r}")
    if data.get("version") != VERSION:
        raise ModelLoadError(f"{where}: 'version' {data.get('version')!r} is not supported (expected {VERSION})")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ModelLoadError(f"{where}: 'name' must be a non-empty string")
    items = data.get("routes")
    if not isinstance(items, list) or not items:
        raise ModelLoadError(f"{where}: 'routes' must be a non-empty list")
    routes = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ModelLoadError(f"{where}: routes[{i}] must be an object")
        task, criteria, verdicts = item.get("task"), item.get("criteria"), item.get("verdicts")
        if not isinstance(task, str) or not task:
            raise ModelLoadError(f"{where}: routes[{i}].task must be a task type name")
        if criteria is not None and not isinstance(criteria, str):
            raise ModelLoadError(f"{where}: routes[{i}].criteria must be a string or null")
        if not isinstance(verdicts, list) or not verdicts or not all(isinstance(v, str) for v in verdicts):
            raise ModelLoadError(f"{where}: routes[{i}].verdicts must be a non-empty list of labels")
        routes.append(Route(task, criteria, tuple(verdicts)))
    return name, tuple(routes)


def write_routes(adapter_dir: str | Path, name: str, routes: Sequence[Route]) -> Path:
    """Write ``heads.json`` into ``adapter_dir``: the adapter becomes a gated head."""
    path = Path(adapter_dir) / HEADS_FILE
    payload = {"format": FORMAT, "version": VERSION, "name": name, "routes": [r.to_dict() for r in routes]}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


class WeightGate:
    """The raw and the adapted weights of the modules an adapter changes, swapped in place.

    :meth:`capture` keeps the raw weights of a PEFT model before it is merged;
    :meth:`bind` (after merging and moving the model to its device) keeps the merged
    weights beside them and puts the raw ones in place.
    """

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._slots: list[tuple[Any, Any, Any]] = []  # (parameter, raw tensor, adapted tensor)

    @classmethod
    def capture(cls, peft_model: Any) -> WeightGate:
        from peft.tuners.lora import LoraLayer

        inner = peft_model.get_base_model()
        raw = {}
        for name, module in inner.named_modules():
            if isinstance(module, LoraLayer):
                weight = module.get_base_layer().weight
                # Merging writes into the weight in place: give it a copy to write into and
                # keep the loaded tensor itself, so the raw route runs on the very tensors
                # (memory alignment included) that a raw load has, and is bitwise the same.
                raw[name] = weight.data
                weight.data = weight.data.clone()
        if not raw:
            raise ModelLoadError("the adapter changes no module that a gated head can switch (LoRA layers only)")
        return cls(raw)

    def bind(self, model: Any) -> WeightGate:
        for name, raw in self._raw.items():
            param = model.get_submodule(name).weight
            adapted = param.data
            self._slots.append((param, raw.to(device=adapted.device, dtype=adapted.dtype), adapted))
        self._raw = {}
        self.set(False)
        return self

    def set(self, on: bool) -> None:
        for param, raw, adapted in self._slots:
            param.data = adapted if on else raw


class PeftGate:
    """For an unmerged PEFT model: the adapter is on unless ``disable_adapter()`` is entered."""

    def __init__(self, peft_model: Any) -> None:
        self.model = peft_model

    def context(self, on: bool) -> Any:
        return contextlib.nullcontext() if on else self.model.disable_adapter()


@dataclass
class Head:
    """A trained adapter that takes part in judging: its name, its routes (``None``: it
    takes part in every judgment, i.e. ungated or merged into an ONNX graph) and the gate
    that switches it (``None`` when it cannot be switched off)."""

    name: str
    routes: tuple[Route, ...] | None = None
    gate: WeightGate | PeftGate | None = None

    def __post_init__(self) -> None:
        if self.routes is not None and self.gate is None:
            raise ModelLoadError(f"head {self.name!r} has routes but no way to switch it off")
        self._lock = threading.RLock()

    @property
    def gated(self) -> bool:
        return self.routes is not None

    def applies(self, task: str, example: Mapping[str, Any], verdicts: Sequence[str]) -> bool:
        """Whether this head judges ``example`` (always, for an ungated head)."""
        return self.routes is None or any(r.matches(task, example, verdicts) for r in self.routes)

    @contextlib.contextmanager
    def active(self, on: bool) -> Iterator[None]:
        """The model with this head on (``True``) or the raw model (``False``) inside the block."""
        if not self.gated:
            if not on:
                raise ModelLoadError(f"head {self.name!r} is ungated: it cannot be switched off")
            yield
            return
        with self._lock:
            if isinstance(self.gate, PeftGate):
                with self.gate.context(on):
                    yield
                return
            assert isinstance(self.gate, WeightGate)
            self.gate.set(on)
            try:
                yield
            finally:
                self.gate.set(False)

    def describe(self) -> dict[str, Any]:
        """For ``Autorater.info`` and logs."""
        return {"name": self.name, "routes": None if self.routes is None else [r.to_dict() for r in self.routes]}


__all__ = ["HEADS_FILE", "Head", "PeftGate", "Route", "WeightGate", "read_routes", "write_routes"]
