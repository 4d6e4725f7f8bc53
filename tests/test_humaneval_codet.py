"""CodeT dual agreement and the prompt-examples signal on candidates with known answers."""

from __future__ import annotations

import math

import pytest

from flame_reward.errors import InvalidInput
from flame_reward.humaneval.codet import (
    build_suite,
    codet_scores,
    dual_agreement,
    example_pass_rates,
    pass_rates,
    sandbox_executor,
)
from flame_reward.humaneval.harness import score_task
from flame_reward.humaneval.problems import Problem, extract_generated_asserts

MATRIX = [
    [True, True, True, False],  # 0 \
    [True, True, True, False],  # 1  } agree on tests {0, 1, 2}
    [True, False, False, False],  # 2: alone on {0}
    [False, False, False, False],  # 3: passes nothing
    [True, True, True, False],  # 4 /
]


def test_consensus_sets_and_scores():
    result = dual_agreement(MATRIX)
    assert [(g.members, sorted(g.passed), g.score) for g in result.groups] == [
        ((0, 1, 4), [0, 1, 2], 9.0),  # 3 candidates x 3 tests
        ((2,), [0], 1.0),
    ]
    assert result.scores == (9.0, 9.0, 1.0, 0.0, 9.0)


def test_test_weights_and_sqrt_variant():
    weighted = dual_agreement(MATRIX, weights=[2, 1, 1, 5])
    assert weighted.scores == (12.0, 12.0, 2.0, 0.0, 12.0)
    rooted = dual_agreement(MATRIX, sqrt_members=True)
    assert rooted.scores[0] == pytest.approx(math.sqrt(3) * 3)
    assert rooted.scores[2] == pytest.approx(1.0)


def test_a_large_wrong_consensus_can_outvote_a_small_right_one():
    # CodeT's bet: agreement, not correctness. Four candidates agreeing on two tests beat
    # one candidate passing three.
    matrix = [[True, True, False]] * 4 + [[True, True, True]]
    scores = dual_agreement(matrix).scores
    assert scores[0] == 8.0 and scores[4] == 3.0


def test_dual_agreement_checks_shapes():
    with pytest.raises(InvalidInput):
        dual_agreement([[True, False], [True]])
    assert dual_agreement([]).scores == ()


def test_build_suite_dedupes_orders_by_frequency_and_caps():
    generated = ["assert b", "assert a", "assert b", "assert c", "assert a", "assert b"]
    suite = build_suite(generated)
    assert suite.tests == ("assert b", "assert a", "assert c")
    assert suite.weights == (3, 2, 1)
    assert build_suite(generated, max_tests=2).tests == ("assert b", "assert a")
    with pytest.raises(InvalidInput):
        build_suite(generated, max_tests=0)


def test_extract_generated_asserts_follows_codet():
    sample = (
        "\tadd(1, 2) == 3\nassert add(0, 0) == 0\nassert ____ == add(1, 1)\n"
        "assert other(1) == 2\nassert add(2, 2) == 4\n# check something else\nprint(1)"
    )
    assert extract_generated_asserts(sample, "add") == [
        "assert \tadd(1, 2) == 3",
        "assert add(0, 0) == 0",
        "assert ____ == add(1, 1)",  # compiles; fails at run time, as in CodeT
        "assert add(2, 2) == 4",  # cut at the stop token "\n#"
    ]
    assert extract_generated_asserts(sample, "add", limit=2) == [
        "assert \tadd(1, 2) == 3",
        "assert add(0, 0) == 0",
    ]
    assert extract_generated_asserts("add(1,\n", "add") == []  # does not compile


def _problem(prompt: str) -> Problem:
    # The hidden test is poison: ranking signals must never run it.
    return Problem("Synthetic/0", prompt, "add", "raise SystemExit('hidden test ran')", "    return a + b\n")


CANDIDATES = [
    "    return a + b\n",  # right
    "    return b + a\n",  # right, written differently: same consensus set
    "    return a - b\n",  # wrong
    "    raise ValueError('no')\n",  # crashes
    "    while True:\n        pass\n",  # hangs on every test
]


def test_codet_scores_groups_real_executions():
    problem = _problem("def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n")
    generated = [
        "assert add(1, 2) == 3",
        "assert add(0, 0) == 0",
        "assert add(2, 2) == 4",
        "assert add(5, 3) == 2",  # a wrong generated test: a - b agrees with it
        "assert add(1, 2) == 3",  # generated twice: weight 2
    ]
    executor = sandbox_executor(workers=2, assert_timeout=0.2, total_timeout=3.0)
    result = codet_scores(problem, CANDIDATES, generated, executor=executor)
    # Tests (most frequent first): add(1,2)==3 [w2], add(0,0)==0, add(2,2)==4, add(5,3)==2.
    # Right candidates pass the first three: 2 members x weight 4 = 8.
    # a - b passes add(0,0)==0 and add(5,3)==2: 1 member x weight 2 = 2.
    assert result.scores == (8.0, 8.0, 2.0, 0.0, 0.0)
    assert result.groups[0].members == (0, 1)


def test_example_pass_rates_use_the_prompts_own_examples():
    problem = _problem(
        "def add(a, b):\n"
        "    \"\"\"Add two numbers.\n"
        "    >>> add(1, 2)\n"
        "    3\n"
        "    >>> add(2, 2)\n"
        "    4\n"
        "    \"\"\"\n"
    )
    completions = ["    return a + b\n", "    return a - b\n", "    return 4\n"]
    assert example_pass_rates(problem, completions) == [1.0, 0.0, 0.5]


def test_example_pass_rates_without_examples_are_flat():
    problem = _problem("def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n")
    assert example_pass_rates(problem, ["    return a + b\n", "    return 0\n"]) == [0.0, 0.0]


def test_pass_rates():
    assert pass_rates([[True, False], [], [True, True]]) == [0.5, 0.0, 1.0]


def test_score_task_ties():
    passed = [False, True, True, False]
    ranking = [(1.0, 3.0), (1.0, 9.0), (1.0, 9.0), (0.0, 99.0)]  # examples first, then CodeT
    score = score_task("T", passed, ranking)
    assert (score.random_pass1, score.oracle, score.top1, score.top1_first) == (0.5, 1.0, 1.0, 1.0)
    tied = score_task("U", [True, False], [1.0, 1.0])
    assert (tied.top1, tied.top1_first) == (0.5, 1.0)  # random tie-break: expected 0.5
    with pytest.raises(InvalidInput):
        score_task("V", [True], [1.0, 2.0])


def test_hidden_test_results_are_cached(tmp_path, monkeypatch):
    from flame_reward.humaneval import harness
    from flame_reward.humaneval.harness import ExecutionCache, evaluate_candidates

    problem = Problem(
        "Synthetic/1",
        "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n",
        "add",
        "def check(candidate):\n    assert candidate(2, 3) == 5\n",
        "    return a + b\n",
    )
    cache = ExecutionCache(tmp_path / "cache.sqlite")
    completions = ["    return a + b\n", "    return a * b\n", "    return a + b\n"]
    assert evaluate_candidates(problem, completions, cache=cache, workers=2) == [True, False, True]
    assert len(cache) == 2  # the duplicate ran once

    def no_execution(*args, **kwargs):
        raise AssertionError("cached results should have been used")

    monkeypatch.setattr(harness, "run_many", no_execution)
    reopened = ExecutionCache(tmp_path / "cache.sqlite")
    assert evaluate_candidates(problem, completions, cache=reopened) == [True, False, True]


def test_loaders_slice_samples_and_map_generated_tests():
    from flame_reward.errors import DataError
    from flame_reward.humaneval.problems import default_samples_path, load_generated_tests
    from flame_reward.humaneval.samples import load_samples

    try:
        default_samples_path()
    except DataError:
        pytest.skip("shared data folder not available")
    first = load_samples(n=10)
    window = load_samples(start=5, n=3)
    assert len(first) == 164 and all(len(v) == 10 for v in first.values())
    assert window["HumanEval/0"] == first["HumanEval/0"][5:8]
    with pytest.raises(DataError):
        load_samples(start=45, n=10)  # only sample_index 0-49 are shared
    with pytest.raises(InvalidInput):
        load_samples(n=0)
    tests = load_generated_tests()
    assert len(tests) == 164
    assert all(t.startswith("assert") and "has_close_elements" in t for t in tests["HumanEval/0"])
