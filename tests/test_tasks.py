"""Task types: validation, rendering in the FLAMe format, verdicts, parsing, targets."""

import pytest

from flame_reward.errors import InvalidInput, UnknownTaskType, VerdictParseError
from flame_reward.tasks import get_task_type, list_task_types

PAIR = {"prompt": "What is 2+2?", "response_a": "4", "response_b": "5"}


def test_builtin_types_registered_through_the_hook():
    from flame_reward.plugins import get_plugin_manager

    pm = get_plugin_manager()
    types = list_task_types()
    for name in ("pairwise", "pointwise", "classification", "open_ended", "pairwise_named"):
        assert name in types
    builtin = pm.get_plugin("flame_reward.tasks.builtin")
    assert builtin is not None and pm.get_hookcallers(builtin)


def test_unknown_task_type_lists_known():
    with pytest.raises(UnknownTaskType) as err:
        get_task_type("pairwize")
    assert "pairwise" in str(err.value) and isinstance(err.value, KeyError)


def test_render_has_three_sections_in_order():
    task = get_task_type("pairwise")
    text = task.render(task.validate(PAIR)).text()
    i, c, e = text.index("INSTRUCTION:"), text.index("CONTEXT:"), text.index("EVALUATION:")
    assert i < c < e
    assert "Evaluation criteria:" in text[i:c] and "Output field" in text[i:c]
    assert text.index("response A:\n4") < text.index("response B:\n5") < e
    assert "exactly one of: A, B." in text[e:]


def test_custom_criteria_and_tie():
    task = get_task_type("pairwise")
    ex = task.validate({**PAIR, "criteria": "Prefer brevity.", "allow_tie": True})
    text = task.render(ex).text()
    assert "Evaluation criteria: Prefer brevity." in text
    assert task.verdicts(ex) == ["A", "B", "tie"]


@pytest.mark.parametrize(
    "example, field",
    [
        ({"prompt": "p", "response_a": "a"}, "response_b"),
        ({"prompt": "p", "response_a": "  ", "response_b": "b"}, "response_a"),
        ({"prompt": "p", "response_a": 3, "response_b": "b"}, "response_a"),
        ({**PAIR, "tie_margin": 2}, "tie_margin"),
        ({**PAIR, "allow_tie": "yes"}, "allow_tie"),
        ({**PAIR, "criteria": 5}, "criteria"),
    ],
)
def test_pairwise_validation_names_the_field(example, field):
    with pytest.raises(InvalidInput) as err:
        get_task_type("pairwise").validate(example)
    assert err.value.field == field
    assert str(err.value).startswith(field)


def test_classification_labels_duplicates_rejected():
    task = get_task_type("classification")
    with pytest.raises(InvalidInput) as err:
        task.validate({"prompt": "q", "response": "r", "labels": ["yes", "Yes"]})
    assert err.value.field == "labels" and "duplicate" in str(err.value)
    with pytest.raises(InvalidInput):
        task.validate({"prompt": "q", "response": "r", "labels": ["only"]})


def test_pointwise_scale():
    task = get_task_type("pointwise")
    ex = task.validate({"prompt": "p", "response": "r", "scale": [1, 10]})
    assert task.verdicts(ex) == [str(i) for i in range(1, 11)]
    with pytest.raises(InvalidInput) as err:
        task.validate({"prompt": "p", "response": "r", "scale": [5, 1]})
    assert err.value.field == "scale"
    s = task.summarize({"1": 0.5, "2": 0.0, "3": 0.0, "4": 0.0, "5": 0.5}, task.validate({"prompt": "p", "response": "r"}))
    assert s.score == pytest.approx(3.0)


def test_pairwise_summary_tie_margin():
    task = get_task_type("pairwise")
    ex = task.validate({**PAIR, "tie_margin": 0.1})
    assert task.summarize({"A": 0.54, "B": 0.46}, ex).label == "tie"
    assert task.summarize({"A": 0.56, "B": 0.44}, ex).label == "A"
    ex3 = task.validate({**PAIR, "allow_tie": True})
    s = task.summarize({"A": 0.2, "B": 0.2, "tie": 0.6}, ex3)
    assert s.label == "tie" and s.score == pytest.approx(0.5)


@pytest.mark.parametrize(
    "text, label",
    [
        ("A", "A"),
        (" b.", "B"),
        ("Response B is better", "B"),
        ("Rationale: A is wrong because 2+2=4.\nVerdict: B", "B"),
        ("**Verdict:** A", "A"),
    ],
)
def test_parse(text, label):
    task = get_task_type("pairwise")
    assert task.parse(text, task.validate(PAIR)) == label


@pytest.mark.parametrize("text", ["Absolutely the first one", "", "I cannot decide"])
def test_parse_failure_is_an_error(text):
    task = get_task_type("pairwise")
    with pytest.raises(VerdictParseError):
        task.parse(text, task.validate(PAIR))


def test_targets():
    task = get_task_type("pairwise")
    ex = task.validate(PAIR)
    assert task.target(ex, "A") == "A"
    assert task.target(ex, "B", rationale="5 is wrong") == "Rationale: 5 is wrong\nVerdict: B"
    with pytest.raises(InvalidInput) as err:
        task.target(ex, "tie")
    assert err.value.field == "label"
    oe = get_task_type("open_ended")
    assert oe.target(oe.validate({"prompt": "Critique"}), " fine ") == "fine"


def test_swapped_exchanges_the_swap_fields_only():
    task = get_task_type("pairwise")
    ex = task.validate({**PAIR, "criteria": "Prefer brevity."})
    other = task.swapped(ex)
    assert (other["response_a"], other["response_b"]) == ("5", "4")
    assert other["prompt"] == ex["prompt"] and other["criteria"] == "Prefer brevity."
    assert task.swapped(other) == ex
    with pytest.raises(InvalidInput) as err:
        get_task_type("pointwise").swapped({"prompt": "p", "response": "r"})
    assert err.value.field == "task"


def test_a_lone_surrogate_is_refused_naming_the_field():
    from flame_reward.errors import InvalidInput
    from flame_reward.tasks.registry import get_task_type

    pairwise = get_task_type("pairwise")
    good = {"prompt": "p", "response_a": "a", "response_b": "b"}
    for field in ("prompt", "response_b", "criteria"):
        with pytest.raises(InvalidInput, match=f"^{field}: is not valid Unicode"):
            pairwise.validate(dict(good, **{field: "ok \ud800 broken"}))
