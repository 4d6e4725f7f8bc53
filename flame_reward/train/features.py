"""Verdict features of labelled sets: what verdict heads are fitted and evaluated on.

For every record of a set (one split, optionally capped), the scoring core runs the raw
model once per presentation order and keeps the verdict labels' log-probabilities and
the hidden state the LM head reads at the verdict position
(:meth:`flame_reward.scoring.Scorer.features`). The target is the human judgment as a
distribution over the verdict labels:

- pairwise: ``A`` -> (1, 0), ``B`` -> (0, 1), a human tie -> (0.5, 0.5); both orders, the
  swapped order's target swapped with it; judged without a tie option (labels A, B);
- pointwise: the human mean rating ``r`` split between the two scale points around it,
  so the target's expected rating is ``r`` (3.67 -> 2/3 on 4, 1/3 on 3);
- classification: the majority label.

Features are cached per (model, set, split, cap, seed, max_length) in a ``.pt`` file, so
fitting heads with other settings never re-runs the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame_reward.data.records import ClassRecord, PairRecord, ScoreRecord
from flame_reward.data.sets import load_classes, load_pairs, load_scores, named_sets
from flame_reward.errors import InvalidInput
from flame_reward.train.examples import from_class, from_score
from flame_reward.results import ItemError

#: Bumped when what a features file holds changes (old caches are then recomputed).
FEATURES_VERSION = 1


@dataclass
class SetFeatures:
    """One set's features: ``n`` records, ``o`` orders, ``k`` verdict labels, ``d`` features.

    ``logp`` ``[n, o, k]`` raw label log-probabilities, ``hidden`` ``[n, o, d]``,
    ``target`` ``[n, o, k]`` human distributions (per order), ``value`` ``[n]`` the human
    number (1/0/0.5 for pairwise = P(A better); the mean rating; 1 for the first label),
    ``keys``/``subsets``/``groups`` per record; ``labels`` the verdict labels; ``criteria``
    per record (pointwise sets have one per dimension).
    """

    name: str
    kind: str
    task: str
    labels: tuple[str, ...]
    keys: list[str]
    subsets: list[str]
    groups: list[str]
    criteria: list[str]
    logp: Any
    hidden: Any
    target: Any
    value: Any
    seconds: float = 0.0
    tokens: int = 0

    def __len__(self) -> int:
        return len(self.keys)


def set_kind(name: str) -> str:
    """``pairwise``, ``pointwise`` or ``classification`` for a registered set name."""
    for kind in ("pairwise", "pointwise", "classification"):
        if name in named_sets(kind):
            return kind
    known = [n for k in ("pairwise", "pointwise", "classification") for n in named_sets(k)]
    raise InvalidInput("sets", f"unknown set {name!r}; known: {', '.join(known)}")


def load_records(name: str, split: str, data_dir: str | Path | None = None) -> list[Any]:
    kind = set_kind(name)
    loader = {"pairwise": load_pairs, "pointwise": load_scores, "classification": load_classes}[kind]
    return list(loader(name, split, data_dir=data_dir).records)


def cap_records(records: Sequence[Any], cap: int | None, seed: int) -> list[Any]:
    """At most ``cap`` records, a seeded sample that keeps the file order (all when ``None``)."""
    if cap is None or len(records) <= cap:
        return list(records)
    keep = sorted(random.Random(f"{seed}").sample(range(len(records)), cap))
    return [records[i] for i in keep]


def record_example(record: Any) -> tuple[dict[str, Any], list[list[float]], float]:
    """The task example, the per-order target distributions and the human value."""
    if isinstance(record, PairRecord):
        ex = {"prompt": record.prompt, "response_a": record.response_a, "response_b": record.response_b}
        if record.criteria:
            ex["criteria"] = record.criteria
        first = {"A": [1.0, 0.0], "B": [0.0, 1.0], "tie": [0.5, 0.5]}[record.label]
        return ex, [first, first[::-1]], {"A": 1.0, "B": 0.0, "tie": 0.5}[record.label]
    if isinstance(record, ScoreRecord):
        low, high = int(record.scale[0]), int(record.scale[1])
        ex = from_score(record).example
        r = min(float(high), max(float(low), float(record.score)))
        dist = [0.0] * (high - low + 1)
        lo = math.floor(r)
        frac = r - lo
        dist[lo - low] += 1.0 - frac
        if frac > 0:
            dist[lo - low + 1] += frac
        return ex, [dist], float(record.score)
    if isinstance(record, ClassRecord):
        ex = from_class(record).example
        dist = [1.0 if lab == record.label else 0.0 for lab in record.labels]
        return ex, [dist], 1.0 if record.label == record.labels[0] else 0.0
    raise TypeError(f"no verdict features for {type(record).__name__}")


def extract(scorer: Any, name: str, records: Sequence[Any], *, progress: bool = True) -> SetFeatures:
    """Run the raw model over ``records`` (one set) and collect their features."""
    import torch

    kind = set_kind(name)
    task = kind  # each kind of set is judged by the task type of the same name
    made = [record_example(r) for r in records]
    # Records of one input (an article's summaries, a prompt's pairs) side by side, so a
    # batch shares their long prefix; results are put back in record order.
    order = sorted(range(len(records)), key=lambda i: (records[i].group, i))
    started = time.time()
    tokens0 = scorer.cost.tokens
    found = scorer.features(task, [made[i][0] for i in order], progress=progress)
    seconds = time.time() - started
    got: list[Any] = [None] * len(records)
    for pos, i in enumerate(order):
        got[i] = found[pos]
    keys, subsets, groups, crit, logps, hiddens, targets, values = [], [], [], [], [], [], [], []
    labels: tuple[str, ...] | None = None
    for record, (ex, target, value), item in zip(records, made, got):
        if isinstance(item, ItemError):
            print(f"features: {name}: skipped {record.source}:{record.row}: {item.field}: {item.message}",
                  file=sys.stderr)
            continue
        these = tuple({"pairwise": ("A", "B")}.get(kind, ())) or (
            tuple(str(v) for v in range(ex["scale"][0], ex["scale"][1] + 1)) if kind == "pointwise"
            else tuple(ex["labels"]))
        if labels is None:
            labels = these
        elif these != labels:
            raise InvalidInput("records", f"{name}: verdict labels differ between records ({labels} vs {these})")
        keys.append(record.key)
        subsets.append(str(record.subset or ""))
        groups.append(record.group)
        crit.append(ex.get("criteria") or "")
        logps.append([lp for lp, _ in item])
        hiddens.append(torch.stack([h for _, h in item]))
        targets.append(target)
        values.append(value)
    if labels is None:
        raise InvalidInput("records", f"{name}: no record could be judged")
    return SetFeatures(name, kind, task, labels, keys, subsets, groups, crit,
                       torch.tensor(logps, dtype=torch.float32), torch.stack(hiddens),
                       torch.tensor(targets, dtype=torch.float32), torch.tensor(values, dtype=torch.float32),
                       seconds, scorer.cost.tokens - tokens0)


def cache_path(cache_dir: Path, model_id: str, name: str, split: str, cap: int | None, seed: int,
               max_length: int) -> Path:
    tag = json.dumps([FEATURES_VERSION, model_id, name, split, cap, seed, max_length])
    digest = hashlib.sha256(tag.encode()).hexdigest()[:16]
    return cache_dir / f"{name}.{split}.{digest}.pt"


def save_features(feats: SetFeatures, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(feats.__dict__, tmp)
    tmp.replace(path)


def load_features(path: Path) -> SetFeatures:
    import torch

    return SetFeatures(**torch.load(path, weights_only=False))


def set_features(scorer: Any, model_id: str, name: str, split: str, *, cap: int | None, seed: int,
                 cache_dir: Path, data_dir: str | Path | None = None, progress: bool = True) -> SetFeatures:
    """A set's features, from the cache when present, else computed and cached."""
    path = cache_path(cache_dir, model_id, name, split, cap, seed, scorer.max_length)
    if path.is_file():
        return load_features(path)
    records = cap_records(load_records(name, split, data_dir), cap, seed)
    print(f"features: {name} ({split}): {len(records)} records", file=sys.stderr)
    feats = extract(scorer, name, records, progress=progress)
    save_features(feats, path)
    return feats


__all__ = ["SetFeatures", "cap_records", "extract", "load_records", "record_example", "set_features", "set_kind"]
