"""Candidates seen through a judge: batched pair and point verdicts, counted and cached.

A :class:`JudgeView` holds the candidates' texts and how to turn one or two of them into a
task example. Strategies ask it for ``P(i beats j)`` for a batch of index pairs (one
``judge.judge`` call per batch) or for pointwise scores; it

* skips pairs of identical texts (the debiased score of a pair of identical texts is
  exactly 0.5: both presentations are the same text, and the core averages A in one order
  with B in the other);
* judges each unordered pair once per view: with both presentation orders averaged,
  ``P(b beats a) = 1 - P(a beats b)`` exactly, so ``(j, i)`` is answered from ``(i, j)``;
* looks verdicts up in a :class:`VerdictCache` (SQLite, keyed by the judge's fingerprint,
  the task type and a hash of the example) before judging, and stores new ones.

Cost is counted in presentations (see :class:`~flame_reward.rerank.ranking.Ranking`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame_reward.errors import DataError, InvalidInput
from flame_reward.rerank.ranking import JudgeLike
from flame_reward.tasks.base import TaskType
from flame_reward.tasks.registry import get_task_type


def _cache_root() -> Path:
    root = os.environ.get("FLAME_REWARD_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "flame-reward"


def default_verdict_cache_path() -> Path:
    """``<flame-reward cache>/rerank/verdicts.sqlite``."""
    return _cache_root() / "rerank" / "verdicts.sqlite"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def judge_fingerprint(judge: Any) -> str | None:
    """What identifies a judge's verdicts: model, weights path, adapter hash, dtype and the
    token budget (truncation changes what the judge reads). ``None`` (no caching) for a
    judge that neither has a ``fingerprint`` attribute nor a ``model_name``."""
    own = getattr(judge, "fingerprint", None)
    if isinstance(own, str) and own:
        return own
    name = getattr(judge, "model_name", None)
    if not name:
        return None
    info = dict(getattr(judge, "info", None) or {})
    scorer = getattr(judge, "scorer", None)
    return _digest({
        "model": name,
        "path": info.get("path"),
        "adapter_sha256": info.get("adapter_sha256"),
        "dtype": info.get("dtype"),
        "max_length": getattr(scorer, "max_length", None),
        # Verdict heads change the verdicts on their routes without changing the weights.
        "heads": _heads_identity(getattr(scorer, "heads", None)),
    })


def _heads_identity(heads: Any) -> Any:
    if heads is None:
        return None
    return {"name": heads.name, "path": heads.path,
            "routes": [r.to_dict() for r in heads.routes],
            "weights": [float(h.weight.double().abs().sum()) + float(h.bias.double().abs().sum()) for h in heads.heads]}


class VerdictCache:
    """Judge scores keyed by ``sha256(judge fingerprint, task type, example)`` (SQLite file).

    Safe to share between processes; use one instance per thread.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_verdict_cache_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, score REAL)")
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise DataError(f"cannot open verdict cache {self.path}: {exc}") from exc

    def get_many(self, keys: Sequence[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        for key in dict.fromkeys(keys):
            row = self._db.execute("SELECT score FROM verdicts WHERE key=?", (key,)).fetchone()
            if row is not None:
                found[key] = float(row[0])
        return found

    def put_many(self, items: Mapping[str, float]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?)", list(items.items()))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    def close(self) -> None:
        self._db.close()


@dataclass
class Usage:
    """Work a view asked of the judge (see :class:`~flame_reward.rerank.ranking.Ranking`)."""

    calls: int = 0
    cached_calls: int = 0
    judgments: int = 0
    errors: int = 0
    batches: int = 0
    seconds: float = 0.0

    def as_details(self) -> dict[str, Any]:
        return {"judgments": self.judgments, "cached_calls": self.cached_calls, "judge_errors": self.errors,
                "judge_batches": self.batches, "judge_seconds": round(self.seconds, 3)}


PairExample = Callable[[str, str], dict[str, Any]]
PointExample = Callable[[str], dict[str, Any]]


class JudgeView:
    """``n`` candidate texts seen through one judge.

    ``pair_example(a, b)`` / ``point_example(text)`` build the task examples for
    ``pair_task`` / ``point_task``. ``judge`` may be ``None`` for judge-free strategies
    (asking it for a verdict then raises :class:`InvalidInput`).
    """

    def __init__(
        self,
        texts: Sequence[str],
        judge: JudgeLike | None,
        *,
        pair_task: str | TaskType,
        pair_example: PairExample,
        point_task: str | TaskType,
        point_example: PointExample,
        cache: VerdictCache | None = None,
    ) -> None:
        self.texts = list(texts)
        self.judge = judge
        self.pair_task = pair_task
        self.point_task = point_task
        self.pair_example = pair_example
        self.point_example = point_example
        self.cache = cache
        self.fingerprint = judge_fingerprint(judge) if judge is not None else None
        self.usage = Usage()
        self._pairs: dict[tuple[str, str], float] = {}
        self._points: dict[str, float] = {}

    @property
    def n(self) -> int:
        return len(self.texts)

    def distinct(self, indices: Sequence[int]) -> list[int]:
        """The first index of each distinct text among ``indices`` (input order kept)."""
        seen: dict[str, int] = {}
        for i in indices:
            seen.setdefault(self.texts[i], i)
        return list(seen.values())

    # -- pairwise ---------------------------------------------------------------------------
    def compare(self, pairs: Sequence[tuple[int, int]]) -> list[float]:
        """``P(candidate i beats candidate j)`` for each ``(i, j)``, judged in one batch."""
        task = get_task_type(self.pair_task)
        mirror = task.swap is not None
        keys: list[tuple[str, str] | None] = []
        flipped: list[bool] = []
        for i, j in pairs:
            a, b = self.texts[i], self.texts[j]
            if a == b:
                keys.append(None)
                flipped.append(False)
                continue
            flip = mirror and _text_key(a) > _text_key(b)
            keys.append((b, a) if flip else (a, b))
            flipped.append(flip)
        todo = [k for k in dict.fromkeys(k for k in keys if k is not None) if k not in self._pairs]
        if todo:
            per = 2 if mirror else 1
            examples = [self.pair_example(a, b) for a, b in todo]
            scores = self._judge(task, examples)
            self.usage.calls += per * len(todo)
            self.usage.judgments += len(todo)
            self.usage.cached_calls += per * scores.cached
            self._pairs.update(zip(todo, scores.values))
        out = []
        for key, flip in zip(keys, flipped):
            if key is None:
                out.append(0.5)
            else:
                p = self._pairs[key]
                out.append(1.0 - p if flip else p)
        return out

    # -- pointwise --------------------------------------------------------------------------
    def rate(self, indices: Sequence[int]) -> list[float]:
        """The pointwise score (``Verdict.score``) of each candidate, judged in one batch."""
        task = get_task_type(self.point_task)
        todo = [t for t in dict.fromkeys(self.texts[i] for i in indices) if t not in self._points]
        if todo:
            scores = self._judge(task, [self.point_example(t) for t in todo])
            per = 2 if task.swap is not None else 1
            self.usage.calls += per * len(todo)
            self.usage.judgments += len(todo)
            self.usage.cached_calls += per * scores.cached
            self._points.update(zip(todo, scores.values))
        return [self._points[self.texts[i]] for i in indices]

    # -- internals --------------------------------------------------------------------------
    def _judge(self, task: TaskType, examples: list[dict[str, Any]]) -> _Scores:
        if self.judge is None:
            raise InvalidInput("judge", f"this strategy needs a judge (task type {task.name!r})")
        keys = [_digest([self.fingerprint, task.name, ex]) for ex in examples] if self.fingerprint else []
        found = self.cache.get_many(keys) if (self.cache is not None and keys) else {}
        missing = [k for k in range(len(examples)) if not keys or keys[k] not in found]
        values: list[float] = [found[keys[k]] if keys and keys[k] in found else 0.5 for k in range(len(examples))]
        if missing:
            started = time.perf_counter()
            verdicts = self.judge.judge(task, [examples[k] for k in missing], on_error="return")
            self.usage.seconds += time.perf_counter() - started
            self.usage.batches += 1
            fresh: dict[str, float] = {}
            for k, verdict in zip(missing, verdicts):
                score = getattr(verdict, "score", None)
                if score is None:  # an ItemError: no information, counted, never cached
                    self.usage.errors += 1
                    continue
                values[k] = float(score)
                if keys:
                    fresh[keys[k]] = float(score)
            if self.cache is not None and fresh:
                self.cache.put_many(fresh)
        return _Scores(values, len(examples) - len(missing))


@dataclass
class _Scores:
    values: list[float]
    cached: int


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def text_view(
    prompt: str,
    candidates: Sequence[str],
    judge: JudgeLike | None,
    *,
    pair_task: str = "pairwise",
    point_task: str = "pointwise",
    criteria: str | None = None,
    pair_options: Mapping[str, Any] | None = None,
    point_options: Mapping[str, Any] | None = None,
    cache: VerdictCache | None = None,
) -> JudgeView:
    """A view of text responses to ``prompt`` through the built-in pairwise / pointwise tasks
    (or any registered task types with the same fields). ``pair_options`` /
    ``point_options`` are added to every example (e.g. ``{"scale": (1, 10)}``)."""
    shared: dict[str, Any] = {"criteria": criteria} if criteria is not None else {}
    pair_extra = {**shared, **dict(pair_options or {})}
    point_extra = {**shared, **dict(point_options or {})}
    return JudgeView(
        candidates, judge, cache=cache,
        pair_task=pair_task,
        pair_example=lambda a, b: {"prompt": prompt, "response_a": a, "response_b": b, **pair_extra},
        point_task=point_task,
        point_example=lambda t: {"prompt": prompt, "response": t, **point_extra},
    )


__all__ = ["JudgeView", "Usage", "VerdictCache", "default_verdict_cache_path", "judge_fingerprint", "text_view"]
