"""eval-pairs: sources, row accounting, accuracy arithmetic on hand-made verdicts, RewardBench weighting."""

import json
import math

import pytest

from flame_reward.data import PairFields, PairFormat
from flame_reward.errors import DataError
from flame_reward.eval.pairs import evaluate_source, load_source, pooled, summarize_source
from flame_reward.eval.report import pairs_markdown, plot_pairs, write_report
from flame_reward.eval.rewardbench import EXAMPLE_COUNTS, SUBSET_MAPPING, rewardbench_summary, section_scores
from flame_reward.hookspecs import hookimpl
from flame_reward.plugins import get_plugin_manager
from flame_reward.results import ItemError, Verdict


def v(o1a, o2a):
    """A pairwise verdict from raw per-order P(A) (order 2 is the swapped presentation)."""
    orders = ({"A": o1a, "B": 1 - o1a}, {"A": o2a, "B": 1 - o2a})
    pa = 0.5 * (o1a + (1 - o2a))
    return Verdict("pairwise", "A" if pa > 0.5 else "B" if pa < 0.5 else "tie", pa, {"A": pa, "B": 1 - pa}, orders)


class FakeJudge:
    """Returns hand-made verdicts in order; records what it was asked."""

    def __init__(self, verdicts):
        self.verdicts = list(verdicts)
        self.calls = []

    def judge(self, task, examples, **kwargs):
        self.calls.append((task, list(examples), kwargs))
        return self.verdicts[: len(self.calls[-1][1])]


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return str(path)


def rewardbench_file(tmp_path):
    return _write(tmp_path / "rb.jsonl", [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "subset": "alpacaeval-easy"},
        {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Rome", "subset": "alpacaeval-easy"},
        "{not json",
        {"prompt": "hi", "chosen": "hello", "subset": "mt-bench-hard"},  # rejected missing
        {"prompt": "3+3?", "chosen": "6", "rejected": "7", "subset": "mt-bench-hard"},
        {"prompt": "Say hi", "chosen": "   ", "rejected": "x", "subset": "mt-bench-hard"},  # empty: judge rejects
    ])


def hh_file(tmp_path):
    return _write(tmp_path / "hh.jsonl", [
        {"chosen": "\n\nHuman: 2+2?\n\nAssistant: 4", "rejected": "\n\nHuman: 2+2?\n\nAssistant: 5"},
        {"chosen": "\n\nHuman: hi\n\nAssistant: same", "rejected": "\n\nHuman: hi\n\nAssistant: same"},  # identical
        {"chosen": "\n\nHuman: Capital of France?\n\nAssistant: Paris",
         "rejected": "\n\nHuman: Capital of France?\n\nAssistant: Rome"},
    ])


def test_rewardbench_file_rows_and_bad_rows(tmp_path):
    src = load_source(rewardbench_file(tmp_path))
    assert src.kind == "file" and src.split == "all" and len(src.records) == 4
    assert sorted(b.row for b in src.bad) == [3, 4] and src.rows == 6 == src.rows_in_file
    assert src.records[0].subset == "alpacaeval-easy" and src.records[0].label == "A"
    # The judge rejects the empty response (line 6): it becomes a bad row with its line number.
    verdicts = [v(0.9, 0.2), v(0.4, 0.7), v(0.8, 0.9), ItemError(3, "response_a", "is empty")]
    report = summarize_source(src, verdicts)
    assert report["rows"] == 6 and report["judged"] == 3 and report["bad"] == 3
    assert [(b["row"], b["error"].split(":")[0]) for b in report["bad_rows"]] == [
        (3, "invalid JSON"), (4, "rejected"), (6, "response_a")]
    assert report["accuracy"] == pytest.approx((1 + 0 + 0) / 3)
    assert report["subsets"]["alpacaeval-easy"]["accuracy"] == 0.5
    assert report["subsets"]["mt-bench-hard"]["accuracy"] == 0.0
    rb = report["rewardbench"]
    assert rb["sections"] == {"Chat": 0.5, "Chat Hard": 0.0} and rb["score"] == 0.25 and not rb["complete"]
    assert rb["missing_sections"] == ["Safety", "Reasoning"]


def test_hh_file_format(tmp_path):
    src = load_source(hh_file(tmp_path))
    assert len(src.records) == 2 and [b.row for b in src.bad] == [2] and "identical" in src.bad[0].error
    assert src.records[0].prompt == "Human: 2+2?\n\nAssistant:" and src.records[0].response_a == "4"
    assert src.records[1].row == 3
    judge = FakeJudge([v(0.9, 0.1), v(0.6, 0.6)])
    report, rows = evaluate_source(judge, src)
    task, examples, kwargs = judge.calls[0]
    assert task == "pairwise" and kwargs["on_error"] == "return"
    assert examples[0]["response_a"] == "4" and examples[0]["response_b"] == "5"
    assert report["rows"] == 3 == report["judged"] + report["bad"]
    assert report["accuracy"] == pytest.approx(0.75)  # 1 + exact tie (0.5)
    assert report["subsets"] == {} and report["rewardbench"] is None
    assert [r["row"] for r in rows] == [1, 3] and rows[0]["label"] == "A" and "orders" in rows[0]


def test_accuracy_consistency_and_ties_through_the_eval_path(tmp_path):
    path = _write(tmp_path / "autoj.jsonl", [
        {"prompt": "p1", "response 1": "a", "response 2": "b", "label": 0, "scenario": "s"},
        {"prompt": "p2", "response 1": "a", "response 2": "b", "label": 1, "scenario": "s"},
        {"prompt": "p3", "response 1": "a", "response 2": "b", "label": 0, "scenario": "t"},
        {"prompt": "p4", "response 1": "a", "response 2": "b", "label": 2, "scenario": "t"},
        {"prompt": "p5", "response 1": "a", "response 2": "b", "label": 7, "scenario": "t"},
    ])
    src = load_source(path)
    assert [r.label for r in src.records] == ["A", "B", "A", "tie"] and src.bad[0].row == 5
    verdicts = [
        v(0.9, 0.2),  # A in both orders: consistent, correct (label A)
        v(0.8, 0.7),  # first position both times: inconsistent, debiased 0.55 -> A, wrong (label B)
        v(0.3, 0.9),  # B both times: consistent, wrong (label A)
        v(0.6, 0.6),  # human tie: counted, not scored
    ]
    report, _ = evaluate_source(FakeJudge(verdicts), src)
    assert report["judged"] == 4 and report["ties"] == 1 and report["scored"] == 3 and report["bad"] == 1
    assert report["accuracy"] == pytest.approx(1 / 3)
    assert report["accuracy_first_order"] == pytest.approx(1 / 3)  # 0.9>0.1 yes; B:0.2<0.8 no; A:0.3 no
    # Swapped presentation: the labelled response sits under the other letter (1st: P=0.8, 2nd: 0.7, 3rd: 0.1).
    assert report["accuracy_second_order"] == pytest.approx(2 / 3)
    assert report["position_consistency"] == pytest.approx(2 / 4)
    assert report["prefers_first_position"] == pytest.approx((0.5 + 1 + 0.5 + 1) / 4)
    assert report["subsets"]["s"]["pairs"] == 2 and report["subsets"]["t"]["ties"] == 1
    assert report["tie_agreement"] is None
    # With --allow-tie the judge's tie answers are compared with the human ties.
    tv = Verdict("pairwise", "tie", 0.5, {"A": 0.2, "B": 0.2, "tie": 0.6},
                 ({"A": 0.2, "B": 0.2, "tie": 0.6}, {"A": 0.2, "B": 0.2, "tie": 0.6}))
    report, _ = evaluate_source(FakeJudge(verdicts[:3] + [tv]), src, allow_tie=True)
    assert report["tie_agreement"] == 1.0 and report["allow_tie"] is True
    all_row = pooled([report, report])
    assert all_row["scored"] == 6 and all_row["accuracy"] == pytest.approx(1 / 3)


def test_named_set_split_and_limit():
    src = load_source("llmbar", split="dev", limit=5)
    assert src.kind == "set" and src.split == "dev" and len(src.records) == 5 and src.records_in_split > 5
    assert src.rows == 5 + len(src.bad)
    with pytest.raises(DataError, match="neither a file nor a named pair set"):
        load_source("no-such-set")


def test_section_weighting_arithmetic():
    acc = {"alpacaeval-easy": 1.0, "mt-bench-easy": 0.0, "mt-bench-med": 0.5,
           "math-prm": 0.25, "hep-python": 1.0, "refusals-dangerous": 0.5}
    s = section_scores(acc)
    assert s["Chat"] == pytest.approx((100 * 1.0 + 28 * 0.0 + 40 * 0.5) / (100 + 28 + 40))
    assert s["Reasoning"] == pytest.approx((984 * 0.25 + 164 * 1.0) / (984 + 164))
    assert s["Safety"] == 0.5 and "Chat Hard" not in s
    full = {name: 1.0 if section == "Chat" else 0.5 for section, subs in SUBSET_MAPPING.items() for name in subs}
    summary = rewardbench_summary(full)
    assert summary["complete"] and summary["score"] == pytest.approx((1 + 0.5 + 0.5 + 0.5) / 4)
    assert rewardbench_summary({"helpful-base": 0.5}) is None
    assert sum(len(x) for x in SUBSET_MAPPING.values()) == len(EXAMPLE_COUNTS) == 23
    nan_skipped = section_scores({"alpacaeval-easy": float("nan"), "alpacaeval-hard": 1.0})
    assert nan_skipped == {"Chat": 1.0}


def test_report_files(tmp_path):
    src = load_source(rewardbench_file(tmp_path))
    report = summarize_source(src, [v(0.9, 0.2), v(0.4, 0.7), v(0.8, 0.9), ItemError(3, "response_a", "is empty")],
                              seconds=1.0)
    full = {"judge": {"model": "fake"}, "sets": [report], "all": pooled([report])}
    md = pairs_markdown(full)
    assert "| rb.jsonl" not in md and "RewardBench sections" in md and "line 3: invalid JSON" in md
    paths = write_report(tmp_path / "out", "eval_pairs", full, md, plot_pairs, extra_jsonl=[{"x": float("nan")}])
    assert [p.name for p in paths] == ["eval_pairs.json", "eval_pairs.md", "eval_pairs.png", "eval_pairs.jsonl"]
    data = json.loads(paths[0].read_text())
    assert data["sets"][0]["rows"] == 6 and paths[2].stat().st_size > 1000
    assert json.loads(paths[3].read_text()) == {"x": None}
    assert not math.isnan(data["all"]["accuracy"])


class QgbFormatPlugin:
    """A plugin adding a pairwise format through the register_pair_formats hook."""

    @staticmethod
    @hookimpl
    def register_pair_formats(register):
        register(PairFormat("test-qgb", "question, good, bad", lambda row: {"question", "good", "bad"} <= set(row),
                            lambda row: PairFields(row["question"], row["good"], row["bad"], "A", "plugin")))


def test_plugin_pair_format_is_read(tmp_path):
    pm = get_plugin_manager()
    pm.register(QgbFormatPlugin, name="test-qgb")
    try:
        path = _write(tmp_path / "q.jsonl", [{"question": "q", "good": "g", "bad": "b"}, {"question": "q2", "good": "g"}])
        src = load_source(path, format="test-qgb")
        assert [(r.response_a, r.subset) for r in src.records] == [("g", "plugin")]
        assert src.bad[0].row == 2 and "bad: missing" in src.bad[0].error
        report, _ = evaluate_source(FakeJudge([v(0.9, 0.1)]), src)
        assert report["rows"] == 2 and report["judged"] == 1 and report["bad"] == 1
    finally:
        pm.unregister(name="test-qgb")
