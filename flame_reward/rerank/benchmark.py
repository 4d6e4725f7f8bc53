"""Measure Best-of-N strategies on HumanEval: rank each task's candidates, score the pick.

For every task: the strategies rank the candidates from the public task only
(:class:`~flame_reward.rerank.code.PublicTask`); then, separately, the harness runs the
hidden tests (:func:`flame_reward.humaneval.harness.evaluate_candidates`, cached) and
:func:`~flame_reward.humaneval.harness.score_task` turns the ranking into figures:

* random pass@1: the mean pass rate of the candidates (expected pass of a random pick);
* reranked top-1: the pass of the top-ranked candidate, ties among the best scores broken
  at random (the mean pass over the tied set; ``top1_first`` breaks them by lower index);
* oracle pass@n: whether any candidate passes.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from flame_reward.errors import DataError, InvalidInput
from flame_reward.humaneval.harness import ExecutionCache, evaluate_candidates, score_task
from flame_reward.humaneval.problems import Problem, load_samples
from flame_reward.progress import progress_bar
from flame_reward.rerank.code import EXECUTION_STRATEGIES, PublicTask, execution_signals, rank_code
from flame_reward.rerank.judging import VerdictCache
from flame_reward.rerank.ranking import JudgeLike
from flame_reward.rerank.strategies import JUDGE_STRATEGIES

STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
"""Where a generated function body ends (Codex / CodeT convention: a new top-level block)."""


def kind_of(strategy: str) -> str:
    """``baseline``, ``judge`` (the judge alone ranks) or ``execution`` (execution signals first)."""
    if strategy in JUDGE_STRATEGIES:
        return "judge"
    if strategy in EXECUTION_STRATEGIES:
        return "execution" if strategy == "examples_codet" else "execution+judge"
    return "baseline"


# -- samples -------------------------------------------------------------------------------
def read_samples(path: str | os.PathLike[str] | None, start: int = 0, n: int = 10) -> dict[str, list[str]]:
    """Completions by task id from a JSONL(.gz) of ``task_id`` / ``completion`` rows.

    Rows with ``sample_index`` are selected by index in ``[start, start + n)`` (the shared
    CodeGen-16B file); without it, by position within each task. ``path=None`` reads the
    shared CodeGen-16B samples. A task with fewer samples raises :class:`DataError`.
    """
    if path is None:
        return load_samples(None, start=start, n=n)
    if start < 0 or n < 1:
        raise InvalidInput("--start/--n", f"need start >= 0 and n >= 1, got {start}, {n}")
    rows = list(_read_jsonl(Path(path)))
    if rows and all("sample_index" in r for r in rows):
        return load_samples(path, start=start, n=n)
    by_task: dict[str, list[str]] = {}
    for number, row in enumerate(rows, 1):
        task_id, completion = row.get("task_id"), row.get("completion")
        if not isinstance(task_id, str) or not isinstance(completion, str):
            raise DataError(f"{path}: row {number} lacks a string task_id/completion")
        by_task.setdefault(task_id, []).append(completion)
    out = {}
    for task_id, completions in by_task.items():
        if len(completions) < start + n:
            raise DataError(f"{path}: {task_id} has {len(completions)} samples; asked for {start}..{start + n - 1}")
        out[task_id] = completions[start:start + n]
    return out


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"samples file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {number} is not JSON ({exc.msg})") from exc
                if not isinstance(row, dict):
                    raise DataError(f"{path}: line {number} is not a JSON object")
                yield row


def truncate_completion(text: str, stops: Sequence[str] = STOP_SEQUENCES) -> str:
    """Cut a generated body at the first stop sequence (a new top-level statement)."""
    cut = min((text.find(s) for s in stops if s in text), default=len(text))
    return text[:cut]


def generate_samples(
    backend: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    n: int,
    *,
    batch_size: int = 4,
    max_new_tokens: int = 300,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, list[str]]:
    """``n`` completions per problem from a causal LM through the core's backend
    (``backend.generate``, batched: ``batch_size`` prompts x ``n`` samples per call).

    The prompt is the problem's prompt as plain text (code completion); each completion is
    cut at :data:`STOP_SEQUENCES`."""
    out: dict[str, list[str]] = {}
    bar = progress_bar(total=len(problems), desc="generating samples", enabled=progress, unit="task")
    for start in range(0, len(problems), batch_size):
        chunk = problems[start:start + batch_size]
        ids = [tokenizer(p.prompt, add_special_tokens=True)["input_ids"] for p in chunk]
        rows = backend.generate(ids, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                num_samples=n, seed=seed + start)
        for k, problem in enumerate(chunk):
            texts = [tokenizer.decode(r, skip_special_tokens=True) for r in rows[k * n:(k + 1) * n]]
            out[problem.task_id] = [truncate_completion(t) for t in texts]
        bar.update(len(chunk))
    bar.close()
    return out


# -- the run -------------------------------------------------------------------------------
def pass_auc(scores: Sequence[Any], passed: Sequence[bool]) -> float | None:
    """How often a passing candidate outscores a failing one of the same task (ties count
    half): the ranking's discrimination, 0.5 at chance. ``None`` unless outcomes are mixed."""
    good = [s for s, p in zip(scores, passed) if p]
    bad = [s for s, p in zip(scores, passed) if not p]
    if not good or not bad:
        return None
    won = sum(1.0 if g > b else 0.5 if g == b else 0.0 for g in good for b in bad)
    return won / (len(good) * len(bad))


@dataclass
class StrategyTotals:
    """Running figures of one strategy over the tasks."""

    strategy: str
    tasks: int = 0
    random_pass1: float = 0.0
    top1: float = 0.0
    top1_first: float = 0.0
    oracle: float = 0.0
    judge_calls: int = 0
    cached_calls: int = 0
    judgments: int = 0
    judge_errors: int = 0
    seconds: float = 0.0
    judge_seconds: float = 0.0
    exec_seconds: float = 0.0
    auc_sum: float = 0.0
    auc_tasks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, record: dict[str, Any]) -> None:
        self.tasks += 1
        self.random_pass1 += record["random_pass1"]
        self.top1 += record["top1"]
        self.top1_first += record["top1_first"]
        self.oracle += record["oracle"]
        self.judge_calls += record["judge_calls"]
        d = record["details"]
        self.cached_calls += d.get("cached_calls", 0)
        self.judgments += d.get("judgments", 0)
        self.judge_errors += d.get("judge_errors", 0)
        self.seconds += record["seconds"]
        self.judge_seconds += d.get("judge_seconds", 0.0)
        self.exec_seconds += d.get("exec_seconds", 0.0)
        scores = [tuple(x) if isinstance(x, list) else x for x in record["scores"]]
        auc = pass_auc(scores, record["passed"])
        if auc is not None:
            self.auc_sum += auc
            self.auc_tasks += 1

    def summary(self) -> dict[str, Any]:
        t = max(self.tasks, 1)
        return {
            "strategy": self.strategy,
            "kind": kind_of(self.strategy),
            "tasks": self.tasks,
            "random_pass1": round(100 * self.random_pass1 / t, 2),
            "top1": round(100 * self.top1 / t, 2),
            "top1_first": round(100 * self.top1_first / t, 2),
            "oracle": round(100 * self.oracle / t, 2),
            "judge_calls": self.judge_calls,
            "judge_calls_per_task": round(self.judge_calls / t, 2),
            "cached_calls": self.cached_calls,
            "judgments": self.judgments,
            "judge_errors": self.judge_errors,
            "seconds": round(self.seconds, 1),
            "judge_seconds": round(self.judge_seconds, 1),
            "exec_seconds": round(self.exec_seconds, 1),
            "pass_auc": round(100 * self.auc_sum / self.auc_tasks, 2) if self.auc_tasks else None,
            "mixed_tasks": self.auc_tasks,
            **self.extra,
        }


def select_tasks(problems: dict[str, Problem], samples: dict[str, list[str]], limit: int | None,
                 tasks: Sequence[str] | None = None) -> list[str]:
    """Task ids with samples, in HumanEval order; ``tasks`` restricts, ``limit`` keeps the first N."""
    ids = [t for t in problems if t in samples]
    if tasks:
        unknown = [t for t in tasks if t not in problems]
        if unknown:
            raise InvalidInput("--tasks", f"unknown task {unknown[0]!r}")
        wanted = set(tasks)
        ids = [t for t in ids if t in wanted]
    if limit is not None:
        if limit < 1:
            raise InvalidInput("--limit", f"must be >= 1, got {limit}")
        ids = ids[:limit]
    if not ids:
        raise InvalidInput("samples", "no sample belongs to a known HumanEval task")
    return ids


def run_benchmark(
    problems: dict[str, Problem],
    samples: dict[str, list[str]],
    strategies: Sequence[str],
    *,
    judge: JudgeLike | None = None,
    generated_tests: dict[str, list[str]] | None = None,
    task_ids: Sequence[str] | None = None,
    exec_cache: ExecutionCache | None = None,
    verdict_cache: VerdictCache | None = None,
    workers: int | None = None,
    seed: int = 0,
    rounds: int | None = None,
    max_group: int = 4,
    tiebreak: str = "round_robin",
    sinks: dict[str, TextIO] | None = None,
    progress: bool = True,
    on_task: Callable[[str, dict[str, dict[str, Any]]], None] | None = None,
    previous: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Rank every task's candidates with each strategy and score the picks.

    Per-task records go to ``sinks[strategy]`` (JSONL) as they are made; returns one
    summary per strategy. Rankers see a :class:`PublicTask`; the hidden tests are run only
    by the final scoring, after the ranking. ``previous`` holds records of an interrupted
    run by ``(task_id, strategy)``: a task with a record for every strategy is not ranked
    again, and its records (wall times included) count as they are.
    """
    generated_tests = generated_tests or {}
    task_ids = list(task_ids) if task_ids is not None else select_tasks(problems, samples, None)
    totals = {s: StrategyTotals(s) for s in strategies}
    bar = progress_bar(total=len(task_ids), desc=f"rerank {','.join(strategies)}", enabled=progress, unit="task")
    previous = previous or {}
    for task_id in task_ids:
        problem, completions = problems[task_id], samples[task_id]
        old = [previous.get((task_id, s)) for s in strategies]
        if all(r is not None and r["n"] == len(completions) for r in old):
            for strategy, record in zip(strategies, old):
                assert record is not None
                totals[strategy].add(record)
                if sinks and strategy in sinks:
                    sinks[strategy].write(json.dumps(record) + "\n")
            bar.update(1)
            continue
        public = PublicTask.from_problem(problem)
        rng_seed = seed + _task_number(task_id)
        signals = None
        records: dict[str, dict[str, Any]] = {}
        for strategy in strategies:
            started = time.perf_counter()
            if strategy in EXECUTION_STRATEGIES and signals is None:
                signals = execution_signals(public, completions, generated_tests.get(task_id, []),
                                            cache=exec_cache, workers=workers)
            ranking = rank_code(public, completions, strategy, judge=judge, generated_tests=generated_tests.get(task_id, []),
                                exec_cache=exec_cache, verdict_cache=verdict_cache, workers=workers, seed=rng_seed,
                                rounds=rounds, max_group=max_group, tiebreak=tiebreak, signals=signals)
            seconds = time.perf_counter() - started
            records[strategy] = {"ranking": ranking, "seconds": seconds}
        # Final scoring only: the hidden tests, after every strategy has ranked.
        passed = evaluate_candidates(problem, completions, cache=exec_cache, workers=workers)
        out_records: dict[str, dict[str, Any]] = {}
        for strategy, item in records.items():
            ranking = item["ranking"]
            score = score_task(task_id, passed, ranking.scores)
            record = {
                "task_id": task_id,
                "strategy": strategy,
                "n": score.n,
                "passed": [bool(p) for p in passed],
                "n_passed": score.n_passed,
                "random_pass1": score.random_pass1,
                "oracle": score.oracle,
                "top1": score.top1,
                "top1_first": score.top1_first,
                "pick": ranking.order[0],
                "pick_passed": bool(passed[ranking.order[0]]),
                "order": ranking.order,
                "scores": [list(s) if isinstance(s, tuple) else s for s in ranking.scores],
                "judge_calls": ranking.judge_calls,
                "seconds": round(item["seconds"], 3),
                "details": ranking.details,
            }
            totals[strategy].add(record)
            out_records[strategy] = record
            if sinks and strategy in sinks:
                sinks[strategy].write(json.dumps(record) + "\n")
                sinks[strategy].flush()
        if on_task is not None:
            on_task(task_id, out_records)
        first = totals[strategies[0]]
        bar.set_postfix_str(f"{strategies[0]} top-1 {100 * first.top1 / first.tasks:.1f}")
        bar.update(1)
    bar.close()
    return {s: t.summary() for s, t in totals.items()}


def _task_number(task_id: str) -> int:
    match = re.search(r"(\d+)$", task_id)
    return int(match.group(1)) if match else random.Random(task_id).randrange(1 << 16)


__all__ = ["STOP_SEQUENCES", "StrategyTotals", "generate_samples", "kind_of", "pass_auc", "read_samples", "run_benchmark",
           "select_tasks", "truncate_completion"]
