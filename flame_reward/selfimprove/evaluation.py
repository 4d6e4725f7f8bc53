"""Per-iteration evidence: the judge on human-labelled dev pairs the loops never see.

``dev_figures`` runs the evaluation adapters of ``flame-reward eval-pairs``
(:func:`~flame_reward.eval.pairs.evaluate_source`, verdicts from the scoring core in both
orders) on the dev split of each set. ``compare_iterations`` marks an iteration whose
pooled accuracy fell below the previous iteration's as worse, whatever the size of the
drop (the report prints the change and the 95% half-width of the figure beside it, so a
reader can judge the noise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_DEV_SETS = ("hh-helpful", "hh-harmless")
_KEEP = ("judged", "bad", "scored", "accuracy", "accuracy_first_order", "accuracy_second_order",
         "position_consistency", "prefers_first_position", "seconds")


def dev_figures(judge: Any, sets: Sequence[str], limit: int | None, *, progress: bool = False) -> dict[str, Any]:
    """Pairwise accuracy and position consistency of ``judge`` on the dev split of each set
    (the first ``limit`` pairs of each), and pooled over them (``all``)."""
    from flame_reward.eval.pairs import evaluate_source, load_source, pooled

    reports = []
    out: dict[str, Any] = {"sets": {}, "limit": limit}
    for name in sets:
        source = load_source(name, split="dev", limit=limit)
        report, _ = evaluate_source(judge, source, progress=progress)
        reports.append(report)
        out["sets"][name] = {k: report.get(k) for k in _KEEP}
    if reports:
        all_ = pooled(reports)
        out["all"] = {k: all_.get(k) for k in _KEEP if k in all_}
    return out


def half_width(accuracy: float | None, n: int | None) -> float | None:
    """95% normal-approximation half-width of an accuracy over ``n`` pairs."""
    if accuracy is None or not n or (isinstance(accuracy, float) and math.isnan(accuracy)):
        return None
    return 1.96 * math.sqrt(max(accuracy * (1 - accuracy), 1e-12) / n)


def compare_iterations(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> dict[str, Any]:
    """The change in pooled dev accuracy from ``previous`` to ``current`` dev figures."""
    if not previous or "all" not in previous or "all" not in current:
        return {"accuracy_change": None, "verdict": "baseline"}
    before, after = previous["all"].get("accuracy"), current["all"].get("accuracy")
    if before is None or after is None or math.isnan(before) or math.isnan(after):
        return {"accuracy_change": None, "verdict": "n/a"}
    change = after - before
    verdict = "worse" if change < -1e-9 else "better" if change > 1e-9 else "same"
    return {"accuracy_change": change, "verdict": verdict,
            "half_width_95": half_width(after, current["all"].get("scored"))}


__all__ = ["DEFAULT_DEV_SETS", "compare_iterations", "dev_figures", "half_width"]
