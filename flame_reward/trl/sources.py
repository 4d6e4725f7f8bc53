"""Where a reward function's verdicts come from: an in-process judge, a model loaded lazily, or a remote source.

Every number comes from the scoring core (:mod:`flame_reward.scoring`) through a
:class:`VerdictSource`; the gRPC ``RewardClient`` implements the same protocol, so a
reward function moves between an in-process and a remote judge without other changes.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from flame_reward.errors import FlameRewardError, InvalidInput
from flame_reward.results import ItemError, Verdict

@runtime_checkable
class VerdictSource(Protocol):
    """What a reward function needs from a judge: verdicts for examples of a task type.

    ``judge(task, examples)`` returns one :class:`~flame_reward.results.Verdict` or
    :class:`~flame_reward.results.ItemError` per example, in input order (an invalid example
    is an ``ItemError`` in its slot, never an exception). An in-process judge is adapted by
    :class:`InProcessSource`; a remote scorer (e.g. a gRPC ``RewardClient``) implements this
    method directly and plugs into every class here without changing user code. A source
    may expose ``cost`` (an object with ``snapshot() -> dict`` of ``forwards``, ``tokens``,
    ``judgments`` running totals) for the per-call cost reports.
    """

    def judge(self, task: str, examples: Sequence[Mapping[str, Any]]) -> Sequence[Verdict | ItemError]: ...


class InProcessSource:
    """An :class:`Autorater` or :class:`Scorer` as a :class:`VerdictSource` (errors returned in their slots)."""

    def __init__(self, target: Any) -> None:
        self.target = target

    @property
    def scorer(self) -> Any:
        return getattr(self.target, "scorer", self.target)

    @property
    def cost(self) -> Any:
        return self.scorer.cost

    def judge(self, task: str, examples: Sequence[Mapping[str, Any]]) -> list[Verdict | ItemError]:
        return self.target.judge(task, list(examples), on_error="return")

    def __repr__(self) -> str:
        return f"InProcessSource({self.target!r})"


_LOADED: dict[str, Any] = {}
_LOAD_LOCK = threading.Lock()
_SCORER_LOCKS: dict[int, Any] = {}
#: The running totals a reward function reports per call (a source may have only some).
COUNTERS: tuple[str, ...] = ("judgments", "forwards", "tokens", "prefix_forwards", "reused_tokens")


def _scorer_lock(source: Any) -> Any:
    """One lock per in-process scorer, so concurrent reward functions (GRPO runs async ones
    side by side) never interleave on one model and each call's cost delta is its own. A
    remote source (no in-process scorer) handles concurrency itself: no lock."""
    scorer = getattr(source, "scorer", None)
    if scorer is None:
        return contextlib.nullcontext()
    with _LOAD_LOCK:
        return _SCORER_LOCKS.setdefault(id(scorer), threading.RLock())


def _load_autorater(model: str | None, kwargs: Mapping[str, Any]) -> Any:
    """One Autorater per (model, options) per process, shared by every reward function."""
    key = json.dumps([model, sorted(kwargs.items())], default=str)
    with _LOAD_LOCK:
        if key not in _LOADED:
            from flame_reward.autorater import Autorater

            _LOADED[key] = Autorater.from_pretrained(model, **kwargs)
        return _LOADED[key]


def as_verdict_source(judge: Any) -> VerdictSource:
    """Adapt ``judge`` (Autorater, Scorer or any :class:`VerdictSource`) to the protocol."""
    from flame_reward.autorater import Autorater
    from flame_reward.scoring import Scorer

    if isinstance(judge, (Autorater, Scorer)):
        return InProcessSource(judge)
    if isinstance(judge, VerdictSource):
        return judge
    raise InvalidInput("judge", f"expected an Autorater, a Scorer, a model name or an object with "
                                f"judge(task, examples), got {type(judge).__name__}")


class JudgeHolder:
    """The judge behind a reward function or judge: an object, or a model name loaded lazily.

    Pickling a holder built from a model name drops the loaded model; the copy loads it again
    on first use (TRL's async GRPO worker sends reward functions to a spawned process).
    ``judge(task, examples)`` makes it a :class:`VerdictSource` itself, one that counts the
    work in :attr:`spent`.
    """

    def __init__(self, judge: Any = None, judge_kwargs: Mapping[str, Any] | None = None) -> None:
        self.spec: tuple[str | None, dict[str, Any]] | None = None
        self._source: VerdictSource | None = None
        if judge is None or isinstance(judge, str):
            self.spec = (judge, dict(judge_kwargs or {}))
        else:
            if judge_kwargs:
                raise InvalidInput("judge_kwargs", "only used when the judge is a model name (or None)")
            self._source = as_verdict_source(judge)
        #: Work done by the judge since the last :meth:`reset` (see :data:`COUNTERS`).
        self.spent: dict[str, float] = {}

    @property
    def source(self) -> VerdictSource:
        if self._source is None:
            assert self.spec is not None
            self._source = as_verdict_source(_load_autorater(*self.spec))
        return self._source

    def counters(self) -> dict[str, int] | None:
        """The source's running totals (``forwards``, ``tokens``, ``judgments``, and the core's
        prefix-sharing counters where it has them), or ``None`` for a source without counters."""
        cost = getattr(self.source, "cost", None)
        if cost is None or not hasattr(cost, "snapshot"):
            return None
        out = dict(cost.snapshot())
        for extra in ("prefix_forwards", "reused_tokens"):
            value = getattr(cost, extra, None)
            if isinstance(value, int):
                out[extra] = value
        return out

    def judge(self, task: str, examples: list[dict[str, Any]]) -> list[Verdict | ItemError]:
        """Verdicts for ``examples``; identical examples are judged once (the core is deterministic)."""
        if not examples:
            return []
        keys = [json.dumps(ex, sort_keys=True, default=str) for ex in examples]
        unique: dict[str, int] = {}
        for k in keys:
            unique.setdefault(k, len(unique))
        firsts = {i: ex for k, ex in zip(keys, examples) for i in [unique[k]]}
        batch = [firsts[i] for i in range(len(unique))]
        source = self.source
        with _scorer_lock(source):
            before = self.counters()
            out = list(source.judge(task, batch))
            after = self.counters()
        if len(out) != len(batch):
            raise FlameRewardError(f"the judge returned {len(out)} verdicts for {len(batch)} examples")
        if before is not None and after is not None:
            delta = {k: float(after[k] - before[k]) for k in COUNTERS if k in before and k in after}
        else:  # a source without counters: what its verdicts report
            verdicts = [v for v in out if isinstance(v, Verdict)]
            delta = {"judgments": float(len(verdicts)), "tokens": float(sum(v.tokens for v in verdicts))}
        for key, value in delta.items():
            self.spent[key] = self.spent.get(key, 0.0) + value
        return [out[unique[k]] for k in keys]

    def reset(self) -> None:
        self.spent = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.spec is not None:
            state["_source"] = None
        return state

    def __repr__(self) -> str:
        return f"model {self.spec[0] or 'embedded'!r}" if self.spec is not None else repr(self._source)


__all__ = ["COUNTERS", "InProcessSource", "JudgeHolder", "VerdictSource", "as_verdict_source"]
