"""The bias probes' statistics: rates with Wilson intervals, change direction, control margins.

Pure arithmetic over P(target) values, so every figure of ``flame-reward bias`` can be
checked without a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (95% by default); (nan, nan) for n=0."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, center - half), min(1.0, center + half))


def side(p_target: float) -> str:
    """The verdict read from P(target): ``target``, ``other`` or ``tie`` (exactly 0.5)."""
    return "target" if p_target > 0.5 else "other" if p_target < 0.5 else "tie"


_RANK = {"other": 0.0, "tie": 0.5, "target": 1.0}


@dataclass(frozen=True)
class PairOutcome:
    """P(target) of one pair in both presentations (index 0: target second, 1: target first)."""

    control: tuple[float, float]
    perturbed: tuple[float, float]


def probe_stats(name: str, outcomes: Sequence[PairOutcome], target: str = "") -> dict[str, Any]:
    """The figures of one probe from its per-pair P(target) values (pure arithmetic).

    Args:
        name: the probe; ``order`` and ``egocentric`` read the outcomes their own way.
        outcomes: one :class:`PairOutcome` per judged pair.
        target: what the probe pushes towards, copied into the figures for the report.

    Returns:
        ``rate`` with its 95% Wilson interval ``ci95``, ``toward`` / ``away``, ``changed``,
        ``raw_change_rate``, and for every probe but ``order`` ``mean_shift`` and
        ``prefers_target`` (see :mod:`flame_reward.eval.probes` for the definitions).
    """
    n = len(outcomes)
    if name == "order":
        changed = toward = away = 0
        for o in outcomes:
            # control[0]: target (worse) shown second; control[1]: target shown first.
            s_second, s_first = side(o.control[0]), side(o.control[1])
            if s_second != s_first:
                changed += 1
                # picks the first-shown both times: the other side when target is second,
                # the target when it is first.
                if s_second == "other" and s_first == "target":
                    toward += 1
                elif s_second == "target" and s_first == "other":
                    away += 1
        return _stats(name, target, n, changed, toward, away, changed, "verdict change between the pair and its swap "
                      "(raw single-order verdicts; toward = picks the first-shown both times)",
                      raw_changed=changed, raw_n=n)
    changed = toward = away = raw_changed = 0
    shifts = []
    prefers_target = control_prefers_target = 0
    for o in outcomes:
        c, p = sum(o.control) / 2, sum(o.perturbed) / 2
        shifts.append(p - c)
        sc, sp = side(c), side(p)
        prefers_target += sp == "target"
        control_prefers_target += sc == "target"
        if sc != sp:
            changed += 1
            if _RANK[sp] > _RANK[sc]:
                toward += 1
            else:
                away += 1
        raw_changed += sum(side(a) != side(b) for a, b in zip(o.control, o.perturbed))
    if name == "egocentric":
        out = _stats(name, target, n, prefers_target, toward, away, changed,
                     "prefers its own output over the human-better response (debiased verdict)",
                     raw_changed=raw_changed, raw_n=2 * n)
        out["control_prefers_worse"] = control_prefers_target / n if n else float("nan")
    else:
        out = _stats(name, target, n, changed, toward, away, changed,
                     "debiased verdict changed from the unperturbed pair", raw_changed=raw_changed, raw_n=2 * n)
    out["mean_shift"] = sum(shifts) / n if n else float("nan")
    out["prefers_target"] = prefers_target / n if n else float("nan")
    return out


def _stats(name: str, target: str, n: int, hits: int, toward: int, away: int, changed: int, definition: str,
           *, raw_changed: int, raw_n: int) -> dict[str, Any]:
    low, high = wilson_interval(hits, n)
    nan = float("nan")
    return {
        "probe": name,
        "target": target,
        "definition": definition,
        "pairs": n,
        "count": hits,
        "rate": hits / n if n else nan,
        "ci95": [low, high],
        "changed": changed / n if n else nan,
        "toward": toward / n if n else nan,
        "away": away / n if n else nan,
        "raw_change_rate": raw_changed / raw_n if raw_n else nan,
    }


def control_summary(control: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """How decided the judge is on the unperturbed pairs: P(target) in each presentation
    (target second, target first), debiased, and its median distance from 0.5. A small
    margin means a perturbation needs only a tiny push to flip the debiased verdict."""
    n = len(control)
    if not n:
        return {"pairs": 0}
    means = [(a + b) / 2 for a, b in control]
    margins = sorted(abs(m - 0.5) for m in means)
    mid = n // 2
    median = margins[mid] if n % 2 else (margins[mid - 1] + margins[mid]) / 2
    return {
        "pairs": n,
        "mean_p_target": sum(means) / n,
        "prefers_target": sum(m > 0.5 for m in means) / n,
        "median_margin": median,
        "p_first_shown": sum((1 - a) + b for a, b in control) / (2 * n),
    }


__all__ = ["Z95", "PairOutcome", "control_summary", "probe_stats", "side", "wilson_interval"]
