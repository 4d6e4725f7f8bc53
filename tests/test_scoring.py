"""The scoring core on a tiny random Llama: batching, order, symmetry, labels, truncation."""

import math

import pytest
import torch

from flame_reward.encoding import TRUNCATION_MARK, encode, label_token_ids
from flame_reward.errors import InvalidInput
from flame_reward.results import ItemError
from flame_reward.tasks import get_task_type

PAIRS = [
    (f"Question {i}: explain {'topic ' * (i * 7)}", "short answer " * (i + 1), "a different reply " * (3 * i + 1))
    for i in range(7)
]


def test_batched_equals_one_by_one(tiny_judge):
    batched = tiny_judge.compare_batch(PAIRS)
    single = [tiny_judge.compare(*p) for p in PAIRS]
    for b, s in zip(batched, single):
        assert b.score == pytest.approx(s.score, abs=1e-4)
        for ob, os_ in zip(b.orders, s.orders):
            assert ob["A"] == pytest.approx(os_["A"], abs=1e-4)


def test_results_in_input_order(tiny_judge):
    # Judge a reversed list: the verdicts must follow the input, not the length-sorted batches.
    forward = tiny_judge.compare_batch(PAIRS)
    backward = tiny_judge.compare_batch(PAIRS[::-1])
    for f, b in zip(forward, backward[::-1]):
        assert f.score == pytest.approx(b.score, abs=1e-5)
        assert f.tokens == b.tokens


def test_pairwise_is_antisymmetric_by_construction(tiny_judge):
    for p, a, b in PAIRS[:3]:
        ab = tiny_judge.compare(p, a, b)
        ba = tiny_judge.compare(p, b, a)
        assert ab.score + ba.score == pytest.approx(1.0, abs=1e-5)
        assert len(ab.orders) == 2
        # Debiased = mean of order 1's P(A) and order 2's P(B).
        assert ab.score == pytest.approx(0.5 * (ab.orders[0]["A"] + ab.orders[1]["B"]), abs=1e-9)


def test_distributions_are_normalised(tiny_judge):
    v = tiny_judge.score("p", "r", scale=(1, 10))
    assert sum(v.distribution.values()) == pytest.approx(1.0)
    assert 1.0 <= v.score <= 10.0
    c = tiny_judge.classify("q", "r", labels=["supported", "contradicted", "unrelated"])
    assert set(c.distribution) == {"supported", "contradicted", "unrelated"}
    assert c.score == pytest.approx(c.distribution["supported"])


def test_prefix_labels_get_an_end_token(tokenizer):
    seqs = label_token_ids(tokenizer, [str(i) for i in range(1, 11)])
    one, ten = seqs[0], seqs[9]
    assert one[-1] == tokenizer.eos_token_id  # "1" is a prefix of "10"
    assert ten[: len(one) - 1] == one[:-1]
    assert label_token_ids(tokenizer, ["A", "B"]) == [[tokenizer.encode("A", add_special_tokens=False)[0]],
                                                      [tokenizer.encode("B", add_special_tokens=False)[0]]]


def test_multi_token_labels_scored_exactly(tiny_judge, tiny_loaded):
    """P(label) must equal the product of its token probabilities, computed independently."""
    labels = ["supported", "contradicted", "not enough information"]
    ex = {"prompt": "Is it supported?", "response": "The sky is green.", "labels": labels}
    [v] = tiny_judge.judge("classification", [ex])
    task = get_task_type("classification")
    enc = encode(tiny_loaded.tokenizer, task.render(task.validate(ex)), (), 512)
    model = tiny_loaded.model
    logps = []
    for seq in label_token_ids(tiny_loaded.tokenizer, labels):
        ids = torch.tensor([enc.ids + seq])
        with torch.no_grad():
            lp = torch.log_softmax(model(ids).logits[0].float(), -1)
        start = len(enc.ids) - 1
        logps.append(sum(lp[start + t, tok].item() for t, tok in enumerate(seq)))
    z = sum(math.exp(x) for x in logps)
    for label, lp in zip(labels, logps):
        assert v.distribution[label] == pytest.approx(math.exp(lp) / z, abs=1e-5)


def test_bad_items_raise_or_return(tiny_judge):
    items = [
        {"prompt": "p", "response_a": "a", "response_b": "b"},
        {"prompt": "p", "response_a": "", "response_b": "b"},
        {"prompt": "p", "response_b": "b"},
    ]
    with pytest.raises(InvalidInput) as err:
        tiny_judge.judge("pairwise", items)
    assert err.value.field == "response_a" and "item 1" in str(err.value)
    out = tiny_judge.judge("pairwise", items, on_error="return")
    assert not isinstance(out[0], ItemError)
    assert isinstance(out[1], ItemError) and out[1].field == "response_a"
    assert isinstance(out[2], ItemError) and out[2].field == "response_a" and "missing" in out[2].message


def test_truncation_spares_instruction_and_verdict_slot(tiny_judge, tiny_loaded):
    tiny_judge.scorer.max_length = 256
    long_a = "alpha " * 2000
    v = tiny_judge.compare("Which is better?", long_a, "beta")
    assert "response_a" in v.truncated and "response_b" not in v.truncated
    task = get_task_type("pairwise")
    enc = encode(tiny_loaded.tokenizer, task.render(task.validate(
        {"prompt": "Which is better?", "response_a": long_a, "response_b": "beta"})), task.truncatable(), 256, 1)
    text = tiny_loaded.tokenizer.decode(enc.ids)
    assert len(enc.ids) <= 255
    assert "INSTRUCTION:" in text and "Which is better?" in text and "EVALUATION:" in text
    assert TRUNCATION_MARK.strip() in text and text.rstrip().endswith("assistant")


def test_too_small_budget_names_max_length(tiny_judge):
    tiny_judge.scorer.max_length = 40
    with pytest.raises(InvalidInput) as err:
        tiny_judge.compare("p", "a", "b")
    assert err.value.field == "max_length"


def test_cost_is_counted(tiny_judge):
    tiny_judge.compare_batch(PAIRS[:4])
    cost = tiny_judge.scorer.cost
    assert cost.judgments == 4 and cost.forwards == 2 and cost.tokens > 0  # 8 presentations, batch 4


def test_generation_reports_parse_failures(tiny_judge):
    out = tiny_judge.generate("pairwise", [{"prompt": "p", "response_a": "a", "response_b": "b"}],
                              max_new_tokens=8)
    [g] = out
    # A random model writes noise: it must surface as an error, never as a verdict.
    if g.label is None:
        assert g.error and "no verdict" in g.error
    else:
        assert g.label in ("A", "B") and g.error is None


def test_open_ended_needs_generation(tiny_judge):
    with pytest.raises(InvalidInput) as err:
        tiny_judge.judge("open_ended", [{"prompt": "Critique"}])
    assert err.value.field == "task"
