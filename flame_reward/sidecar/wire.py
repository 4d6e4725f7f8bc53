"""The wire format: the service's methods and conversions between protobuf messages and
the library's own objects (task examples, :class:`Verdict`, :class:`ItemError`).

Shared by the server and the clients so both sides agree on one mapping:

* an example (a mapping of task fields and options, as ``Autorater.judge`` takes it) is
  an ``Item``: string values go to ``fields``; the typed options (``criteria``,
  ``labels``, ``scale``, ``allow_tie``, ``tie_margin``) to ``Options``; anything else
  (plugin options, ill-typed values) to ``Options.extra`` as JSON, so the server's task
  validation reports it exactly as the in-process judge would;
* a :class:`Verdict` keeps its label order (distributions are repeated label/probability
  pairs, not maps) and its floats exactly (``double``); ``head`` (the trained verdict head
  that took part) is unset for a raw verdict, so ``None`` survives the trip.

Imports only protobuf and light library modules (no torch), so clients stay light.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2

from flame_reward.proto.v1 import reward_pb2 as pb
from flame_reward.results import ItemError, Verdict

SERVICE = "flame_reward.v1.RewardService"
TYPED_OPTIONS = ("criteria", "labels", "scale", "allow_tie", "tie_margin")


@dataclass(frozen=True)
class Method:
    """One RPC of :data:`SERVICE`."""

    name: str
    request: Any
    response: Any
    request_streaming: bool = False
    response_streaming: bool = False

    @property
    def path(self) -> str:
        return f"/{SERVICE}/{self.name}"


def _methods() -> dict[str, Method]:
    # Read from the .proto's own descriptor, so the table cannot drift from the service
    # definition; this is why no generated gRPC stubs are kept.
    service = pb.DESCRIPTOR.services_by_name[SERVICE.rsplit(".", 1)[1]]
    return {
        m.name: Method(m.name, getattr(pb, m.input_type.name), getattr(pb, m.output_type.name),
                       m.client_streaming, m.server_streaming)
        for m in service.methods
    }


METHODS: dict[str, Method] = _methods()


# -- JSON values ---------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _from_json(value: Any) -> Any:
    """Struct numbers are doubles: give integral ones back as ints (scales, counts)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    return value


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    return {k: _from_json(v) for k, v in json_format.MessageToDict(message).items()}


def dict_to_struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    if values:
        out.update(_jsonable(dict(values)))
    return out


# -- options -------------------------------------------------------------------------------
def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def options_to_proto(values: Mapping[str, Any]) -> pb.Options:
    """Typed options where the value has the right type; the rest into ``extra``."""
    opts = pb.Options()
    extra: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key == "criteria" and isinstance(value, str):
            opts.criteria = value
        elif (key == "labels" and isinstance(value, (list, tuple)) and value
              and all(isinstance(x, str) for x in value)):
            opts.labels.extend(value)
        elif (key == "scale" and isinstance(value, (list, tuple)) and len(value) == 2
              and all(_is_int(x) and -2**31 <= x < 2**31 for x in value)):
            opts.scale.low, opts.scale.high = value
        elif key == "allow_tie" and isinstance(value, bool):
            opts.allow_tie = value
        elif key == "tie_margin" and isinstance(value, (int, float)) and not isinstance(value, bool):
            opts.tie_margin = float(value)
        else:
            extra[key] = value
    if extra:
        opts.extra.CopyFrom(dict_to_struct(extra))
    return opts


def options_to_dict(opts: pb.Options) -> dict[str, Any]:
    """The options that are set (unset ones keep the task type's defaults)."""
    out: dict[str, Any] = {}
    if opts.HasField("criteria"):
        out["criteria"] = opts.criteria
    if opts.labels:
        out["labels"] = list(opts.labels)
    if opts.HasField("scale"):
        out["scale"] = (opts.scale.low, opts.scale.high)
    if opts.HasField("allow_tie"):
        out["allow_tie"] = opts.allow_tie
    if opts.HasField("tie_margin"):
        out["tie_margin"] = opts.tie_margin
    if opts.HasField("extra"):
        out.update(struct_to_dict(opts.extra))
    return out


# -- examples ------------------------------------------------------------------------------
def example_to_item(example: Mapping[str, Any]) -> pb.Item:
    """An example mapping as an ``Item`` (see the module docstring)."""
    if not isinstance(example, Mapping):
        # Sent as an option the server cannot read: the task's validation names it.
        return pb.Item(options=options_to_proto({"_example": example}))
    item = pb.Item()
    options: dict[str, Any] = {}
    for key, value in example.items():
        key = str(key)
        if key in TYPED_OPTIONS or not isinstance(value, str):
            options[key] = value
        else:
            item.fields[key] = value
    if options:
        item.options.CopyFrom(options_to_proto(options))
    return item


def item_to_example(item: pb.Item, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The example the core judges: request defaults, then the item's options and fields."""
    example = dict(defaults or {})
    if item.HasField("options"):
        example.update(options_to_dict(item.options))
    example.update(item.fields)
    if example.get("_example") is not None and len(example) == 1:
        return example["_example"]  # not a mapping on the client: let validation say so
    return example


def pair_to_example(pair: pb.Pair, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    example = dict(defaults or {})
    if pair.HasField("options"):
        example.update(options_to_dict(pair.options))
    example.update(pair.fields)
    for name in ("prompt", "response_a", "response_b"):
        if pair.HasField(name):
            example[name] = getattr(pair, name)
    return example


def example_to_pair(example: Mapping[str, Any]) -> pb.Pair:
    item = example_to_item(example)
    pair = pb.Pair()
    fields = dict(item.fields)
    for name in ("prompt", "response_a", "response_b"):
        if name in fields:
            setattr(pair, name, fields.pop(name))
    pair.fields.update(fields)
    if item.HasField("options"):
        pair.options.CopyFrom(item.options)
    return pair


# -- results -------------------------------------------------------------------------------
def _probs(dist: Mapping[str, float]) -> list[pb.LabelProbability]:
    return [pb.LabelProbability(label=k, probability=float(v)) for k, v in dist.items()]


def verdict_to_proto(v: Verdict) -> pb.Verdict:
    return pb.Verdict(
        task=v.task, label=v.label, score=float(v.score), distribution=_probs(v.distribution),
        orders=[pb.Distribution(probabilities=_probs(d)) for d in v.orders],
        tokens=int(v.tokens), truncated=list(v.truncated), head=v.head,
    )


def verdict_from_proto(m: pb.Verdict) -> Verdict:
    return Verdict(
        task=m.task, label=m.label, score=m.score,
        distribution={p.label: p.probability for p in m.distribution},
        orders=tuple({p.label: p.probability for p in d.probabilities} for d in m.orders),
        tokens=m.tokens, truncated=tuple(m.truncated), head=m.head if m.HasField("head") else None,
    )


def result_to_proto(index: int, result: Verdict | ItemError) -> pb.ItemResult:
    if isinstance(result, ItemError):
        return pb.ItemResult(index=index, error=pb.ItemError(field=result.field, message=result.message))
    return pb.ItemResult(index=index, verdict=verdict_to_proto(result))


def results_from_proto(results: Sequence[pb.ItemResult]) -> list[Verdict | ItemError]:
    out: list[Verdict | ItemError] = []
    for r in sorted(results, key=lambda r: r.index):
        if r.WhichOneof("result") == "verdict":
            out.append(verdict_from_proto(r.verdict))
        else:
            out.append(ItemError(r.index, r.error.field, r.error.message))
    return out


def rank_score(score: Any) -> pb.RankScore:
    values = score if isinstance(score, (tuple, list)) else (score,)
    return pb.RankScore(values=[float(v) for v in values])


def rank_score_value(message: pb.RankScore) -> float | tuple[float, ...]:
    values = tuple(message.values)
    return values[0] if len(values) == 1 else values


def task_type_info(task: Any) -> pb.TaskTypeInfo:
    return pb.TaskTypeInfo(
        name=task.name, description=task.description,
        fields=[pb.FieldInfo(name=f.name, description=f.description, required=f.required,
                             truncatable=f.truncatable) for f in task.fields],
        options=list(task.options), generative=bool(task.generative), pairwise=task.swap is not None,
    )


__all__ = [
    "METHODS", "SERVICE", "TYPED_OPTIONS", "Method", "dict_to_struct", "example_to_item", "example_to_pair",
    "item_to_example", "options_to_dict", "options_to_proto", "pair_to_example", "pb", "rank_score",
    "rank_score_value", "result_to_proto",
    "results_from_proto", "struct_to_dict", "task_type_info", "verdict_from_proto", "verdict_to_proto",
]
