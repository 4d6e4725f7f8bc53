"""Human-labelled records -> labelled task examples (the training targets of FLAMe).

Pairwise records are emitted in both presentation orders, so a judge trained on them
sees every winner equally often under A and under B and can keep no position prior.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flame_reward.data.records import ClassRecord, PairRecord, ScoreRecord

_FIELD_FOR_EXTRA = {"source_text": "source", "reference": "reference", "criteria": "criteria"}


@dataclass(frozen=True)
class LabelledExample:
    """One training example: a task type, its fields, and the verdict to learn.

    ``rationale``: when set, the target is the rationale-then-verdict answer of generation
    mode (``Rationale: ...`` then ``Verdict: X``, the prompt rendered with the rationale
    instruction), as the Self-Taught Evaluator loop trains on its kept judgments.
    """

    task: str
    example: dict[str, Any]
    label: str
    dataset: str
    key: str = ""
    meta: dict[str, Any] = field(default_factory=dict, hash=False)
    rationale: str | None = None


def from_pair(record: PairRecord, both_orders: bool = True) -> Iterator[LabelledExample]:
    """Pairwise examples for a record: as given and, by default, swapped."""
    tie = record.label == "tie"
    records = [record, record.swapped()] if both_orders else [record]
    for r in records:
        ex = {"prompt": r.prompt, "response_a": r.response_a, "response_b": r.response_b, "allow_tie": tie}
        if r.criteria:
            ex["criteria"] = r.criteria
        yield LabelledExample("pairwise", ex, r.label, r.dataset, record.key, {"subset": r.subset, "row": r.row})


def _extra_fields(extra: Any) -> dict[str, str]:
    return {dst: extra[src] for src, dst in _FIELD_FOR_EXTRA.items() if extra.get(src)}


def from_score(record: ScoreRecord) -> LabelledExample:
    """A pointwise example; the target is the human mean rounded to the nearest scale point."""
    low, high = int(record.scale[0]), int(record.scale[1])
    target = str(min(high, max(low, int(record.score + 0.5))))
    ex = {"prompt": record.prompt, "response": record.response, "scale": (low, high), **_extra_fields(record.extra)}
    return LabelledExample("pointwise", ex, target, record.dataset, record.key,
                           {"subset": record.subset, "row": record.row, "score": record.score})


def from_class(record: ClassRecord) -> LabelledExample:
    """A classification example with the record's label set."""
    ex = {"prompt": record.prompt, "response": record.response, "labels": list(record.labels),
          **_extra_fields(record.extra)}
    return LabelledExample("classification", ex, record.label, record.dataset, record.key,
                           {"subset": record.subset, "row": record.row})


def to_examples(records: Iterable[PairRecord | ScoreRecord | ClassRecord]) -> list[LabelledExample]:
    """Labelled examples for any mix of records (pairs give two examples each)."""
    out: list[LabelledExample] = []
    for r in records:
        if isinstance(r, PairRecord):
            out.extend(from_pair(r))
        elif isinstance(r, ScoreRecord):
            out.append(from_score(r))
        elif isinstance(r, ClassRecord):
            out.append(from_class(r))
        else:
            raise TypeError(f"cannot make a training example from {type(r).__name__}")
    return out
