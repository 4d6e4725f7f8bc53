"""The CLI end to end: rows in, rows out, nothing dropped, one-line errors."""

import json

import pytest

from flame_reward.cli import main


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_tasks_lists_builtins_and_plugin(capsys):
    assert main(["tasks", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"pairwise", "pointwise", "classification", "open_ended", "summary_faithfulness"} <= set(out)
    assert out["summary_faithfulness"]["module"] == "flame_reward_faithfulness"


def test_missing_input_is_one_line_error(capsys, tmp_path):
    assert main(["compare", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("flame-reward: error:") and "nope.jsonl" in err[0]


def test_bad_map_is_one_line_error(capsys, tmp_path):
    f = _write(tmp_path / "in.jsonl", ['{"prompt": "p", "response_a": "a", "response_b": "b"}'])
    assert main(["compare", f, "--map", "response_a"]) == 2
    assert "--map" in capsys.readouterr().err


@pytest.mark.model
def test_compare_keeps_every_row(tmp_path, capsys):
    f = _write(tmp_path / "in.jsonl", [
        '{"id": 1, "prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}',
        '{"id": 2, "prompt": "What is 2+2?", "chosen": "", "rejected": "5"}',
        "{not json",
        '{"id": 4, "prompt": "Capital of France?", "chosen": "Paris", "rejected": "Rome"}',
        '[1, 2]',
    ])
    out = tmp_path / "out.jsonl"
    code = main(["compare", f, "-o", str(out), "-q", "--map", "response_a=chosen", "--map", "response_b=rejected"])
    assert code == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 5
    assert rows[0]["id"] == 1 and 0.0 <= rows[0]["flame_reward"]["score"] <= 1.0
    assert len(rows[0]["flame_reward"]["orders"]) == 2
    assert rows[1]["id"] == 2 and rows[1]["error"].startswith("response_a") and rows[1]["_line"] == 2
    assert rows[2]["_line"] == 3 and "invalid JSON" in rows[2]["error"] and rows[2]["_raw"] == "{not json"
    assert rows[3]["id"] == 4 and "flame_reward" in rows[3]
    assert rows[4]["_line"] == 5 and "JSON object" in rows[4]["error"]
    summary = capsys.readouterr().err
    assert "2 rows judged, 3 rows with errors" in summary
    # --strict turns row errors into a non-zero exit, still writing every row.
    assert main(["compare", f, "-o", str(out), "-q", "--strict", "--map", "response_a=chosen",
                 "--map", "response_b=rejected"]) == 1
    assert len(out.read_text().splitlines()) == 5


@pytest.mark.model
def test_score_classification_and_plugin_task(tmp_path):
    f = tmp_path / "in.json"
    f.write_text(json.dumps([
        {"prompt": "Is this a greeting?", "response": "Hello there!"},
        {"source": "The cat sat on the mat.", "summary": "A cat sat on a mat.", "prompt": "x", "response": "y"},
    ]))
    out = tmp_path / "out.jsonl"
    assert main(["score", str(f), "-o", str(out), "-q", "--task", "classification", "--labels", "yes,no"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [set(r["flame_reward"]["distribution"]) for r in rows] == [{"yes", "no"}] * 2
    assert main(["score", str(f), "-o", str(out), "-q", "--task", "summary_faithfulness"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert "error" in rows[0] and rows[0]["error"].startswith("source")
    assert rows[1]["flame_reward"]["task"] == "summary_faithfulness"
    assert main(["score", str(f), "-o", str(out), "-q", "--scale", "1-10"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert 1.0 <= rows[0]["flame_reward"]["score"] <= 10.0 and len(rows[0]["flame_reward"]["distribution"]) == 10
