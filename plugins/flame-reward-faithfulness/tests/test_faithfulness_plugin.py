"""Tests of the faithfulness plugin, found through its installed entry point."""

import pytest

from flame_reward.errors import DataError, InvalidInput
from flame_reward.tasks.registry import get_task_type


def test_registered_through_entry_point():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="flame_reward")}
    assert names.get("faithfulness") == "flame_reward_faithfulness"
    task = get_task_type("summary_faithfulness")
    assert type(task).__module__ == "flame_reward_faithfulness"


def test_render_and_verdicts():
    task = get_task_type("summary_faithfulness")
    ex = task.validate({"source": "The cat sat on the mat.", "summary": "A dog sat."})
    text = task.render(ex).text()
    assert text.index("INSTRUCTION:") < text.index("CONTEXT:") < text.index("EVALUATION:")
    assert "The cat sat on the mat." in text and "A dog sat." in text
    assert task.verdicts(ex) == ["yes", "no"]
    assert task.parse("no, the summary invents a dog", ex) == "no"
    assert task.target(ex, "yes") == "yes"
    s = task.summarize({"yes": 0.3, "no": 0.7}, ex)
    assert s.label == "no" and s.score == pytest.approx(0.3)


def test_missing_source_names_the_field():
    task = get_task_type("summary_faithfulness")
    with pytest.raises(InvalidInput) as err:
        task.validate({"summary": "x"})
    assert err.value.field == "source"


def test_plugin_pair_format_is_detected(tmp_path):
    from flame_reward.data import read_pairs

    f = tmp_path / "pairs.jsonl"
    f.write_text('{"document": "Cats purr.", "faithful": "Cats purr.", "unfaithful": "Dogs purr."}\n'
                 '{"document": "Cats purr.", "faithful": "", "unfaithful": "Dogs purr."}\n')
    result = read_pairs(f)
    assert result.total_rows == 2 and len(result.records) == 1 and len(result.bad) == 1
    assert result.records[0].dataset == "faithfulness-pairs" and result.records[0].label == "A"
    assert result.bad[0].row == 2 and "faithful" in result.bad[0].error


# --- the data set hook ---------------------------------------------------------------------

try:
    from flame_reward.data import shared_data_dir

    shared_data_dir()
    HAVE_DATA = True
except DataError:  # the shared data folder is not there
    HAVE_DATA = False

needs_data = pytest.mark.skipif(not HAVE_DATA, reason="shared data folder not found (set FLAME_REWARD_DATA)")


@needs_data
def test_qags_pairs_are_a_registered_pairwise_set():
    from flame_reward.data import load_classes, load_pairs, named_sets

    named = named_sets("pairwise")["qags-faithfulness"]
    assert named.load.__module__ == "flame_reward_faithfulness"
    pairs = load_pairs("qags-faithfulness")
    # 474 QAGS summaries; only CNN/DM's multi-sentence ones hold both a supported and an
    # unsupported sentence (counted when the set was added).
    assert (len(pairs.records), len(pairs.bad), pairs.total_rows) == (111, 0, 474)
    votes = {(r.source, r.row, r.response): r.label for r in load_classes("qags").records}
    for p in pairs.records:
        assert p.label == "A" and p.subset == "cnndm" and p.prompt.startswith("Summarize the following document")
        assert votes[(p.source, p.row, p.response_a)] == "yes" and votes[(p.source, p.row, p.response_b)] == "no"


@needs_data
def test_eval_pairs_and_train_find_the_plugin_set():
    from flame_reward.data import load_pairs
    from flame_reward.eval.pairs import load_source
    from flame_reward.train.recipes import set_examples

    dev = load_pairs("qags-faithfulness", split="dev").records
    source = load_source("qags-faithfulness", split="dev")
    assert source.kind == "set" and source.records == dev and len(dev) == 18
    train = load_pairs("qags-faithfulness", split="train").records
    assert len(set_examples("qags-faithfulness", "pairwise")) == 2 * len(train) == 2 * (111 - 18)


# --- the command hook ----------------------------------------------------------------------


def test_sentences():
    from flame_reward_faithfulness import sentences

    assert sentences(" A cat sat. It purred! Why? Yes ") == ["A cat sat.", "It purred!", "Why?", "Yes"]
    assert sentences("3.5 percent rose.") == ["3.5 percent rose."]


def test_the_command_is_on_the_cli_with_the_model_options():
    from flame_reward.cli import build_parser

    args = build_parser().parse_args(["faithfulness", "rows.jsonl", "--summary-field", "abstract", "--backend", "onnx"])
    assert (args.input, args.source_field, args.summary_field, args.backend) == ("rows.jsonl", "source", "abstract", "onnx")
    assert args.fn.__module__ == "flame_reward_faithfulness"


@pytest.fixture(scope="module")
def judge():
    from flame_reward.autorater import Autorater

    return Autorater.from_pretrained(batch_size=4, max_length=1024)


@pytest.mark.model
def test_the_command_keeps_every_row_and_scores_by_the_worst_sentence(tmp_path, judge, capsys):
    import json

    from flame_reward.cli import build_parser

    source = "The cat sat on the mat all afternoon. Later it ate fish."
    rows = tmp_path / "in.jsonl"
    rows.write_text("\n".join([
        json.dumps({"id": 1, "source": source, "summary": "The cat sat on the mat. The cat flew to Paris."}),
        json.dumps({"id": 2, "source": source}),
        "{not json",
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    args = build_parser().parse_args(["faithfulness", str(rows), "-o", str(out)])
    assert args.fn(args, judge=judge) == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) == 3
    direct = judge.judge("summary_faithfulness", [{"source": source, "summary": "The cat sat on the mat."},
                                                  {"source": source, "summary": "The cat flew to Paris."}])
    checked = written[0]["faithfulness"]
    assert [c["sentence"] for c in checked["sentences"]] == ["The cat sat on the mat.", "The cat flew to Paris."]
    assert [c["score"] for c in checked["sentences"]] == pytest.approx([v.score for v in direct], abs=1e-6)
    assert checked["score"] == pytest.approx(min(v.score for v in direct), abs=1e-6)
    assert checked["least_supported"] == min(checked["sentences"], key=lambda c: c["score"])["sentence"]
    assert written[1]["id"] == 2 and written[1]["error"] == "summary: missing or empty (line 2)"
    assert written[2]["_line"] == 3 and written[2]["_raw"] == "{not json" and "invalid JSON" in written[2]["error"]
    assert "1 rows judged (2 sentences), 2 rows with errors" in capsys.readouterr().err
