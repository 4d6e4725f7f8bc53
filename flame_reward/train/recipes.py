"""FLAMe recipes: which data, mixed how.

- ``multitask`` (FLAMe): every pairwise, pointwise and classification set, mixed
  examples-proportionally with a per-task cap (2^16 by default).
- ``rm`` (FLAMe-RM): a uniform mix of the pairwise sets, usually continuing from a
  multitask adapter (``--init-adapter``).
- ``opt-rm`` (FLAMe-Opt-RM): mixture weights from tail-patch ablations — for each
  pairwise set, a short fine-tune from a shared checkpoint on that set alone, measured as
  the change in dev-set pairwise accuracy on the target sets; sets that help get weight
  in proportion to their gain, sets that hurt get none (see :func:`weights_from_effects`).

Training only ever reads the ``train`` split; dev splits are held out by a hash of each
record (``flame_reward.data.splits``), so they never leak whatever the mixture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flame_reward.data import load_classes, load_pairs, load_scores
from flame_reward.errors import InvalidInput
from flame_reward.train.examples import LabelledExample, from_class, from_pair, from_score
from flame_reward.train.mixture import DEFAULT_CAP, mix

PAIRWISE_SETS = ("hh-helpful", "hh-harmless", "hh-helpful-online", "hh-helpful-rejection", "pandalm", "auto-j", "llmbar")
POINTWISE_SETS = ("summeval", "dialsummeval", "openmeva")
CLASSIFICATION_SETS = ("qags",)
TARGET_SETS = ("hh-helpful", "hh-harmless")


@dataclass(frozen=True)
class DataPlan:
    """Which sets feed a run (names from ``flame_reward.data``)."""

    pairwise: tuple[str, ...] = PAIRWISE_SETS
    pointwise: tuple[str, ...] = ()
    classification: tuple[str, ...] = ()


def set_examples(name: str, kind: str, split: str = "train") -> list[LabelledExample]:
    """Labelled examples of one named set and split (pairs in both orders)."""
    if kind == "pairwise":
        return [ex for r in load_pairs(name, split=split).records for ex in from_pair(r)]
    if kind == "pointwise":
        return [from_score(r) for r in load_scores(name, split=split).records]
    if kind == "classification":
        return [from_class(r) for r in load_classes(name, split=split).records]
    raise InvalidInput("kind", f"unknown data kind {kind!r}")


def tasks_for(plan: DataPlan, split: str = "train") -> dict[str, list[LabelledExample]]:
    """Per-set examples for a plan, keyed by set name (the mixture's 'tasks')."""
    out: dict[str, list[LabelledExample]] = {}
    for kind, names in (("pairwise", plan.pairwise), ("pointwise", plan.pointwise),
                        ("classification", plan.classification)):
        for name in names:
            out[name] = set_examples(name, kind, split)
    return out


def build_mixture(
    recipe: str,
    plan: DataPlan,
    *,
    cap: int = DEFAULT_CAP,
    weights: Mapping[str, float] | None = None,
    total: int | None = None,
    seed: int = 0,
) -> list[LabelledExample]:
    """The training examples of a recipe, mixed and shuffled (seeded)."""
    if recipe == "multitask":
        tasks = tasks_for(plan)
        mixed = mix(tasks, cap=cap, weights=weights, total=total, seed=seed)
    elif recipe in ("rm", "opt-rm"):
        tasks = tasks_for(DataPlan(pairwise=plan.pairwise))
        if recipe == "rm" and weights is None:
            weights = {name: 1.0 for name in tasks}
        if recipe == "opt-rm" and weights is None:
            raise InvalidInput("weights", "opt-rm needs tail-patch weights (run the tail-patch step first)")
        mixed = mix(tasks, cap=cap, weights=weights, total=total, seed=seed)
    else:
        raise InvalidInput("recipe", f"unknown recipe {recipe!r}; use multitask, rm or opt-rm")
    return [item for _, item in mixed]


def dev_pairs(sets: Sequence[str] = TARGET_SETS, limit_per_set: int | None = None) -> list[LabelledExample]:
    """Dev-split pairs of the target sets, one presentation each (the scorer does both)."""
    out: list[LabelledExample] = []
    for name in sets:
        records = [r for r in load_pairs(name, split="dev").records if r.label != "tie"]
        if limit_per_set is not None:
            records = records[:limit_per_set]
        out.extend(next(iter(from_pair(r, both_orders=False))) for r in records)
    return out


def weights_from_effects(effects: Mapping[str, float], floor: float = 0.0) -> dict[str, float]:
    """Tail-patch effects (dev accuracy change per set) -> mixture weights.

    Weight is proportional to the gain; a set that did not help (effect <= ``floor``) gets
    zero. If no set helped, fall back to uniform weights (the FLAMe-RM mix) rather than
    train on nothing.
    """
    gains = {name: max(0.0, effect - floor) for name, effect in effects.items()}
    total = sum(gains.values())
    if total <= 0:
        return {name: 1.0 / len(effects) for name in effects}
    return {name: gain / total for name, gain in gains.items()}
