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

import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from flame_reward.errors import InvalidInput
from flame_reward.humaneval.harness import ExecutionCache, evaluate_candidates, score_task
from flame_reward.humaneval.problems import Problem
from flame_reward.progress import progress_bar
from flame_reward.rerank.code import EXECUTION_STRATEGIES, PublicTask, execution_signals, rank_code
from flame_reward.rerank.judging import VerdictCache
from flame_reward.rerank.ranking import JudgeLike
from flame_reward.rerank.strategies import JUDGE_STRATEGIES


def kind_of(strategy: str) -> str:
    """``baseline``, ``judge`` (the judge alone ranks) or ``execution`` (execution signals first)."""
    if strategy in JUDGE_STRATEGIES:
        return "judge"
    if strategy in EXECUTION_STRATEGIES:
        return "execution+judge" if strategy == "hybrid" else "execution"
    return "baseline"


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
    max_tests: int | None = 100,
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
                                            cache=exec_cache, workers=workers, max_tests=max_tests)
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


__all__ = ["StrategyTotals", "kind_of", "pass_auc", "run_benchmark", "select_tasks"]
