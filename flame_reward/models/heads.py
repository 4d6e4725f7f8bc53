"""Verdict heads: trained corrections that take part only in the judgments they were trained for.

A *head set* (a directory with ``heads.json`` and ``heads.safetensors``) holds one linear
head per *route*: a task type, its verdict labels and an exact criteria text. For an item
on a route, the scoring core adds the head's output ``W·h + b`` (one number per verdict
label) to the raw model's verdict log-probabilities before they are renormalised, where
``h`` is the hidden state the model's LM head reads at the verdict position. Every other
item gets the raw model's verdict, bit for bit: the head never touches the model's
weights, and the forward pass is the same one the raw model runs (same batches, same
numbers), so "identical to the raw model" holds by construction, not by measurement.

Why gating in code rather than a trained "off" state: a learnt gate is only ever
approximately off (the earlier shipped adapter's two criteria detectors had no off state,
and a paraphrase of its criteria turned one partly on), so raw identity could only be
measured. A criteria text matches a route only when it is the same text after stripping
surrounding whitespace (what the prompt renders): a paraphrase is another criteria and is
judged by the raw model (docs/training.md, "Verdict heads").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame_reward.errors import ModelLoadError

HEADS_FILE = "heads.json"
WEIGHTS_FILE = "heads.safetensors"
FORMAT = "flame-reward-heads"
VERSION = 2


def criteria_key(text: Any) -> str | None:
    """What the prompt renders: a criteria's stripped text, ``None`` for the task default."""
    if isinstance(text, str) and text.strip():
        return text.strip()
    return None


@dataclass(frozen=True)
class Route:
    """One kind of judgment a head was trained for: task, exact criteria, verdict labels."""

    name: str
    task: str
    criteria: str
    verdicts: tuple[str, ...]

    def key(self) -> tuple[str, str | None, tuple[str, ...]]:
        """What an item must match: task type, rendered criteria text, verdict labels."""
        return (self.task, criteria_key(self.criteria), self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "criteria": self.criteria, "verdicts": list(self.verdicts)}


@dataclass
class Head:
    """A route's linear head: ``weight`` ``[labels, d]`` and ``bias`` ``[labels]`` (float32)."""

    route: Route
    weight: Any
    bias: Any

    def delta(self, hidden: Any) -> list[float]:
        """The head's addition to each verdict label's log-probability for one hidden state."""
        return (self.weight @ hidden + self.bias).tolist()


class HeadSet:
    """The heads of one judge, looked up by (task, criteria, verdict labels)."""

    def __init__(self, name: str, heads: Sequence[Head], *, base_model: str | None = None,
                 path: str | None = None, info: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.heads = list(heads)
        self.base_model = base_model
        self.path = path
        self.info = dict(info or {})
        names = [h.route.name for h in self.heads]
        if len(set(names)) != len(names):
            raise ModelLoadError(f"head set {name!r}: route names repeat: {names}")
        self._by_key = {head.route.key(): head for head in self.heads}
        if len(self._by_key) != len(self.heads):
            raise ModelLoadError(f"head set {name!r}: two routes have the same task, criteria and labels")

    @property
    def routes(self) -> list[Route]:
        return [h.route for h in self.heads]

    @property
    def hidden_size(self) -> int:
        return int(self.heads[0].weight.shape[1]) if self.heads else 0

    def head_for(self, task: str, example: Mapping[str, Any], verdicts: Sequence[str]) -> Head | None:
        """The head trained for this judgment, or ``None`` (the raw model judges it)."""
        return self._by_key.get((task, criteria_key(example.get("criteria")), tuple(verdicts)))

    def save(self, directory: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``heads.json`` and ``heads.safetensors`` into ``directory``."""
        import torch
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, Any] = {}
        routes = []
        for i, head in enumerate(self.heads):
            tensors[f"routes.{i}.weight"] = torch.as_tensor(head.weight, dtype=torch.float32).contiguous()
            tensors[f"routes.{i}.bias"] = torch.as_tensor(head.bias, dtype=torch.float32).contiguous()
            routes.append({**head.route.to_dict(), "weight": f"routes.{i}.weight", "bias": f"routes.{i}.bias"})
        save_file(tensors, str(out / WEIGHTS_FILE))
        payload = {"format": FORMAT, "version": VERSION, "name": self.name, "base_model": self.base_model,
                   "feature": "input of the LM head at the verdict position", "hidden_size": self.hidden_size,
                   "routes": routes, **dict(extra or {})}
        (out / HEADS_FILE).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return out


def is_head_dir(path: str | Path | None) -> bool:
    """Whether ``path`` is a head-set directory: ``heads.json``, and no PEFT LoRA
    (``adapter_config.json``) beside it, which would be loaded as a LoRA instead."""
    if path is None:
        return False
    root = Path(path).expanduser()
    return (root / HEADS_FILE).is_file() and not (root / "adapter_config.json").is_file()


def load_heads(directory: str | Path, hidden_size: int | None = None) -> HeadSet:
    """Read a head set. A malformed file is an error naming the field and the file."""
    from safetensors.torch import load_file

    root = Path(directory).expanduser()
    where = str(root / HEADS_FILE)
    try:
        data = json.loads((root / HEADS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{where}: not readable JSON ({exc})") from exc
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
    try:
        tensors = load_file(str(root / WEIGHTS_FILE))
    except Exception as exc:  # safetensors raises several exception types for a bad file
        raise ModelLoadError(f"{root / WEIGHTS_FILE}: cannot read the head weights ({exc})") from exc
    heads = []
    for i, item in enumerate(items):
        at = f"{where}: routes[{i}]"
        if not isinstance(item, dict):
            raise ModelLoadError(f"{at} must be an object")
        rname, task, criteria, verdicts = item.get("name"), item.get("task"), item.get("criteria"), item.get("verdicts")
        if not isinstance(rname, str) or not rname:
            raise ModelLoadError(f"{at}.name must be a non-empty string")
        if not isinstance(task, str) or not task:
            raise ModelLoadError(f"{at}.task must be a task type name")
        if criteria_key(criteria) is None:
            # A head on the task's default criteria would take over every default judgment.
            raise ModelLoadError(f"{at}.criteria must be a non-empty criteria text")
        if not isinstance(verdicts, list) or not verdicts or not all(isinstance(v, str) for v in verdicts):
            raise ModelLoadError(f"{at}.verdicts must be a non-empty list of labels")
        w, b = tensors.get(str(item.get("weight"))), tensors.get(str(item.get("bias")))
        if w is None or b is None:
            raise ModelLoadError(f"{at}: weight/bias tensors {item.get('weight')!r}/{item.get('bias')!r} "
                                 f"are not in {WEIGHTS_FILE}")
        if w.ndim != 2 or tuple(b.shape) != (len(verdicts),) or w.shape[0] != len(verdicts):
            raise ModelLoadError(f"{at}: weight {tuple(w.shape)} / bias {tuple(b.shape)} do not fit "
                                 f"{len(verdicts)} verdict labels")
        if hidden_size is not None and w.shape[1] != hidden_size:
            raise ModelLoadError(f"{at}: the head reads {w.shape[1]} features but the model's hidden size is "
                                 f"{hidden_size}: this head set belongs to another model")
        heads.append(Head(Route(rname, task, criteria, tuple(verdicts)), w.float(), b.float()))
    base = data.get("base_model")
    return HeadSet(name, heads, base_model=base if isinstance(base, str) else None, path=str(root),
                   info={k: v for k, v in data.items() if k not in ("routes",)})


__all__ = ["Head", "HeadSet", "Route", "criteria_key", "is_head_dir", "load_heads"]
