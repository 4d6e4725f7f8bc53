"""``flame-reward humaneval`` end to end: tiny judge (fast), embedded default (model)."""

from __future__ import annotations

import argparse
import json

import pytest

from flame_reward import cli
from flame_reward.rerank import command
from flame_reward.rerank.report import bar_chart, markdown_table, rows_of

from .conftest import make_tiny_loaded

ALL = "random,round_robin,swiss,knockout,pointwise,hybrid,examples_codet"


def run(argv):
    """The humaneval command through its own parser (independent of the other commands)."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    command.register_commands(sub)
    args = parser.parse_args(["humaneval", *argv])
    return args.fn(args)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp("tiny-judge")
    loaded = make_tiny_loaded(tokenizer)
    loaded.model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_registered_in_the_cli():
    from flame_reward.plugins import get_plugin_manager

    assert get_plugin_manager().get_plugin("flame_reward.rerank.command") is command
    assert "humaneval" in cli.build_parser()._subparsers._group_actions[0].choices


def test_cli_limit_2_on_the_tiny_judge(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "out"
    caches = ["--exec-cache", str(tmp_path / "exec.sqlite"), "--verdict-cache", str(tmp_path / "v.sqlite")]
    code = run(["--limit", "2", "--strategy", ALL, "--out", str(out), "--model", tiny_model_dir,
                "--workers", "2", "-q", "--max-length", "1024", *caches])
    assert code == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 7 and {r["task_id"] for r in rows} == {"HumanEval/0", "HumanEval/1"}
    for r in rows:
        assert r["n"] == 10 and len(r["passed"]) == 10 and sorted(r["order"]) == list(range(10))
        assert r["oracle"] == float(any(r["passed"])) and r["random_pass1"] == sum(r["passed"]) / 10
    by = {(r["task_id"], r["strategy"]): r for r in rows}
    for task in ("HumanEval/0", "HumanEval/1"):
        rr = by[(task, "round_robin")]
        assert rr["judge_calls"] == 2 * rr["details"]["judgments"] <= 90
        assert by[(task, "knockout")]["judge_calls"] <= 18
        assert by[(task, "swiss")]["judge_calls"] <= 40
        assert by[(task, "pointwise")]["judge_calls"] <= 10
        assert by[(task, "random")]["judge_calls"] == by[(task, "examples_codet")]["judge_calls"] == 0
        assert by[(task, "hybrid")]["judge_calls"] <= 12
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == 2 and summary["slice"] == "0-9" and summary["judge"] == tiny_model_dir
    assert set(summary["strategies"]) == set(ALL.split(","))
    assert summary["strategies"]["random"]["top1"] == summary["strategies"]["random"]["random_pass1"]
    assert (out / "pass1.png").stat().st_size > 1000
    table = (out / "table.md").read_text()
    assert "| 0-9 | round_robin | judge only | 2 |" in table and table in capsys.readouterr().out
    # --resume keeps the rows of an earlier (e.g. interrupted) run as they are, wall times included.
    assert run(["--limit", "2", "--strategy", ALL, "--out", str(out), "--model", tiny_model_dir, "--workers", "2",
                "-q", "--resume", *caches]) == 0
    resumed = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert resumed == rows
    assert json.loads((out / "summary.json").read_text())["strategies"] == summary["strategies"]
    # A second run is answered from the caches: same figures, no new judge work needed.
    code = run(["--limit", "2", "--strategy", "round_robin", "--out", str(tmp_path / "again"), "--model",
                tiny_model_dir, "--workers", "2", "-q", "--max-length", "1024", *caches])
    again = json.loads((tmp_path / "again" / "summary.json").read_text())["strategies"]["round_robin"]
    first = summary["strategies"]["round_robin"]
    assert again["top1"] == first["top1"] and again["cached_calls"] == again["judge_calls"] == first["judge_calls"]


def test_cli_generates_samples_with_a_model(tmp_path, tiny_model_dir):
    out = tmp_path / "gen"
    code = run(["--generate", tiny_model_dir, "--limit", "1", "--n", "2", "--max-new-tokens", "8",
                "--strategy", "random,examples_codet", "--out", str(out), "--workers", "2", "-q",
                "--exec-cache", str(tmp_path / "exec.sqlite")])
    assert code == 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["task_id"] for s in samples] == ["HumanEval/0"] * 2
    assert all(isinstance(s["completion"], str) for s in samples)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["slice"] == "gen 2" and summary["tasks"] == 1


def test_usage_errors_are_one_line(tmp_path, capsys):
    # through the main CLI when it builds (other commands may be mid-change), else directly
    try:
        code = cli.main(["humaneval", "--strategy", "best_guess", "--out", str(tmp_path)])
    except ModuleNotFoundError:
        pytest.skip("the main CLI does not build right now")
    assert code == 2 and "unknown strategy 'best_guess'" in capsys.readouterr().err


def test_report_merges_runs(tmp_path):
    rows = rows_of({"slice": "0-9", "judge": None, "strategies": {"random": {
        "strategy": "random", "kind": "baseline", "tasks": 3, "random_pass1": 20.0, "top1": 20.0, "top1_first": 0.0,
        "oracle": 50.0, "judge_calls": 0, "judge_calls_per_task": 0.0, "seconds": 0.1}}})
    assert "| 0-9 | random | baseline | 3 | 20.0 | **20.0** | 50.0 | - | 0 | 0 | 0 |" in markdown_table(rows)
    bar_chart(rows, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000


@pytest.mark.model
def test_cli_limit_1_on_the_embedded_default(tmp_path):
    out = tmp_path / "out"
    code = run(["--limit", "1", "--strategy", "pointwise,examples_codet", "--out", str(out), "--workers", "2", "-q",
                "--no-adapter", "--exec-cache", str(tmp_path / "e.sqlite"), "--no-verdict-cache"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judge"] == "smollm2-135m-instruct"
    point = summary["strategies"]["pointwise"]
    assert point["tasks"] == 1 and point["judge_calls"] == 10 and point["judge_errors"] == 0
    row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert row["strategy"] == "pointwise" and all(0.0 <= s <= 1.0 for s in row["scores"])
    assert summary["strategies"]["examples_codet"]["top1"] == 100.0  # HumanEval/0: examples+CodeT pick passes
