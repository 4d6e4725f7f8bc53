"""A deterministic judge with the Autorater API, for reranking tests.

It knows a hidden quality per text (``quality[text]``) and answers pairwise tasks with
``sigmoid(q(A) - q(B))`` and pointwise tasks with ``sigmoid(q)``; every example it renders
(through the real task types) is recorded, so tests can check what a judge saw.
"""

from __future__ import annotations

import math
from typing import Any

from flame_reward.results import ItemError, Verdict
from flame_reward.tasks.registry import get_task_type


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class FakeJudge:
    fingerprint = "fake-judge-v1"

    def __init__(self, quality: dict[str, float] | None = None, default: float = 0.0, fail_on: str | None = None):
        self.quality = dict(quality or {})
        self.default = default
        self.fail_on = fail_on
        self.calls: list[tuple[str, int]] = []  # (task name, examples) per judge() call
        self.rendered: list[str] = []
        self.presentations = 0

    def q(self, text: str) -> float:
        return self.quality.get(text, self.default)

    def judge(self, task: Any, examples: list[dict[str, Any]], **kwargs: Any) -> list[Verdict | ItemError]:
        t = get_task_type(task)
        self.calls.append((t.name, len(examples)))
        out: list[Verdict | ItemError] = []
        for index, raw in enumerate(examples):
            ex = t.validate(raw)
            self.rendered.append(t.render(ex).text())
            self.presentations += 2 if t.swap is not None else 1
            if t.swap is not None:
                a, b = (ex[f] for f in t.swap.fields)
                if self.fail_on is not None and self.fail_on in (a, b):
                    out.append(ItemError(index, "max_length", "too long"))
                    continue
                self.rendered.append(t.render({**ex, t.swap.fields[0]: b, t.swap.fields[1]: a}).text())
                p = _sigmoid(self.q(a) - self.q(b))
                out.append(Verdict(t.name, "A" if p >= 0.5 else "B", p, {"A": p, "B": 1 - p}))
            else:
                text = ex.get("response", ex.get("code", ""))
                p = _sigmoid(self.q(text))
                labels = t.verdicts(ex)
                if labels[0].isdigit():  # rating scale: expected rating grows with quality
                    low, high = int(labels[0]), int(labels[-1])
                    p = low + (high - low) * p
                out.append(Verdict(t.name, labels[0], p, {}))
        return out
