"""TRL integration: reward functions for GRPO / RLOO / online DPO, and the judge contracts TRL dropped.

Every number here comes from the scoring core (:mod:`flame_reward.scoring`) through a
:class:`VerdictSource`; this module only turns TRL's batches into judge tasks and verdicts
into rewards.

* :class:`FlameRewardFunction` is a ``reward_funcs`` entry for ``trl.GRPOTrainer``,
  ``trl.RLOOTrainer`` and ``trl.experimental.online_dpo.OnlineDPOTrainer``. It is a
  picklable callable with a ``__name__`` (TRL names its metrics after it) that takes the
  keyword arguments TRL passes (``prompts``, ``completions``, ``completion_ids``, every
  dataset column, ``trainer_state``, ``log_extra``, ``log_metric``) and returns one float
  per completion (``None`` where a completion cannot be judged; TRL turns it into NaN).
  Modes:

  - ``pointwise``: the expected rating of each completion on ``scale`` (one forward each).
  - ``reference``: P(completion beats the dataset's reference column), both presentation
    orders (two forwards each).
  - ``group``: completions for the same prompt play a round-robin of pairwise comparisons
    (each pair in both orders, ``n(n-1)`` forwards for a group of ``n``). ``win_rate``:
    reward_i = mean_j P(i beats j); because P(i beats j) + P(j beats i) = 1 exactly, the
    rewards of a group of ``m`` judged completions sum to ``m/2`` (they average 0.5).
    ``bradley_terry``: reward_i = theta_i, the Bradley-Terry log-strength fitted to the
    soft pairwise outcomes with an L2 prior; the rewards of a group sum to 0.

* :class:`FlamePairwiseJudge` and :class:`FlameRankJudge` keep the judge contract TRL
  removed in 1.1 (``trl.judges``): ``judge(prompts, completions, shuffle_order=True,
  return_scores=False)`` and ``judge(prompts, completions) -> list[list[int]]``.

* One class, two backends: the judge is an in-process :class:`~flame_reward.autorater.Autorater`
  (or :class:`~flame_reward.scoring.Scorer`), a model name loaded lazily (and reloaded in a
  child process after pickling), or any object with ``judge(task, examples) ->
  list[Verdict | ItemError]`` (:class:`VerdictSource`), such as a remote scoring client.

This module does not import ``trl``: the reward functions are plain callables.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from flame_reward.errors import FlameRewardError, InvalidInput
from flame_reward.results import ItemError, Verdict

log = logging.getLogger(__name__)

Mode = Literal["pointwise", "reference", "group"]
GroupMethod = Literal["win_rate", "bradley_terry"]
OnInvalid = Literal["score", "raise"]

MODES: tuple[str, ...] = ("pointwise", "reference", "group")
GROUP_METHODS: tuple[str, ...] = ("win_rate", "bradley_terry")


# -- backends ------------------------------------------------------------------------------
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


class _JudgeHolder:
    """The judge behind a reward function or judge: an object, or a model name loaded lazily.

    Pickling a holder built from a model name drops the loaded model; the copy loads it again
    on first use (TRL's async GRPO worker sends reward functions to a spawned process).
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


# -- TRL inputs -> text ----------------------------------------------------------------------
class _Unjudgeable(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def _content_text(content: Any, field: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):  # content parts: [{"type": "text", "text": ...}, ...]
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, Mapping) and "type" in part:
                texts.append(f"[{part['type']}]")
            else:
                raise _Unjudgeable(field, f"message content part must be text, got {type(part).__name__}")
        return "".join(texts)
    raise _Unjudgeable(field, f"message content must be a string or a list of parts, got {type(content).__name__}")


def _message_text(msg: Any, field: str) -> tuple[str, str]:
    if not isinstance(msg, Mapping):
        raise _Unjudgeable(field, f"a conversation must be a list of messages (dicts), got {type(msg).__name__}")
    text = _content_text(msg.get("content"), field)
    for call in msg.get("tool_calls") or []:
        fn = call.get("function", call) if isinstance(call, Mapping) else {}
        args = fn.get("arguments", "")
        args = args if isinstance(args, str) else json.dumps(args, sort_keys=True, default=str)
        text += ("\n" if text else "") + f"[tool call] {fn.get('name', '?')}({args})"
    return str(msg.get("role", "")), text


def to_text(value: Any, field: str) -> str:
    """The text the judge reads for a TRL prompt, completion or reference.

    A string is used as is. A conversation (list of messages) that is a single message is
    its content (content parts joined, tool calls shown as ``[tool call] name(args)``);
    several messages are rendered as ``role: content`` blocks. Anything else, ``None`` and
    text that is empty after stripping raise ``_Unjudgeable`` (scored as invalid).
    """
    if value is None:
        raise _Unjudgeable(field, "is None")
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping) and "content" in value:
        text = _message_text(value, field)[1]
    elif isinstance(value, (list, tuple)):
        parts = [_message_text(m, field) for m in value]
        text = parts[0][1] if len(parts) == 1 else "\n\n".join(f"{role}: {t}" for role, t in parts)
    else:
        raise _Unjudgeable(field, f"must be a string or a list of messages, got {type(value).__name__}")
    if not text.strip():
        raise _Unjudgeable(field, "is empty")
    return text


def _prompt_key(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)


# -- group scoring ---------------------------------------------------------------------------
def win_rates(pairs: Mapping[tuple[int, int], float], members: Sequence[int]) -> dict[int, float]:
    """reward_i = mean over j != i of P(i beats j), where ``pairs[(i, j)]`` (i < j) is P(i beats j)
    and P(j beats i) = 1 - P(i beats j). Over ``m`` members the rewards sum to ``m/2``; a single
    member gets 0.5."""
    members = list(members)
    if len(members) == 1:
        return {members[0]: 0.5}
    out = {}
    for i in members:
        total = sum(pairs[(i, j)] if i < j else 1.0 - pairs[(j, i)] for j in members if j != i)
        out[i] = total / (len(members) - 1)
    return out


def bradley_terry(pairs: Mapping[tuple[int, int], float], members: Sequence[int], prior: float = 0.1) -> dict[int, float]:
    """Bradley-Terry log-strengths fitted to soft outcomes: maximise
    ``sum_{i<j} s_ij log sig(t_i - t_j) + (1 - s_ij) log sig(t_j - t_i) - prior/2 * sum t_i^2``
    (Newton's method, float64). The likelihood's gradient sums to zero over members, so at the
    optimum ``sum t_i = 0`` exactly; the prior keeps strengths finite when one completion wins
    every comparison with probability ~1. A single member gets 0.0."""
    import torch

    members = list(members)
    m = len(members)
    if m == 1:
        return {members[0]: 0.0}
    if prior <= 0:
        raise InvalidInput("bt_prior", f"must be > 0, got {prior}")
    s = torch.full((m, m), 0.5, dtype=torch.float64)
    for a, i in enumerate(members):
        for b, j in enumerate(members):
            if i < j:
                s[a, b] = pairs[(i, j)]
                s[b, a] = 1.0 - pairs[(i, j)]
    off = 1.0 - torch.eye(m, dtype=torch.float64)
    theta = torch.zeros(m, dtype=torch.float64)
    for _ in range(100):
        p = torch.sigmoid(theta[:, None] - theta[None, :])
        grad = ((s - p) * off).sum(1) - prior * theta
        w = p * (1 - p) * off
        hess = w - torch.diag(w.sum(1)) - prior * torch.eye(m, dtype=torch.float64)
        step = torch.linalg.solve(hess, grad)
        theta = theta - step
        if float(step.abs().max()) < 1e-12:
            break
    theta = theta - theta.mean()  # already ~0; removes the last rounding error
    return {i: float(t) for i, t in zip(members, theta)}


# -- the reward function -----------------------------------------------------------------------
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
        self.holder = _JudgeHolder(judge, judge_kwargs)
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
        #: invalid, truncated, and head_judgments / raw_judgments (verdicts a trained head
        #: took part in / the raw model gave, see ``Verdict.head``).
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
            rewards, verdicts = self._group(prompts, completions, invalid)
        else:
            rewards, verdicts = self._single(prompts, completions, kwargs, invalid)
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

    # -- modes -----------------------------------------------------------------------------
    def _text(self, value: Any, field: str, index: int, invalid: dict[int, str]) -> str | None:
        try:
            return to_text(value, field)
        except _Unjudgeable as exc:
            if self.on_invalid == "raise":  # fail before any judge work
                raise InvalidInput(exc.field, f"{exc.message} (completion {index})") from None
            invalid.setdefault(index, f"{exc.field}: {exc.message}")
            return None

    def _base(self, prompt: str) -> dict[str, Any]:
        ex: dict[str, Any] = {"prompt": prompt}
        if self.criteria is not None:
            ex["criteria"] = self.criteria
        return ex

    def _single(
        self, prompts: list[Any], completions: list[Any], columns: Mapping[str, Any], invalid: dict[int, str]
    ) -> tuple[dict[int, float], list[Verdict]]:
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
            completion = self._text(c, "completion", i, invalid)
            prompt = self._text(p, "prompt", i, invalid)
            ref = self._text(refs[i], self.reference_column or "", i, invalid) if refs is not None else None
            if i in invalid:
                continue
            ex = self._base(prompt)  # type: ignore[arg-type]
            if self.mode == "pointwise":
                ex.update(response=completion, scale=self.scale)
                if ref is not None:
                    ex["reference"] = ref
            else:
                ex.update(response_a=completion, response_b=ref)
            slots.append(i)
            examples.append(ex)
        results = self.holder.judge("pointwise" if self.mode == "pointwise" else "pairwise", examples)
        rewards: dict[int, float] = {}
        verdicts: list[Verdict] = []
        low, high = self.scale
        for i, res in zip(slots, results):
            if isinstance(res, ItemError):
                invalid[i] = _item_error_text(res)
                continue
            verdicts.append(res)
            score = res.score
            if self.mode == "pointwise" and self.normalize:
                score = (score - low) / (high - low)
            rewards[i] = float(score)
        return rewards, verdicts

    def _groups(self, prompts: list[Any]) -> list[list[int]]:
        if self.group_size is None:
            by_prompt: dict[str, list[int]] = {}
            for i, p in enumerate(prompts):
                by_prompt.setdefault(_prompt_key(p), []).append(i)
            return list(by_prompt.values())
        k = self.group_size
        if len(prompts) % k:
            raise InvalidInput("group_size", f"a batch of {len(prompts)} completions does not split into groups of {k}")
        groups = [list(range(s, s + k)) for s in range(0, len(prompts), k)]
        for g in groups:
            if len({_prompt_key(prompts[i]) for i in g}) > 1:
                raise InvalidInput("group_size", f"completions {g[0]}..{g[-1]} do not share one prompt; use "
                                                 "group_size=None to group by prompt")
        return groups

    def _group(self, prompts: list[Any], completions: list[Any], invalid: dict[int, str]) -> tuple[dict[int, float], list[Verdict]]:
        return group_rewards(self, self._groups(prompts), prompts, completions, invalid)

    # -- reporting -------------------------------------------------------------------------
    def _report(self, verdicts: list[Verdict], n: int, n_invalid: int, seconds: float,
                log_metric: Callable[[str, float], None] | None) -> None:
        available = self.holder.counters()
        keys = [k for k in COUNTERS if k in available] if available is not None else ["judgments", "tokens"]
        cost: dict[str, float] = {key: self.holder.spent.get(key, 0.0) for key in keys}
        cost.update(seconds=seconds, completions=float(n), invalid=float(n_invalid),
                    truncated=float(sum(1 for v in verdicts if v.truncated)),
                    head_judgments=float(sum(1 for v in verdicts if v.head)),
                    raw_judgments=float(sum(1 for v in verdicts if not v.head)))
        self.last_cost = cost
        for key, value in cost.items():
            self.total_cost[key] = self.total_cost.get(key, 0.0) + value
        if log_metric is not None:
            for key in (*COUNTERS, "seconds", "invalid", "truncated", "head_judgments", "raw_judgments"):
                if key in cost:
                    log_metric(f"{self.__name__}/judge_{key}", cost[key])

    def __repr__(self) -> str:
        return f"FlameRewardFunction(name={self.__name__!r}, mode={self.mode!r}, judge={self.holder!r})"


class AsyncFlameRewardFunction:
    """``async def __call__`` twin of a :class:`FlameRewardFunction` (runs it in a worker thread)."""

    def __init__(self, inner: FlameRewardFunction) -> None:
        self.inner = inner
        self.__name__ = inner.__name__

    async def __call__(self, **kwargs: Any) -> list[float | None]:
        return await asyncio.to_thread(self.inner, **kwargs)


def _item_error_text(err: ItemError) -> str:
    return f"{err.field}: {err.message}"


def group_rewards(
    fn: FlameRewardFunction,
    groups: Sequence[Sequence[int]],
    prompts: Sequence[Any],
    completions: Sequence[Any],
    invalid: dict[int, str],
) -> tuple[dict[int, float], list[Verdict]]:
    """Round-robin tournaments: every pair of readable completions in each group, one batched
    judge call for all of them. Identical completions tie at exactly 0.5 without a judge call
    (what the core returns by symmetry of the two orders). A completion whose comparison the
    core rejects is invalid and the tournament is scored among the rest."""
    texts: dict[int, str] = {}
    prompt_texts: dict[int, str] = {}
    for g in groups:
        for i in g:
            c = fn._text(completions[i], "completion", i, invalid)
            p = fn._text(prompts[i], "prompt", i, invalid)
            if i not in invalid:
                texts[i], prompt_texts[i] = c, p  # type: ignore[assignment]
    jobs: list[tuple[int, int]] = []
    examples: list[dict[str, Any]] = []
    pairs: dict[tuple[int, int], float] = {}
    for g in groups:
        members = [i for i in g if i not in invalid]
        for a, i in enumerate(members):
            for j in members[a + 1:]:
                if texts[i] == texts[j]:
                    pairs[(i, j)] = 0.5
                    continue
                ex = fn._base(prompt_texts[i])
                ex.update(response_a=texts[i], response_b=texts[j])
                jobs.append((i, j))
                examples.append(ex)
    results = fn.holder.judge("pairwise", examples)
    verdicts: list[Verdict] = []
    for (i, j), res in zip(jobs, results):
        if isinstance(res, ItemError):
            reason = _item_error_text(res)
            invalid.setdefault(i, reason)
            invalid.setdefault(j, reason)
            continue
        verdicts.append(res)
        pairs[(i, j)] = float(res.score)
    rewards: dict[int, float] = {}
    for g in groups:
        members = [i for i in g if i not in invalid]
        if not members:
            continue
        if fn.method == "win_rate":
            rewards.update(win_rates(pairs, members))
        else:
            rewards.update(bradley_terry(pairs, members, fn.bt_prior))
    return rewards, verdicts


# -- factories (trl.rewards style) -------------------------------------------------------------
def flame_pointwise_reward(judge: Any = None, *, scale: tuple[int, int] = (1, 5), normalize: bool = False,
                           **kwargs: Any) -> FlameRewardFunction:
    """Reward = the judge's expected rating of each completion on ``scale`` (mapped to [0, 1]
    with ``normalize=True``). One judge forward per completion.

    >>> trainer = GRPOTrainer(model, reward_funcs=flame_pointwise_reward(), ...)
    """
    return FlameRewardFunction(judge, mode="pointwise", scale=scale, normalize=normalize, **kwargs)


def flame_reference_reward(judge: Any = None, *, reference_column: str = "reference", **kwargs: Any) -> FlameRewardFunction:
    """Reward = P(completion beats the dataset's ``reference_column``), both presentation
    orders averaged. Two judge forwards per completion."""
    return FlameRewardFunction(judge, mode="reference", reference_column=reference_column, **kwargs)


def flame_group_reward(judge: Any = None, *, method: GroupMethod = "win_rate", group_size: int | None = None,
                       **kwargs: Any) -> FlameRewardFunction:
    """Reward from a round-robin pairwise tournament among completions for the same prompt:
    ``win_rate`` (rewards of a group of m sum to m/2, mean 0.5) or ``bradley_terry``
    (log-strengths summing to 0). ``n(n-1)`` judge forwards for a group of n. With online DPO
    (groups of 2) the reward is P(this sample beats the other one)."""
    return FlameRewardFunction(judge, mode="group", method=method, group_size=group_size, **kwargs)


# -- the judge contracts TRL removed in 1.1 -------------------------------------------------------
class FlamePairwiseJudge:
    """The ``BasePairwiseJudge`` contract of TRL <= 1.0 (``trl.judges``), for your own loops.

    ``judge(prompts, completions, shuffle_order=True, return_scores=False)``: ``completions``
    holds one pair per prompt. Returns the index (0 or 1) of the better completion of each
    pair, or with ``return_scores=True`` P(the first is better). Both presentation orders are
    always scored and averaged, so position bias cancels without shuffling; ``shuffle_order``
    is accepted for compatibility and changes nothing. A pair the judge cannot read gives
    -1 (``NaN`` with ``return_scores``), as the old contract specified. Exact ties (0.5, e.g.
    identical completions) go to the first completion.
    """

    def __init__(self, judge: Any = None, *, criteria: str | None = None,
                 judge_kwargs: Mapping[str, Any] | None = None) -> None:
        self.holder = _JudgeHolder(judge, judge_kwargs)
        self.criteria = criteria

    def judge(self, prompts: Sequence[Any], completions: Sequence[Sequence[Any]], shuffle_order: bool = True,
              return_scores: bool = False) -> list[int] | list[float]:
        if len(prompts) != len(completions):
            raise InvalidInput("completions", f"{len(completions)} pairs for {len(prompts)} prompts")
        slots, examples = [], []
        for k, (prompt, pair) in enumerate(zip(prompts, completions)):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise InvalidInput("completions", f"item {k} must be a pair of completions")
            try:
                ex: dict[str, Any] = {"prompt": to_text(prompt, "prompt"), "response_a": to_text(pair[0], "completion"),
                                      "response_b": to_text(pair[1], "completion")}
            except _Unjudgeable:
                continue
            if self.criteria is not None:
                ex["criteria"] = self.criteria
            slots.append(k)
            examples.append(ex)
        scores: list[float] = [math.nan] * len(prompts)
        for k, res in zip(slots, self.holder.judge("pairwise", examples)):
            if isinstance(res, Verdict):
                scores[k] = float(res.score)
        if return_scores:
            return scores
        return [-1 if math.isnan(s) else (0 if s >= 0.5 else 1) for s in scores]


class FlameRankJudge:
    """The ``BaseRankJudge`` contract of TRL <= 1.0 for Best-of-N: ``judge(prompts,
    completions) -> list[list[int]]``, each list the candidate indices best first.

    ``method="tournament"`` ranks by round-robin win rate (``n(n-1)`` forwards per prompt);
    ``"pointwise"`` by expected rating (``n`` forwards). Ties keep the candidates' order;
    candidates the judge cannot read come last.
    """

    def __init__(self, judge: Any = None, *, method: Literal["tournament", "pointwise"] = "tournament",
                 criteria: str | None = None, scale: tuple[int, int] = (1, 5),
                 judge_kwargs: Mapping[str, Any] | None = None) -> None:
        if method not in ("tournament", "pointwise"):
            raise InvalidInput("method", f"must be 'tournament' or 'pointwise', got {method!r}")
        self.method = method
        self.reward = FlameRewardFunction(judge, judge_kwargs=judge_kwargs, criteria=criteria, scale=scale,
                                          mode="group" if method == "tournament" else "pointwise",
                                          name=f"flame_rank_{method}")

    def scores(self, prompts: Sequence[Any], completions: Sequence[Sequence[Any]]) -> list[list[float | None]]:
        """Each candidate's score (win rate or expected rating; ``None`` if unreadable)."""
        if len(prompts) != len(completions):
            raise InvalidInput("completions", f"{len(completions)} candidate lists for {len(prompts)} prompts")
        flat_p = [p for p, cands in zip(prompts, completions) for _ in cands]
        flat_c = [c for cands in completions for c in cands]
        bounds, start = [], 0
        for cands in completions:
            bounds.append(list(range(start, start + len(cands))))
            start += len(cands)
        invalid: dict[int, str] = {}
        if self.method == "tournament":
            rewards, _ = group_rewards(self.reward, bounds, flat_p, flat_c, invalid)
        else:
            rewards, _ = self.reward._single(flat_p, flat_c, {}, invalid)
        return [[rewards.get(i) for i in g] for g in bounds]

    def judge(self, prompts: Sequence[Any], completions: Sequence[Sequence[Any]], shuffle_order: bool = True) -> list[list[int]]:
        out = []
        for row in self.scores(prompts, completions):
            out.append(sorted(range(len(row)), key=lambda k: (row[k] is None, -(row[k] or 0.0), k)))
        return out


__all__ = [
    "AsyncFlameRewardFunction",
    "FlamePairwiseJudge",
    "FlameRankJudge",
    "FlameRewardFunction",
    "InProcessSource",
    "VerdictSource",
    "as_verdict_source",
    "bradley_terry",
    "flame_group_reward",
    "flame_pointwise_reward",
    "flame_reference_reward",
    "to_text",
    "win_rates",
]
