"""Any labelled set, judged through the public API: the judge's figure and the raw model's beside it.

One pass: each verdict carries the raw model's score from the same forward pass
(``Verdict.raw_score`` where a trained head took part, else ``score`` is the raw one), so
the before/after of a set costs one judgment per record. Figures:

- pairwise: accuracy of the debiased verdict on non-tie pairs (P(A) > 0.5 agrees with the
  human label; exactly 0.5 earns half a point; human ties are left out);
- pointwise: Kendall tau-b of the expected rating with the human mean, per subset
  (dimension), and their mean;
- classification: accuracy of the most probable label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flame_reward.eval.metrics import kendall_tau_b, proportion_interval, score_accuracy, tau_interval
from flame_reward.results import Verdict


def first_records(name: str, split: str, limit: int | None) -> list[Any]:
    """The first ``limit`` records of a set's split in file order (pairwise: non-tie only)."""
    from flame_reward.train.features import load_records, set_kind

    records = load_records(name, split)
    if set_kind(name) == "pairwise":
        records = [r for r in records if r.label != "tie"]
    return records[:limit] if limit else records


def judge_records(judge: Any, name: str, records: Sequence[Any]) -> dict[str, Any]:
    """``{"judge": figure, "raw": figure, "head": verdicts with a head, "errors": n}``."""
    from flame_reward.train.features import record_example, set_kind

    kind = set_kind(name)
    examples = [record_example(r)[0] for r in records]
    verdicts = judge.judge(kind, examples, on_error="return")
    kept = [(r, v) for r, v in zip(records, verdicts) if isinstance(v, Verdict)]
    out = {"n": len(kept), "errors": len(records) - len(kept), "head": sum(1 for _, v in kept if v.head)}
    for side in ("judge", "raw"):
        scores = [v.score if side == "judge" or v.raw_score is None else v.raw_score for _, v in kept]
        out[side] = _figure(kind, [r for r, _ in kept], scores, [v for _, v in kept], side)
    return out


def _figure(kind: str, records: Sequence[Any], scores: Sequence[float], verdicts: Sequence[Verdict],
            side: str) -> dict[str, Any]:
    if kind == "pairwise":
        acc = score_accuracy(scores, [r.label for r in records])
        decided = sum(1 for r in records if r.label != "tie")
        return {"metric": "accuracy", "value": acc, "interval": proportion_interval(acc, decided)}
    if kind == "pointwise":
        by: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            by.setdefault(str(r.subset or ""), []).append(i)
        taus = {s: kendall_tau_b([scores[i] for i in idx], [records[i].score for i in idx]) for s, idx in sorted(by.items())}
        return {"metric": "kendall_tau", "value": sum(taus.values()) / len(taus) if taus else float("nan"),
                "per_subset": taus, "interval": tau_interval(min((len(v) for v in by.values()), default=0))}
    # classification: the score is P(first label); the label is the first when that is the larger.
    hits = [float((s >= 0.5) == (r.label == r.labels[0])) if len(r.labels) == 2 else
            float(v.label == r.label) for r, s, v in zip(records, scores, verdicts)]
    if side == "raw" and any(len(r.labels) != 2 for r in records):
        raise ValueError("raw figures of classification need two labels")
    acc = sum(hits) / len(hits) if hits else float("nan")
    return {"metric": "accuracy", "value": acc, "interval": proportion_interval(acc, len(hits))}


__all__ = ["first_records", "judge_records"]
