"""Judge-free execution signals for reranking code candidates.

* CodeT's dual execution agreement (Chen et al., 2022, "CodeT: Code Generation with
  Generated Tests"): run every candidate against the tests the model wrote for the task,
  group the candidates that pass exactly the same tests (a *consensus set*), and score a
  set by how many candidates agree times how many tests they pass. A candidate's score is
  its set's score. Tests are weighted by how often the model wrote them, as in CodeT.
* The prompt-examples signal: the fraction of the examples shown in the task's own
  docstring (:mod:`flame_reward.humaneval.examples`) that a candidate reproduces.

The scoring functions are pure (they take an execution matrix); the ``*_for`` helpers
execute candidates through an :data:`Executor`, by default the sandbox without caching
(:mod:`flame_reward.humaneval.harness` supplies a cached one).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

from flame_reward.errors import InvalidInput
from flame_reward.humaneval.examples import problem_example_asserts
from flame_reward.humaneval.problems import Problem
from flame_reward.humaneval.sandbox import assert_job, run_many

__all__ = [
    "CodeTResult",
    "ConsensusSet",
    "Executor",
    "TestSuite",
    "build_suite",
    "codet_scores",
    "dual_agreement",
    "example_pass_rates",
    "pass_rates",
    "sandbox_executor",
]

Executor = Callable[[Sequence[str], Sequence[str]], list[list[bool]]]
"""``executor(programs, asserts)`` -> for each program, one bool per assert."""

GENERATED_ASSERT_TIMEOUT = 0.25
"""Seconds per generated test; CodeT used 0.1 s. Real tests of correct code take microseconds."""
GENERATED_TOTAL_TIMEOUT = 10.0
"""Seconds for all generated tests of one candidate; tests not reached count as failed."""
EXAMPLE_ASSERT_TIMEOUT = 1.0


@dataclass(frozen=True)
class TestSuite:
    """Unique generated tests, most frequent first, with how often each was generated."""

    tests: tuple[str, ...]
    weights: tuple[int, ...]


def build_suite(generated: Sequence[str], max_tests: int | None = 100) -> TestSuite:
    """Deduplicate generated asserts and keep the ``max_tests`` most frequent.

    Ties keep the order of first appearance. The cap bounds execution time per candidate;
    frequent tests carry most of CodeT's score anyway.
    """
    if max_tests is not None and max_tests < 1:
        raise InvalidInput("max_tests", f"must be >= 1, got {max_tests}")
    counts = Counter(generated)
    first_seen = {test: i for i, test in reversed(list(enumerate(generated)))}
    ordered = sorted(counts, key=lambda t: (-counts[t], first_seen[t]))
    if max_tests is not None:
        ordered = ordered[:max_tests]
    return TestSuite(tuple(ordered), tuple(counts[t] for t in ordered))


@dataclass(frozen=True)
class ConsensusSet:
    """Candidates (by index) that pass exactly the tests in ``passed``."""

    members: tuple[int, ...]
    passed: frozenset[int]
    score: float


@dataclass(frozen=True)
class CodeTResult:
    """Per-candidate CodeT scores and the consensus sets behind them (best first)."""

    scores: tuple[float, ...]
    groups: tuple[ConsensusSet, ...]


def dual_agreement(
    results: Sequence[Sequence[bool]],
    weights: Sequence[float] | None = None,
    *,
    sqrt_members: bool = False,
) -> CodeTResult:
    """CodeT scores from an execution matrix ``results[candidate][test]``.

    A consensus set's score is ``len(members) * sum(weights of the tests passed)``
    (``sqrt(len(members))`` with ``sqrt_members``, as CodeT's released code does). Candidates
    that pass no test form no consensus set and score 0.
    """
    n_tests = len(weights) if weights is not None else (len(results[0]) if results else 0)
    weights = list(weights) if weights is not None else [1.0] * n_tests
    for index, row in enumerate(results):
        if len(row) != n_tests:
            raise InvalidInput("results", f"row {index} has {len(row)} results for {n_tests} tests")
    by_set: dict[frozenset[int], list[int]] = {}
    for candidate, row in enumerate(results):
        passed = frozenset(t for t, ok in enumerate(row) if ok)
        if passed:
            by_set.setdefault(passed, []).append(candidate)
    groups = []
    for passed, members in by_set.items():
        agreement = math.sqrt(len(members)) if sqrt_members else float(len(members))
        groups.append(ConsensusSet(tuple(members), passed, agreement * sum(weights[t] for t in passed)))
    groups.sort(key=lambda g: (-g.score, g.members[0]))
    scores = [0.0] * len(results)
    for group in groups:
        for member in group.members:
            scores[member] = group.score
    return CodeTResult(tuple(scores), tuple(groups))


def pass_rates(results: Sequence[Sequence[bool]]) -> list[float]:
    """Fraction of asserts each program passes (0.0 when there are none)."""
    return [sum(row) / len(row) if len(row) else 0.0 for row in results]


def sandbox_executor(
    workers: int | None = None,
    assert_timeout: float = GENERATED_ASSERT_TIMEOUT,
    total_timeout: float | None = GENERATED_TOTAL_TIMEOUT,
    *,
    prelude: str = "",
    entry_points: Sequence[str] = (),
) -> Executor:
    """An :data:`Executor` running each distinct program once in the sandbox, in parallel.

    ``prelude`` (the task's prompt) and ``entry_points`` are passed to every job: see
    :class:`~flame_reward.humaneval.sandbox.Job`.
    """

    def execute(programs: Sequence[str], asserts: Sequence[str]) -> list[list[bool]]:
        if not asserts:
            return [[] for _ in programs]
        distinct = list(dict.fromkeys(programs))
        jobs = [assert_job(p, asserts, assert_timeout, total_timeout, prelude=prelude,
                           entry_points=entry_points) for p in distinct]
        by_program = {p: list(r.assert_results) for p, r in zip(distinct, run_many(jobs, workers))}
        return [by_program[p] for p in programs]

    return execute


def codet_scores(
    problem: Problem,
    completions: Sequence[str],
    generated_tests: Sequence[str],
    *,
    max_tests: int | None = 100,
    sqrt_members: bool = False,
    executor: Executor | None = None,
) -> CodeTResult:
    """Run ``problem.prompt + completion`` against the generated tests; CodeT scores."""
    suite = build_suite(generated_tests, max_tests)
    execute = executor or sandbox_executor(prelude=problem.prompt, entry_points=(problem.entry_point,))
    results = execute([problem.prompt + c for c in completions], suite.tests)
    return dual_agreement(results, suite.weights, sqrt_members=sqrt_members)


def example_pass_rates(
    problem: Problem, completions: Sequence[str], *, executor: Executor | None = None
) -> list[float]:
    """Fraction of the prompt's own examples each completion reproduces.

    All zeros when the prompt shows no example (the signal then does not separate
    candidates). Reads ``problem.prompt`` and ``problem.entry_point`` only.
    """
    asserts = problem_example_asserts(problem)
    if not asserts:
        return [0.0] * len(completions)
    execute = executor or sandbox_executor(assert_timeout=EXAMPLE_ASSERT_TIMEOUT, total_timeout=None,
                                           prelude=problem.prompt, entry_points=(problem.entry_point,))
    return pass_rates(execute([problem.prompt + c for c in completions], asserts))
