"""Tests of the faithfulness plugin, found through its installed entry point."""

import pytest

from flame_reward.errors import InvalidInput
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
