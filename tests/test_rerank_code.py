"""Code reranking: the code_correctness task types, the judge's view of candidates, the
execution-grounded strategies, the real scoring core, and that hidden tests never leak."""

from __future__ import annotations

import pytest

from flame_reward.humaneval import harness
from flame_reward.humaneval.problems import Problem, load_generated_tests, load_problems, load_samples
from flame_reward.rerank.benchmark import pass_auc, read_samples, run_benchmark, truncate_completion
from flame_reward.rerank.code import PublicTask, candidate_code, execution_signals, function_header, rank_code
from flame_reward.tasks.registry import get_task_type, list_task_types

from .rerank_fakes import FakeJudge

PROMPT = '''from typing import List


def add_all(xs: List[int],
            start: int = 0) -> int:
    """Sum the numbers after start.
    >>> add_all([1, 2, 3])
    6
    >>> add_all([1, 2], 10)
    13
    """
'''
RIGHT = "    return start + sum(xs)\n"
WRONG = "    return sum(xs)\n"
CRASH = "    return xs.total()\n"
SENTINEL = "SENTINEL_HIDDEN_41c7"
HIDDEN = f'''

METADATA = {{"note": "{SENTINEL}"}}


def check(candidate):
    assert candidate([5], 1) == 6, "{SENTINEL}"
    assert candidate([], 7) == 7
'''
PROBLEM = Problem("Toy/0", PROMPT, "add_all", HIDDEN, RIGHT)
TASK = PublicTask.from_problem(PROBLEM)
GENERATED = ["assert add_all([1, 1]) == 2", "assert add_all([2], 3) == 5", "assert add_all([1, 1]) == 2",
             "assert add_all([4]) == 4"]


@pytest.fixture(scope="module")
def problems():
    return load_problems()


def test_code_task_types_are_registered_through_the_hook():
    types = list_task_types()
    assert {"code_correctness", "code_correctness_pointwise"} <= set(types)
    pair = get_task_type("code_correctness")
    assert pair.swap is not None and pair.swap.fields == ("code_a", "code_b")
    assert type(pair).__module__ == "flame_reward.rerank.tasks"
    ex = pair.validate({"problem": PROMPT, "code_a": "A_CODE", "code_b": "B_CODE"})
    text = pair.render(ex).text()
    assert "correctly solves the problem" in text and "A_CODE" in text and "B_CODE" in text
    assert text.index("A_CODE") < text.index("B_CODE") and pair.verdicts(ex) == ["A", "B"]
    assert pair.summarize({"A": 0.7, "B": 0.3}, ex).score == pytest.approx(0.7)
    point = get_task_type("code_correctness_pointwise")
    ex = point.validate({"problem": PROMPT, "code": "X"})
    assert point.verdicts(ex) == ["yes", "no"]
    assert point.summarize({"yes": 0.2, "no": 0.8}, ex).label == "no"


def test_candidate_code_is_signature_plus_body():
    assert function_header(PROMPT, "add_all") == "def add_all(xs: List[int],\n            start: int = 0) -> int:"
    code = candidate_code(TASK, RIGHT)
    assert code.startswith("def add_all(") and code.endswith("return start + sum(xs)")
    assert '"""' not in code  # the docstring is shown once, in the problem
    assert candidate_code(PublicTask("t", "x = 1\n", "missing"), "y = 2\n") == "x = 1\ny = 2"


def test_public_task_drops_hidden_fields():
    assert set(vars(TASK)) == {"task_id", "prompt", "entry_point"}
    with pytest.raises(Exception, match="PublicTask"):
        execution_signals(PROBLEM, [RIGHT])  # type: ignore[arg-type]


def test_execution_signals_and_examples_codet_rank_the_right_body_first():
    cands = [WRONG, CRASH, RIGHT, WRONG]
    sig = execution_signals(TASK, cands, GENERATED, workers=2)
    assert sig.example_rates == [0.5, 0.0, 1.0, 0.5]  # the prompt's two examples
    assert sig.n_examples == 2 and sig.n_tests == 3
    assert sig.codet[2] > 0 and sig.codet[1] == 0.0
    r = rank_code(TASK, cands, "examples_codet", generated_tests=GENERATED, workers=2)
    assert r.order[0] == 2 and r.judge_calls == 0 and r.details["n_examples"] == 2


def test_hybrid_on_code_lets_the_judge_split_only_the_top_group():
    alt = "    total = start\n    for x in xs:\n        total += x\n    return total\n"
    cands = [WRONG, RIGHT, alt, RIGHT, CRASH]
    judge = FakeJudge({candidate_code(TASK, alt): 2.0, candidate_code(TASK, RIGHT): 1.0})
    r = rank_code(TASK, cands, "hybrid", judge=judge, generated_tests=GENERATED, workers=2)
    # RIGHT and alt tie on every execution signal; RIGHT twice is one distinct text.
    assert r.details["group"] == 3 and r.details["group_distinct"] == 2
    assert r.judge_calls == 2 and judge.calls == [("code_correctness", 1)]
    assert r.order[:3] == [2, 1, 3]


def test_unknown_code_strategy():
    with pytest.raises(Exception, match="strategy"):
        rank_code(TASK, [RIGHT], "majority_vote")


def test_no_hidden_test_text_reaches_the_judge_or_the_ranking_executions(monkeypatch):
    """Every sandbox job and every rendered judge prompt is recorded across a whole run."""
    jobs = []
    real_run_many = harness.run_many

    def recording_run_many(batch, workers=None, **kw):
        jobs.extend(batch)
        return real_run_many(batch, workers, **kw)

    monkeypatch.setattr(harness, "run_many", recording_run_many)
    judge = FakeJudge()
    cands = [WRONG, RIGHT, CRASH, "    return start + sum(xs) + 0\n"]
    summaries = run_benchmark({"Toy/0": PROBLEM}, {"Toy/0": cands},
                              ["round_robin", "swiss", "knockout", "pointwise", "hybrid", "examples_codet"],
                              judge=judge, generated_tests={"Toy/0": GENERATED}, workers=2, progress=False)
    assert judge.rendered
    hidden_markers = [SENTINEL, "def check(", "candidate(", "METADATA"]
    for text in judge.rendered:
        assert not any(m in text for m in hidden_markers)
    scoring = [j for j in jobs if SENTINEL in (j.test or "")]
    ranking = [j for j in jobs if SENTINEL not in (j.test or "")]
    # the hidden tests ran exactly once per candidate (final scoring), in the tester only:
    # never in the candidate's program
    assert len(scoring) == len(cands) and all(j.asserts is None for j in scoring)
    assert not any(SENTINEL in j.program for j in jobs)
    assert ranking and all(j.asserts and j.test is None for j in ranking)
    for job in ranking:
        executed = job.program + job.prelude + "\n".join(job.asserts)
        assert not any(m in executed for m in hidden_markers)
    assert summaries["examples_codet"]["top1"] == 100.0


def test_no_hidden_test_text_on_real_humaneval_tasks(problems):
    samples = load_samples(start=0, n=10)
    tests = load_generated_tests()
    judge = FakeJudge()
    executed: list[str] = []

    def recording(programs, asserts):
        executed.extend(asserts)
        return [[False] * len(asserts) for _ in programs]

    for task_id in ("HumanEval/0", "HumanEval/2"):
        problem = problems[task_id]
        task = PublicTask.from_problem(problem)
        sig = execution_signals(task, samples[task_id], tests[task_id], example_executor=recording,
                                test_executor=recording)
        rank_code(task, samples[task_id], "hybrid", judge=judge, signals=sig)
        rank_code(task, samples[task_id][:4], "round_robin", judge=judge)
        hidden_lines = [ln.strip().replace("candidate", problem.entry_point) for ln in problem.test.splitlines()
                        if ln.strip().startswith("assert")]
        public = problem.prompt
        for text in judge.rendered:
            assert "def check(" not in text and "candidate(" not in text and "METADATA" not in text
            for line in hidden_lines:
                assert line not in text or line in public
        for a in executed:
            assert "candidate(" not in a
    assert executed and judge.rendered


def test_tiny_model_through_the_real_scoring_core(tiny_judge, problems):
    samples = load_samples(start=0, n=10)
    problem = problems["HumanEval/0"]
    task = PublicTask.from_problem(problem)
    cands = samples["HumanEval/0"][:5]
    r = rank_code(task, cands, "round_robin", judge=tiny_judge)
    distinct = len({candidate_code(task, c) for c in cands})
    pairs = distinct * (distinct - 1) // 2
    assert r.details["judgments"] == pairs == tiny_judge.scorer.cost.judgments
    assert r.judge_calls == 2 * pairs
    assert sorted(r.order) == list(range(5)) and len(r.scores) == 5
    assert all(0.0 <= s <= 4.0 for s in r.scores) and sum(r.scores) == pytest.approx(10.0, abs=1e-6)
    before = tiny_judge.scorer.cost.judgments
    p = rank_code(task, cands, "pointwise", judge=tiny_judge)
    assert p.judge_calls == distinct == tiny_judge.scorer.cost.judgments - before
    assert all(0.0 <= s <= 1.0 for s in p.scores)
    s = rank_code(task, cands, "swiss", judge=tiny_judge)
    assert s.details["rounds"] == 3 and s.judge_calls <= 2 * 3 * 2


def test_read_samples_by_index_or_position(tmp_path):
    import json

    f = tmp_path / "s.jsonl"
    f.write_text("\n".join(json.dumps({"task_id": "T/0", "completion": f"c{i}"}) for i in range(4)) + "\n")
    assert read_samples(f, start=1, n=2) == {"T/0": ["c1", "c2"]}
    with pytest.raises(Exception, match="T/0 has 4 samples"):
        read_samples(f, start=2, n=5)
    g = tmp_path / "g.jsonl"
    g.write_text("\n".join(json.dumps({"task_id": "T/0", "sample_index": 3 - i, "completion": f"c{3 - i}"})
                           for i in range(4)) + "\n")
    assert read_samples(g, start=0, n=2) == {"T/0": ["c0", "c1"]}


def test_truncate_completion_at_a_new_top_level_block():
    assert truncate_completion("    return 1\n\n\ndef other():\n    pass") == "    return 1\n\n"
    assert truncate_completion("    x = 1\n    # fine\n    return x\nprint(f())") == "    x = 1\n    # fine\n    return x"


def test_pass_auc_measures_discrimination():
    assert pass_auc([0.9, 0.1, 0.5], [True, False, False]) == 1.0
    assert pass_auc([0.1, 0.9], [True, False]) == 0.0
    assert pass_auc([0.5, 0.5], [True, False]) == 0.5
    assert pass_auc([(1.0, 2.0), (1.0, 1.0)], [True, False]) == 1.0
    assert pass_auc([0.3, 0.2], [True, True]) is None
