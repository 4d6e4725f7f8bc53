"""The core: render -> encode -> batch -> one forward -> verdict distribution.

Every face of flame-reward (Python API, CLI, TRL adapter, gRPC server, reranker,
evaluation) computes verdicts here and nowhere else.

How a verdict is computed: the task is rendered in the FLAMe format and encoded through
the model's chat template; a single forward pass reads the next-token log-probabilities
at the last position only (``logits_to_keep=1``), restricted to the first token of each
verdict label. Labels longer than one token get their remaining tokens scored in one
extra batched pass. The label log-probabilities are renormalised over the label set.
For tasks with a :class:`~flame_reward.tasks.base.Swap` (pairwise) both presentation
orders are scored and averaged after mapping labels back.

Verdict heads (:mod:`flame_reward.models.heads`): when the scorer holds a head set, an item
whose task, verdict labels and exact criteria match a trained route gets that head's
output added to its verdict log-probabilities (read from the same forward pass's hidden
state); every other item's verdict is the raw model's, bit for bit. ``Verdict.head`` names
the route that took part, or is ``None``.

Prefix sharing: when rows of one pass start with the same ``prefix_min_tokens`` or more
tokens (the N candidates of one prompt, the two orders of a pair, the instruction every
row of a task type shares) and the backend supports it, the shared prefix is computed
once and its KV cache reused for every row's own suffix (:mod:`flame_reward.prefix`).
Results equal the unshared computation within float rounding (tested to 1e-4).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flame_reward.models.backends import Backend
from flame_reward.models.heads import Head, HeadSet
from flame_reward.encoding import Encoded, encode, label_token_ids
from flame_reward.errors import InvalidInput, VerdictParseError
from flame_reward.generation import batches_needed, generate_texts
from flame_reward.prefix import PrefixNode, plan_prefixes
from flame_reward.progress import progress_bar
from flame_reward.results import Generation, ItemError, Verdict
from flame_reward.tasks.base import TaskType
from flame_reward.tasks.registry import get_task_type

OnError = Literal["raise", "return"]
#: Label sets whose token ids are kept (least recently used dropped): callers may send a
#: new label set with every request, so the cache must not grow with them.
LABEL_CACHE_SIZE = 256


@dataclass
class _Request:
    ids: list[int]
    labels: list[list[int]]
    head: Head | None = None
    logp: list[float] = field(default_factory=list)
    hidden: Any = None
    raw_logp: list[float] = field(default_factory=list)


@dataclass
class Cost:
    """Running totals of the work done, for cost reports (TRL logs, server metrics).

    ``forwards`` counts batched scoring passes and ``tokens`` the tokens of the rows they
    score, whether or not a shared prefix spared recomputing some of them; with prefix
    sharing, ``prefix_forwards`` counts the passes that computed shared prefixes and
    ``reused_tokens`` the row tokens served from a shared prefix instead of recomputed
    (net of computing each prefix once). ``snapshot()`` keeps its three keys.
    """

    forwards: int = 0
    tokens: int = 0
    judgments: int = 0
    prefix_forwards: int = 0
    reused_tokens: int = 0

    def snapshot(self) -> dict[str, int]:
        return {"forwards": self.forwards, "tokens": self.tokens, "judgments": self.judgments}


class Scorer:
    """Computes verdicts for any registered task type with one backend.

    ``batch_size`` bounds rows per forward pass and ``max_batch_tokens`` bounds padded
    tokens per pass (long inputs get smaller batches rather than exhausting memory).
    Rows are sorted by length before batching so padding stays small; results always come
    back in input order. ``prefix_min_tokens``: rows sharing at least this many leading
    tokens compute them once (when the backend can; ``None`` or 0 turns it off).
    """

    def __init__(
        self,
        backend: Backend,
        tokenizer: Any,
        *,
        batch_size: int = 8,
        max_length: int = 2048,
        max_batch_tokens: int = 16384,
        prefix_min_tokens: int | None = 64,
        heads: HeadSet | None = None,
    ) -> None:
        if batch_size < 1:
            raise InvalidInput("batch_size", f"must be >= 1, got {batch_size}")
        if prefix_min_tokens is not None and prefix_min_tokens < 0:
            raise InvalidInput("prefix_min_tokens", f"must be >= 0 or None, got {prefix_min_tokens}")
        self.prefix_min_tokens = prefix_min_tokens
        self.backend = backend
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_batch_tokens = max_batch_tokens
        if heads is not None and not getattr(backend, "supports_hidden", False):
            raise InvalidInput("heads", f"the {backend.name} backend does not return hidden states, which "
                                        f"verdict heads read; use the torch backend")
        #: Trained verdict heads (``None``: every verdict is the raw model's).
        self.heads = heads
        self.cost = Cost()
        self._label_cache: OrderedDict[tuple[str, ...], list[list[int]]] = OrderedDict()

    # -- public -------------------------------------------------------------------------
    def judge(
        self,
        task: str | TaskType,
        examples: Iterable[Mapping[str, Any]],
        *,
        on_error: OnError = "raise",
        progress: bool = False,
        both_orders: bool = True,
    ) -> list[Verdict | ItemError]:
        """Verdicts for ``examples`` in input order.

        With ``on_error="raise"`` the first invalid example raises :class:`InvalidInput`
        (its message names the field and the item index); with ``"return"`` it becomes an
        :class:`ItemError` in its slot and the others are still judged.
        ``both_orders=False`` scores pairwise tasks in the given order only (for bias
        measurements; the debiased score needs both).
        """
        task_type, prepared, requests = self._prepare(task, examples, on_error, both_orders)
        self._score(requests, progress=progress, desc=f"judging ({task_type.name})")
        results: list[Verdict | ItemError] = []
        cursor = 0
        for item in prepared:
            if isinstance(item, ItemError):
                results.append(item)
                continue
            _, example, labels, encs = item
            dists, raws = [], []
            head = requests[cursor].head
            for _ in encs:
                dists.append(_normalise(labels, requests[cursor].logp))
                if head is not None:
                    raws.append(_normalise(labels, requests[cursor].raw_logp))
                cursor += 1
            combined = _combine(task_type, labels, dists)
            summary = task_type.summarize(combined, example)
            raw_score = task_type.summarize(_combine(task_type, labels, raws), example).score if raws else None
            self.cost.judgments += 1
            results.append(
                Verdict(
                    task=task_type.name,
                    label=summary.label,
                    score=summary.score,
                    distribution=combined,
                    orders=tuple(dists),
                    tokens=sum(len(e.ids) for e in encs),
                    truncated=_truncated_fields(task_type, encs),
                    head=head.route.name if head is not None else None,
                    raw_score=raw_score,
                )
            )
        return results

    def features(
        self,
        task: str | TaskType,
        examples: Iterable[Mapping[str, Any]],
        *,
        progress: bool = False,
    ) -> list[list[tuple[list[float], Any]] | ItemError]:
        """What verdict heads are trained on: for each example, for each presentation order,
        the raw model's verdict-label log-probabilities (before renormalising) and the
        hidden state at the verdict position (``[d]`` float32). Heads are not applied."""
        if not getattr(self.backend, "supports_hidden", False):
            raise InvalidInput("backend", f"the {self.backend.name} backend does not return hidden states")
        task_type, prepared, requests = self._prepare(task, examples, "return", True, route=False)
        self._score(requests, progress=progress, desc=f"features ({task_type.name})", hidden=True)
        out: list[list[tuple[list[float], Any]] | ItemError] = []
        cursor = 0
        for item in prepared:
            if isinstance(item, ItemError):
                out.append(item)
                continue
            orders = []
            for _ in item[3]:
                orders.append((list(requests[cursor].logp), requests[cursor].hidden))
                cursor += 1
            out.append(orders)
        return out

    def _prepare(self, task: str | TaskType, examples: Iterable[Mapping[str, Any]], on_error: OnError,
                 both_orders: bool, route: bool = True) -> tuple[TaskType, list[Any], list[_Request]]:
        """Validate, render and encode every example; one request per presentation order."""
        task_type = get_task_type(task)
        if task_type.generative:
            raise InvalidInput("task", f"{task_type.name!r} is open-ended; use generate()")
        examples = list(examples)
        prepared: list[tuple[int, dict[str, Any], list[str], list[Encoded]] | ItemError] = []
        for index, raw in enumerate(examples):
            try:
                example = task_type.validate(raw)
                labels = task_type.verdicts(example)
                shows = [example]
                if task_type.swap is not None and both_orders:
                    shows.append(task_type.swapped(example))
                reserve = max(len(s) for s in self._labels(labels))
                encs = [
                    encode(self.tokenizer, task_type.render(s), task_type.truncatable(), self.max_length, reserve)
                    for s in shows
                ]
                prepared.append((index, example, labels, encs))
            except InvalidInput as exc:
                if on_error == "raise":
                    raise InvalidInput(exc.field, f"{exc.reason} (item {index})") from exc
                prepared.append(ItemError(index, exc.field, exc.reason))
        requests = []
        for item in prepared:
            if isinstance(item, ItemError):
                continue
            _, example, labels, encs = item
            head = self.heads.head_for(task_type.name, example, labels) if (route and self.heads) else None
            requests.extend(_Request(enc.ids, self._labels(labels), head) for enc in encs)
        return task_type, prepared, requests

    def generate(
        self,
        task: str | TaskType,
        examples: Iterable[Mapping[str, Any]],
        *,
        rationale: bool = True,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        num_samples: int = 1,
        seed: int | None = None,
        on_error: OnError = "raise",
        progress: bool = False,
    ) -> list[Generation | ItemError]:
        """Generation mode: the judge writes its answer (a rationale then ``Verdict: X`` when
        ``rationale``), and the verdict is parsed from the text. A text with no readable
        verdict is reported in :attr:`Generation.error`, never turned into a score.
        With ``num_samples > 1`` (sampling), ``samples`` holds every text and ``label`` is
        the majority verdict among those that parsed.
        """
        task_type = get_task_type(task)
        examples = list(examples)
        items: list[tuple[int, dict[str, Any], Encoded] | ItemError] = []
        for index, raw in enumerate(examples):
            try:
                example = task_type.validate(raw)
                enc = encode(self.tokenizer, task_type.render(example, rationale), task_type.truncatable(),
                             self.max_length, max_new_tokens)
                items.append((index, example, enc))
            except InvalidInput as exc:
                if on_error == "raise":
                    raise InvalidInput(exc.field, f"{exc.reason} (item {index})") from exc
                items.append(ItemError(index, exc.field, exc.reason))
        valid = [it for it in items if not isinstance(it, ItemError)]
        inputs = [enc.ids for _, _, enc in valid]
        # One seed for every batch: the judge's sampled rationales keep the draws they always had.
        texts = generate_texts(self.backend, self.tokenizer, inputs, batch_size=self.batch_size,
                               max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                               num_samples=num_samples, seed=seed, seed_policy="same", progress=progress,
                               desc=f"generating ({task_type.name})")
        self.cost.tokens += sum(len(ids) for ids in inputs)
        self.cost.forwards += batches_needed(len(inputs), self.batch_size)
        results: list[Generation | ItemError] = []
        vi = 0
        for it in items:
            if isinstance(it, ItemError):
                results.append(it)
                continue
            _, example, _ = it
            samples = texts[vi]
            vi += 1
            results.append(_parse_generation(task_type, example, samples))
        return results

    # -- internals ----------------------------------------------------------------------
    def _labels(self, labels: Sequence[str]) -> list[list[int]]:
        key = tuple(labels)
        ids = self._label_cache.get(key)
        if ids is None:
            ids = self._label_cache[key] = label_token_ids(self.tokenizer, labels)
            if len(self._label_cache) > LABEL_CACHE_SIZE:
                self._label_cache.popitem(last=False)
        else:
            self._label_cache.move_to_end(key)
        return ids

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped into length-sorted batches bounded by rows and padded tokens."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            width = lengths[i]  # sorted ascending: the newest row is the widest
            if current and (len(current) >= self.batch_size or width * (len(current) + 1) > self.max_batch_tokens):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _score(self, requests: list[_Request], *, progress: bool, desc: str, hidden: bool = False) -> None:
        """Fill ``logp`` (one log-probability per label) for every request; a request on a
        head's route gets the head's output added (``hidden``: keep every hidden state)."""
        if not requests:
            return
        bar = progress_bar(total=len(requests), desc=desc, enabled=progress, unit="fwd")
        rows = [r.ids for r in requests]
        wants = [sorted({seq[0] for seq in r.labels}) for r in requests]
        hiddens: list[Any] | None = [None] * len(rows) if hidden or any(r.head for r in requests) else None
        found = self._logprobs(rows, [1] * len(rows), wants, bar, hiddens)
        bar.close()
        for i, (r, got) in enumerate(zip(requests, found)):
            r.logp = [got[seq[0]][0] for seq in r.labels]
            if hiddens is not None:
                r.hidden = hiddens[i]
        self._score_continuations(requests)
        for r in requests:
            if r.head is not None:
                r.raw_logp = r.logp
                r.logp = [lp + d for lp, d in zip(r.logp, r.head.delta(r.hidden))]

    def _score_continuations(self, requests: list[_Request]) -> None:
        """Add the log-probabilities of label tokens after the first (multi-token labels)."""
        jobs = [(i, k, seq) for i, r in enumerate(requests) for k, seq in enumerate(r.labels) if len(seq) > 1]
        if not jobs:
            return
        inputs = [requests[i].ids + seq[:-1] for i, _, seq in jobs]
        keeps = [len(seq) - 1 for _, _, seq in jobs]
        wants = [sorted(set(seq[1:])) for _, _, seq in jobs]
        found = self._logprobs(inputs, keeps, wants, None)
        for (i, k, seq), got in zip(jobs, found):
            # The last len(rest) positions of this row predict rest[0], rest[1], ...
            requests[i].logp[k] += sum(got[tok][t] for t, tok in enumerate(seq[1:]))

    def _logprobs(
        self,
        rows: list[list[int]],
        keeps: list[int],
        wants: list[list[int]],
        bar: Any,
        hiddens: list[Any] | None = None,
    ) -> list[dict[int, list[float]]]:
        """For each row, ``{token: [log-probability at each of its last keeps[i] positions]}``.

        Rows sharing a long prefix are scored after computing that prefix once (when the
        backend supports it); the rest in ordinary length-sorted batches.
        """
        found: list[dict[int, list[float]]] = [{} for _ in rows]
        loose: list[int] = list(range(len(rows)))
        nodes: list[PrefixNode] = []
        if self.prefix_min_tokens and getattr(self.backend, "supports_prefix_sharing", False) and len(rows) > 1:
            loose, nodes = plan_prefixes(rows, self.prefix_min_tokens, keeps)
        self._run_batches(rows, keeps, wants, loose, None, 0, found, bar, hiddens)
        for node in nodes:
            self._run_node(rows, keeps, wants, node, None, found, bar, hiddens)
        return found

    def _run_node(self, rows: list[list[int]], keeps: list[int], wants: list[list[int]], node: PrefixNode,
                  parent: Any, found: list[dict[int, list[float]]], bar: Any, hiddens: list[Any] | None) -> None:
        members = node.all_rows()
        state = self.backend.prefix_state(rows[members[0]][node.start:node.end], parent)  # type: ignore[attr-defined]
        self.cost.prefix_forwards += 1
        self.cost.reused_tokens += (len(members) - 1) * (node.end - node.start)
        self._run_batches(rows, keeps, wants, node.rows, state, node.end, found, bar, hiddens)
        for child in node.children:
            self._run_node(rows, keeps, wants, child, state, found, bar, hiddens)

    def _run_batches(self, rows: list[list[int]], keeps: list[int], wants: list[list[int]], members: list[int],
                     state: Any, depth: int, found: list[dict[int, list[float]]], bar: Any,
                     hiddens: list[Any] | None = None) -> None:
        """Score ``members`` (their tokens after ``depth``, given ``state``) in batches;
        with ``hiddens``, also keep each row's hidden state at its last position there."""
        if not members:
            return
        for batch in self._batches([len(rows[i]) for i in members]):
            idx = [members[b] for b in batch]
            keep = max(keeps[i] for i in idx)
            tokens = sorted({t for i in idx for t in wants[i]})
            column = {tok: c for c, tok in enumerate(tokens)}
            extra = {"hidden": True} if hiddens is not None else {}
            if state is None:
                lp = self.backend.token_logprobs([rows[i] for i in idx], keep, tokens, **extra)
            else:
                lp = self.backend.token_logprobs_after(  # type: ignore[attr-defined]
                    state, [rows[i][depth:] for i in idx], keep, tokens, **extra)
            if hiddens is not None:
                lp, h = lp
                for row, i in enumerate(idx):
                    hiddens[i] = h[row]
            self.cost.forwards += 1
            self.cost.tokens += sum(len(rows[i]) for i in idx)
            values = lp.tolist()
            for row, i in enumerate(idx):
                offset = keep - keeps[i]
                found[i] = {tok: [values[row][offset + t][column[tok]] for t in range(keeps[i])] for tok in wants[i]}
            if bar is not None:
                bar.update(len(idx))


def _truncated_fields(task: TaskType, encs: list[Encoded]) -> tuple[str, ...]:
    """Truncated field names in terms of the original example (the swapped order's
    ``response_a`` is the original ``response_b``)."""
    names = set(encs[0].truncated)
    if len(encs) == 2 and task.swap is not None:
        a, b = task.swap.fields
        names |= {b if f == a else a if f == b else f for f in encs[1].truncated}
    return tuple(sorted(names))


def _normalise(labels: Sequence[str], logp: Sequence[float]) -> dict[str, float]:
    top = max(logp)
    weights = [math.exp(x - top) for x in logp]
    total = sum(weights)
    return {label: w / total for label, w in zip(labels, weights)}


def _combine(task: TaskType, labels: Sequence[str], dists: list[dict[str, float]]) -> dict[str, float]:
    """Average the presentation orders after mapping the swapped order's labels back."""
    if len(dists) == 1:
        return dict(dists[0])
    assert task.swap is not None
    back = task.swap.labels
    return {label: 0.5 * (dists[0][label] + dists[1][back.get(label, label)]) for label in labels}


def _parse_generation(task: TaskType, example: Mapping[str, Any], samples: list[str]) -> Generation:
    parsed: list[str] = []
    errors: list[str] = []
    for text in samples:
        try:
            parsed.append(task.parse(text, example))
        except VerdictParseError as exc:
            errors.append(str(exc))
    if not parsed:
        return Generation(task.name, samples[0], None, errors[0], tuple(samples))
    label = max(set(parsed), key=lambda x: (parsed.count(x), -parsed.index(x)))
    return Generation(task.name, samples[0], label, None, tuple(samples))


__all__ = ["Cost", "OnError", "Scorer"]
