"""Shared pieces of the TRL adapter tests: a judge with spread-out verdicts and recorders."""

from __future__ import annotations

from typing import Any

import pytest

from flame_reward.trl import InProcessSource, to_text


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for the module (restored after). On a small shared CPU the
    default pool spin-waits on descheduled threads: trainer steps ran 5-8x slower with 2."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def spread_judge(tokenizer, seed: int = 0):
    """A tiny random Llama judge whose verdicts differ by whole percents between inputs
    (initializer_range 0.5; the default 0.02 puts every verdict within 1e-4 of uniform, too
    flat to tell a reordering from batching noise)."""
    from flame_reward.autorater import Autorater
    from flame_reward.models.backends import TorchBackend
    from flame_reward.scoring import Scorer
    from tests.conftest import make_tiny_loaded

    loaded = make_tiny_loaded(tokenizer, seed=seed, initializer_range=0.5)
    return Autorater(Scorer(TorchBackend(loaded), tokenizer, batch_size=8, max_length=512), model_name="tiny-spread")


class RecordingSource:
    """A VerdictSource that records every judge call (task, examples) before delegating."""

    def __init__(self, judge) -> None:
        self.inner = InProcessSource(judge)
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []

    @property
    def cost(self):
        return self.inner.cost

    def judge(self, task, examples):
        self.calls.append((task, [dict(e) for e in examples]))
        return self.inner.judge(task, examples)


class Spy:
    """A zero reward (weight it 0) that records what the trainer passes to reward functions."""

    __name__ = "spy"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, prompts, completions, **kwargs):
        self.calls.append({"prompts": list(prompts), "completions": list(completions),
                           "columns": sorted(kwargs)})
        return [0.0] * len(completions)


class Recorder:
    """Wraps a reward function and records its outputs (same ``__name__``, so same metrics)."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.__name__ = fn.__name__
        self.outputs: list[list[float | None]] = []

    def __call__(self, **kwargs):
        out = self.fn(**kwargs)
        self.outputs.append(list(out))
        return out


def texts(values) -> list[str]:
    return [to_text(v, "x") for v in values]
