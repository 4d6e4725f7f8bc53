"""The reward callable behind every factory: TRL's batch in, one reward per completion out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from flame_reward.errors import InvalidInput
from flame_reward.results import ItemError, Verdict
from flame_reward.round_robin import play
from flame_reward.trl.aggregation import bradley_terry, win_rates
from flame_reward.trl.sources import COUNTERS, JudgeHolder
from flame_reward.trl.text import Unjudgeable, prompt_key, to_text

log = logging.getLogger(__name__)

Mode = Literal["pointwise", "reference", "group"]
GroupMethod = Literal["win_rate", "bradley_terry"]
OnInvalid = Literal["score", "raise"]

MODES: tuple[str, ...] = ("pointwise", "reference", "group")
GROUP_METHODS: tuple[str, ...] = ("win_rate", "bradley_terry")


class FlameRewardFunction:
    """A TRL ``reward_funcs`` entry backed by the flame-reward scoring core.

    ``judge``: ``None`` (the embedded default, loaded on first call), a model directory or
    hub id (loaded on first call with ``judge_kwargs`` such as ``device``, ``dtype``,
    ``batch_size``, ``max_length``, ``adapter``), an :class:`Autorater`/:class:`Scorer`, or
    any :class:`VerdictSource` (e.g. a remote client).

    ``mode``: ``pointwise`` | ``reference`` | ``group`` (see the module docstring for exactly
    what each returns). ``scale``/``normalize`` (pointwise): the rating scale, and whether to
    map the expected rating to [0, 1]. ``reference_column`` (reference mode; optional in
    pointwise, where it is shown to the judge as the reference answer). ``method``,
    ``group_size``, ``bt_prior`` (group mode): ``group_size=None`` groups completions by
    identical prompt wherever they sit in the batch (GRPO/RLOO blocks, online DPO's
    ``[p1..pB, p1..pB]`` layout); an integer splits the batch into consecutive blocks of
    that size (GRPO's ``num_generations``) and checks each block shares one prompt.
    ``criteria``: the judge's evaluation criteria (task default if ``None``).

    Completions the judge cannot read (``None``, non-text content, empty or whitespace-only
    text, or an example the core rejects, e.g. a prompt that alone exceeds the judge's
    ``max_length``) get ``invalid_score`` (default ``None``: TRL makes it NaN, which GRPO/RLOO
    leave out of the group baseline and give zero advantage; online DPO's ``nansum`` makes it
    0). ``on_invalid="raise"`` raises :class:`InvalidInput` naming the field and completion
    index instead. Over-long completions are never rejected: the core truncates responses
    (keeping their beginning and end), never the instruction, prompt or verdict slot.
    """

    def __init__(
        self,
        judge: Any = None,
        *,
        mode: Mode = "pointwise",
        name: str | None = None,
        judge_kwargs: Mapping[str, Any] | None = None,
        criteria: str | None = None,
        scale: tuple[int, int] = (1, 5),
        normalize: bool = False,
        reference_column: str | None = None,
        method: GroupMethod = "win_rate",
        group_size: int | None = None,
        bt_prior: float = 0.1,
        invalid_score: float | None = None,
        on_invalid: OnInvalid = "score",
    ) -> None:
        if mode not in MODES:
            raise InvalidInput("mode", f"must be one of {list(MODES)}, got {mode!r}")
        if method not in GROUP_METHODS:
            raise InvalidInput("method", f"must be one of {list(GROUP_METHODS)}, got {method!r}")
        if on_invalid not in ("score", "raise"):
            raise InvalidInput("on_invalid", f"must be 'score' or 'raise', got {on_invalid!r}")
        if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1):
            raise InvalidInput("group_size", f"must be a positive integer or None, got {group_size!r}")
        if mode == "reference" and reference_column is None:
            reference_column = "reference"
        if bt_prior <= 0:
            raise InvalidInput("bt_prior", f"must be > 0, got {bt_prior}")
        if (not isinstance(scale, (tuple, list)) or len(scale) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in scale)
                or not 0 <= scale[0] < scale[1] <= 100):
            raise InvalidInput("scale", f"must be two integers (low, high) with 0 <= low < high <= 100, got {scale!r}")
        self.holder = JudgeHolder(judge, judge_kwargs)
        self.mode = mode
        self.criteria = criteria
        self.scale = (int(scale[0]), int(scale[1]))
        self.normalize = normalize
        self.reference_column = reference_column
        self.method = method
        self.group_size = group_size
        self.bt_prior = bt_prior
        self.invalid_score = invalid_score
        self.on_invalid = on_invalid
        suffix = f"_{'bt' if method == 'bradley_terry' else 'winrate'}" if mode == "group" else ""
        self.__name__ = name or f"flame_{mode}{suffix}"
        #: Cost of the last call and running totals: judgments, forwards, tokens (and, from a
        #: core with prefix sharing, prefix_forwards and reused_tokens), seconds, completions,
        #: invalid, truncated, verdicts, and head_verdicts (verdicts a trained head took part in).
        self.last_cost: dict[str, float] = {}
        self.total_cost: dict[str, float] = {}
        #: ``(index, "field: reason")`` for each completion scored invalid in the last call.
        self.last_invalid: list[tuple[int, str]] = []

    # -- the TRL entry point ---------------------------------------------------------------
    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Any = None,
        log_metric: Callable[[str, float], None] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        """One reward per completion, in order. ``kwargs`` holds TRL's dataset columns and
        ``trainer_state``/``log_extra``; ``log_metric`` (GRPO, RLOO) receives the call's cost."""
        start = time.perf_counter()
        prompts, completions = list(prompts), list(completions)
        if len(prompts) != len(completions):
            raise InvalidInput("prompts", f"{len(prompts)} prompts for {len(completions)} completions")
        self.holder.reset()
        self.last_invalid = []
        invalid: dict[int, str] = {}
        if self.mode == "group":
            rewards, verdicts = group_rewards(self, self.groups(prompts), prompts, completions, invalid)
        else:
            rewards, verdicts = self.judge_each(prompts, completions, kwargs, invalid)
        if invalid:
            self.last_invalid = sorted(invalid.items())
            if self.on_invalid == "raise":
                index, reason = self.last_invalid[0]
                field, _, message = reason.partition(": ")
                raise InvalidInput(field, f"{message} (completion {index}; {len(invalid)} unjudgeable in this batch)")
            first = self.last_invalid[0]
            log.warning("%s: %d of %d completions could not be judged and score %r (first: #%d %s)",
                        self.__name__, len(invalid), len(completions), self.invalid_score, first[0], first[1])
        out = [self.invalid_score if i in invalid else rewards[i] for i in range(len(completions))]
        self._report(verdicts, len(completions), len(invalid), time.perf_counter() - start, log_metric)
        return out

    def as_async(self) -> AsyncFlameRewardFunction:
        """An ``async`` twin for GRPO/RLOO, which run async reward functions concurrently
        (useful with a remote judge next to other slow rewards). Online DPO calls reward
        functions synchronously: give it this object itself, not the async twin."""
        return AsyncFlameRewardFunction(self)

    # -- the parts group_rewards and the judges build on -----------------------------------
    def read(self, value: Any, field: str, index: int, invalid: dict[int, str]) -> str | None:
        """The text the judge reads for ``value`` (a prompt, completion or reference of
        completion ``index``), or ``None`` when it cannot be read: the reason is recorded in
        ``invalid[index]``, or raised as :class:`InvalidInput` with ``on_invalid="raise"``
        (before any judge work)."""
        try:
            return to_text(value, field)
        except Unjudgeable as exc:
            if self.on_invalid == "raise":
                raise InvalidInput(exc.field, f"{exc.message} (completion {index})") from None
            invalid.setdefault(index, f"{exc.field}: {exc.message}")
            return None

    def example(self, prompt: str, **fields: Any) -> dict[str, Any]:
        """A task example for ``prompt`` with this function's ``criteria`` and ``fields``."""
        ex: dict[str, Any] = {"prompt": prompt}
        if self.criteria is not None:
            ex["criteria"] = self.criteria
        ex.update(fields)
        return ex

    def judge_each(
        self, prompts: list[Any], completions: list[Any], columns: Mapping[str, Any], invalid: dict[int, str]
    ) -> tuple[dict[int, float], list[Verdict]]:
        """Pointwise and reference rewards: one judgment per readable completion, in one batch.

        ``columns`` holds the dataset columns (the reference column among them); unreadable
        or rejected completions land in ``invalid``. Returns the rewards by completion index
        and the verdicts.
        """
        refs: list[Any] | None = None
        if self.reference_column is not None:
            if self.reference_column not in columns:
                given = sorted(k for k in columns if k not in ("trainer_state", "log_extra", "environments"))
                raise InvalidInput(self.reference_column, f"{self.mode} mode reads the reference from the dataset "
                                   f"column {self.reference_column!r}, which the trainer did not pass "
                                   f"(columns: {given}); set reference_column=")
            refs = list(columns[self.reference_column])
            if len(refs) != len(completions):
                raise InvalidInput(self.reference_column, f"{len(refs)} values for {len(completions)} completions")
        slots: list[int] = []
        examples: list[dict[str, Any]] = []
        for i, (p, c) in enumerate(zip(prompts, completions)):
            completion = self.read(c, "completion", i, invalid)
            prompt = self.read(p, "prompt", i, invalid)
            ref = self.read(refs[i], self.reference_column or "", i, invalid) if refs is not None else None
            if i in invalid:
                continue
            if self.mode == "pointwise":
                ex = self.example(prompt, response=completion, scale=self.scale)  # type: ignore[arg-type]
                if ref is not None:
                    ex["reference"] = ref
            else:
                ex = self.example(prompt, response_a=completion, response_b=ref)  # type: ignore[arg-type]
            slots.append(i)
            examples.append(ex)
        results = self.holder.judge("pointwise" if self.mode == "pointwise" else "pairwise", examples)
        rewards: dict[int, float] = {}
        verdicts: list[Verdict] = []
        low, high = self.scale
        for i, res in zip(slots, results):
            if isinstance(res, ItemError):
                invalid[i] = item_error_text(res)
                continue
            verdicts.append(res)
            score = res.score
            if self.mode == "pointwise" and self.normalize:
                score = (score - low) / (high - low)
            rewards[i] = float(score)
        return rewards, verdicts

    def groups(self, prompts: list[Any]) -> list[list[int]]:
        """Completion indices grouped by identical prompt, or in consecutive blocks of
        ``group_size`` (checked to share one prompt)."""
        if self.group_size is None:
            by_prompt: dict[str, list[int]] = {}
            for i, p in enumerate(prompts):
                by_prompt.setdefault(prompt_key(p), []).append(i)
            return list(by_prompt.values())
        k = self.group_size
        if len(prompts) % k:
            raise InvalidInput("group_size", f"a batch of {len(prompts)} completions does not split into groups of {k}")
        groups = [list(range(s, s + k)) for s in range(0, len(prompts), k)]
        for g in groups:
            if len({prompt_key(prompts[i]) for i in g}) > 1:
                raise InvalidInput("group_size", f"completions {g[0]}..{g[-1]} do not share one prompt; use "
                                                 "group_size=None to group by prompt")
        return groups

    # -- reporting -------------------------------------------------------------------------
    def _report(self, verdicts: list[Verdict], n: int, n_invalid: int, seconds: float,
                log_metric: Callable[[str, float], None] | None) -> None:
        available = self.holder.counters()
        keys = [k for k in COUNTERS if k in available] if available is not None else ["judgments", "tokens"]
        cost: dict[str, float] = {key: self.holder.spent.get(key, 0.0) for key in keys}
        heads = sum(1 for v in verdicts if v.head is not None)
        cost.update(seconds=seconds, completions=float(n), invalid=float(n_invalid),
                    truncated=float(sum(1 for v in verdicts if v.truncated)), verdicts=float(len(verdicts)),
                    head_verdicts=float(heads))
        self.last_cost = cost
        for key, value in cost.items():
            self.total_cost[key] = self.total_cost.get(key, 0.0) + value
        if log_metric is not None:
            for key in (*COUNTERS, "seconds", "invalid", "truncated", "head_verdicts"):
                if key in cost:
                    log_metric(f"{self.__name__}/judge_{key}", cost[key])
            # The share, not only the count, so runs with different batch sizes compare: 1.0
            # means every verdict of the call came through a trained head, 0.0 none.
            log_metric(f"{self.__name__}/judge_head_share", heads / len(verdicts) if verdicts else 0.0)

    def __repr__(self) -> str:
        return f"FlameRewardFunction(name={self.__name__!r}, mode={self.mode!r}, judge={self.holder!r})"


class AsyncFlameRewardFunction:
    """``async def __call__`` twin of a :class:`FlameRewardFunction` (runs it in a worker thread)."""

    def __init__(self, inner: FlameRewardFunction) -> None:
        self.inner = inner
        self.__name__ = inner.__name__

    async def __call__(self, **kwargs: Any) -> list[float | None]:
        return await asyncio.to_thread(self.inner, **kwargs)


def item_error_text(err: ItemError) -> str:
    """``"field: message"``, the reason recorded for an item the core rejected."""
    return f"{err.field}: {err.message}"


def group_rewards(
    fn: FlameRewardFunction,
    groups: Sequence[Sequence[int]],
    prompts: Sequence[Any],
    completions: Sequence[Any],
    invalid: dict[int, str],
) -> tuple[dict[int, float], list[Verdict]]:
    """Round-robin tournaments among the readable completions of each group.

    Every pair of every group goes to the judge in one batched call
    (:func:`flame_reward.round_robin.play`). Identical completions tie at exactly 0.5 without
    a judge call (what the core returns by symmetry of the two orders). A completion whose
    comparison the core rejects is invalid and the tournament is scored among the rest.

    Args:
        fn: the reward function (its judge, criteria, ``method`` and ``bt_prior``).
        groups: completion indices per group.
        prompts, completions: TRL's batch.
        invalid: filled with ``index -> reason`` for completions that cannot be judged.

    Returns:
        The rewards by completion index (win rates or Bradley-Terry strengths) and the verdicts.
    """
    texts: dict[int, str] = {}
    prompt_texts: dict[int, str] = {}
    for g in groups:
        for i in g:
            c = fn.read(completions[i], "completion", i, invalid)
            p = fn.read(prompts[i], "prompt", i, invalid)
            if i not in invalid:
                texts[i], prompt_texts[i] = c, p  # type: ignore[assignment]
    readable = [[i for i in g if i not in invalid] for g in groups]
    games = play(fn.holder, "pairwise", readable,
                 lambda i, j: fn.example(prompt_texts[i], response_a=texts[i], response_b=texts[j]),
                 tie=lambda i, j: texts[i] == texts[j])
    for (i, j), err in games.errors.items():
        reason = item_error_text(err)
        invalid.setdefault(i, reason)
        invalid.setdefault(j, reason)
    rewards: dict[int, float] = {}
    for g in groups:
        members = [i for i in g if i not in invalid]
        if not members:
            continue
        if fn.method == "win_rate":
            rewards.update(win_rates(games.outcomes, members))
        else:
            rewards.update(bradley_terry(games.outcomes, members, fn.bt_prior))
    return rewards, games.verdicts


__all__ = ["GROUP_METHODS", "MODES", "AsyncFlameRewardFunction", "FlameRewardFunction", "GroupMethod", "Mode",
           "OnInvalid", "group_rewards", "item_error_text"]
