"""Best-of-N for code: the judge's view of candidate programs and the execution signals.

Everything here reads a :class:`PublicTask` (task id, prompt, entry point) — the hidden
tests and the canonical solution never reach this module, the judge or the sandbox runs
it starts. Execution signals:

* the **prompt examples' pass rate**: the examples shown in the prompt's own docstring,
  turned into asserts by :mod:`flame_reward.humaneval.examples`;
* the **CodeT score**: agreement of the candidates on the tests the model generated
  beside them (:mod:`flame_reward.humaneval.codet`).

Executions go through the harness's cached executor, keyed exactly as the harness keys
them, so a slice the harness has measured costs no new sandbox run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.humaneval.codet import (
    EXAMPLE_ASSERT_TIMEOUT,
    GENERATED_ASSERT_TIMEOUT,
    GENERATED_TOTAL_TIMEOUT,
    Executor,
    codet_scores,
    example_pass_rates,
)
from flame_reward.humaneval.examples import problem_example_asserts
from flame_reward.humaneval.harness import ExecutionCache, execute_batch
from flame_reward.humaneval.sandbox import assert_job
from flame_reward.rerank.judging import JudgeView, VerdictCache
from flame_reward.rerank.ranking import JudgeLike, Ranking
from flame_reward.rerank.strategies import JUDGE_STRATEGIES, run_strategy

CODE_STRATEGIES = ("random", *JUDGE_STRATEGIES, "examples_codet", "hybrid")
"""Strategies :func:`rank_code` knows."""
EXECUTION_STRATEGIES = ("examples_codet", "hybrid")


@dataclass(frozen=True)
class PublicTask:
    """What a ranker may know about a coding task: its id, prompt and entry point."""

    task_id: str
    prompt: str
    entry_point: str

    @classmethod
    def from_problem(cls, problem: Any) -> PublicTask:
        """Copy only the public fields of a HumanEval :class:`~flame_reward.humaneval.problems.Problem`."""
        return cls(problem.task_id, problem.prompt, problem.entry_point)


def function_header(prompt: str, entry_point: str) -> str | None:
    """The ``def entry_point(...) -> ...:`` line(s) of ``prompt``, without the docstring."""
    match = re.search(rf"^([ \t]*)def\s+{re.escape(entry_point)}\s*\(", prompt, re.M)
    if match is None:
        return None
    depth = 0
    for k in range(match.end() - 1, len(prompt)):
        ch = prompt[k]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == ":" and depth == 0:
            return prompt[match.start():k + 1]
    return None


def candidate_code(task: PublicTask, completion: str) -> str:
    """A candidate as the judge sees it: the entry point's signature and the completed body
    (the docstring is already in the problem statement). Falls back to prompt + completion
    when the signature cannot be found."""
    header = function_header(task.prompt, task.entry_point)
    body = completion.rstrip()
    if header is None:
        return (task.prompt + completion).rstrip()
    return f"{header}\n{body}" if body.strip() else f"{header}\n    pass"


def code_view(
    task: PublicTask,
    completions: Sequence[str],
    judge: JudgeLike | None,
    *,
    cache: VerdictCache | None = None,
    pair_task: str = "code_correctness",
    point_task: str = "code_correctness_pointwise",
) -> JudgeView:
    """The candidates seen through the judge's ``code_correctness`` task types."""
    problem = task.prompt.rstrip()
    return JudgeView(
        [candidate_code(task, c) for c in completions], judge, cache=cache,
        pair_task=pair_task, pair_example=lambda a, b: {"problem": problem, "code_a": a, "code_b": b},
        point_task=point_task, point_example=lambda c: {"problem": problem, "code": c},
    )


def cached_executor(
    task_id: str,
    *,
    cache: ExecutionCache | None,
    workers: int | None = None,
    assert_timeout: float,
    total_timeout: float | None,
    prelude: str = "",
    entry_points: Sequence[str] = (),
) -> Executor:
    """An :data:`~flame_reward.humaneval.codet.Executor` over the harness's cached sandbox runs.

    ``prelude`` (the task's prompt) and ``entry_points`` go to every job, as in
    :class:`~flame_reward.humaneval.sandbox.Job`.
    """

    def execute(programs: Sequence[str], asserts: Sequence[str]) -> list[list[bool]]:
        if not asserts:
            return [[] for _ in programs]
        jobs = [(task_id, assert_job(p, asserts, assert_timeout, total_timeout, prelude=prelude,
                                     entry_points=entry_points)) for p in programs]
        return execute_batch(jobs, cache=cache, workers=workers)

    return execute


@dataclass(frozen=True)
class ExecutionSignals:
    """Per-candidate prompt-example pass rates and CodeT scores, and what they rest on."""

    example_rates: list[float]
    codet: list[float]
    n_examples: int
    n_tests: int
    seconds: float

    def keys(self) -> list[tuple[float, float]]:
        """``(examples pass rate, CodeT score)`` per candidate: the ranking signal."""
        return list(zip(self.example_rates, self.codet))


def execution_signals(
    task: PublicTask,
    completions: Sequence[str],
    generated_tests: Sequence[str] = (),
    *,
    cache: ExecutionCache | None = None,
    workers: int | None = None,
    max_tests: int | None = 100,
    example_executor: Executor | None = None,
    test_executor: Executor | None = None,
) -> ExecutionSignals:
    """Run the candidates on the prompt's examples and on the generated tests.

    The executors default to the harness's cached sandbox with the harness's timeouts.
    """
    if not isinstance(task, PublicTask):
        raise InvalidInput("task", f"expected a PublicTask (public fields only), got {type(task).__name__}")
    started = time.perf_counter()
    entry_points = (task.entry_point,)
    example_executor = example_executor or cached_executor(
        task.task_id, cache=cache, workers=workers, assert_timeout=EXAMPLE_ASSERT_TIMEOUT, total_timeout=None,
        prelude=task.prompt, entry_points=entry_points)
    test_executor = test_executor or cached_executor(
        task.task_id, cache=cache, workers=workers, assert_timeout=GENERATED_ASSERT_TIMEOUT,
        total_timeout=GENERATED_TOTAL_TIMEOUT, prelude=task.prompt, entry_points=entry_points)
    rates = example_pass_rates(task, completions, executor=example_executor)  # type: ignore[arg-type]
    if generated_tests:
        result = codet_scores(task, completions, generated_tests, max_tests=max_tests,  # type: ignore[arg-type]
                              executor=test_executor)
        codet = list(result.scores)
        n_tests = len(set(generated_tests)) if max_tests is None else min(len(set(generated_tests)), max_tests)
    else:
        codet, n_tests = [0.0] * len(completions), 0
    return ExecutionSignals(rates, codet, len(problem_example_asserts(task)), n_tests,
                            time.perf_counter() - started)


def rank_code(
    task: PublicTask,
    completions: Sequence[str],
    strategy: str,
    *,
    judge: JudgeLike | None = None,
    generated_tests: Sequence[str] = (),
    exec_cache: ExecutionCache | None = None,
    verdict_cache: VerdictCache | None = None,
    workers: int | None = None,
    seed: int = 0,
    rounds: int | None = None,
    max_group: int = 4,
    tiebreak: str = "round_robin",
    signals: ExecutionSignals | None = None,
) -> Ranking:
    """Rank code candidates (function bodies completing ``task.prompt``) with ``strategy``.

    ``examples_codet`` ranks by the execution signal alone (no judge); ``hybrid`` lets the
    judge order the candidates tied on the best signal. ``signals`` reuses signals already
    computed for these candidates.
    """
    if strategy not in CODE_STRATEGIES:
        raise InvalidInput("strategy", f"unknown strategy {strategy!r}; known: {', '.join(CODE_STRATEGIES)}")
    view = code_view(task, completions, judge, cache=verdict_cache)
    if strategy in EXECUTION_STRATEGIES:
        if signals is None:
            signals = execution_signals(task, completions, generated_tests, cache=exec_cache, workers=workers)
        ranking = run_strategy("signals" if strategy == "examples_codet" else "hybrid", view,
                               signals=signals.keys(), max_group=max_group, tiebreak=tiebreak)
        details = {**ranking.details, "n_examples": signals.n_examples, "n_tests": signals.n_tests,
                   "exec_seconds": round(signals.seconds, 3)}
        return Ranking(ranking.order, ranking.scores, ranking.judge_calls, details, strategy)
    return run_strategy(strategy, view, seed=seed, rounds=rounds)


__all__ = [
    "CODE_STRATEGIES",
    "EXECUTION_STRATEGIES",
    "ExecutionSignals",
    "PublicTask",
    "cached_executor",
    "candidate_code",
    "code_view",
    "execution_signals",
    "function_header",
    "rank_code",
]
