"""Real-model tests on the embedded default (SmolLM2-135M-Instruct). Marked ``model``;
they load the converted model (seconds) and run in CI."""

import pytest

from flame_reward.errors import InvalidInput, UnknownTaskType

from .clear_pairs import CLEAR_PAIRS

pytestmark = pytest.mark.model


def test_embedded_loads_fp32_on_cpu(embedded_judge):
    assert embedded_judge.info["dtype"] == "float32"
    assert embedded_judge.info["device"] == "cpu"
    assert embedded_judge.model_name == "smollm2-135m-instruct"


def test_batched_equals_one_by_one(embedded_judge):
    pairs = CLEAR_PAIRS[:4]
    batched = embedded_judge.compare_batch(pairs)
    for pair, b in zip(pairs, batched):
        s = embedded_judge.compare(*pair)
        assert abs(b.score - s.score) < 1e-4
        assert abs(b.orders[0]["A"] - s.orders[0]["A"]) < 1e-4
        assert abs(b.orders[1]["A"] - s.orders[1]["A"]) < 1e-4
    ratings = embedded_judge.score_batch([(p, a) for p, a, _ in pairs])
    for (p, a, _), r in zip(pairs, ratings):
        assert abs(embedded_judge.score(p, a).score - r.score) < 1e-4


def test_symmetry_on_the_real_model(embedded_judge):
    p, a, b = CLEAR_PAIRS[0]
    assert embedded_judge.compare(p, a, b).score + embedded_judge.compare(p, b, a).score == pytest.approx(1.0, abs=1e-5)


def test_documented_errors(embedded_judge):
    with pytest.raises(InvalidInput) as err:
        embedded_judge.judge("pairwise", [{"prompt": "p", "response_a": "a"}])
    assert err.value.field == "response_b"
    with pytest.raises(InvalidInput) as err:
        embedded_judge.compare("p", "", "b")
    assert err.value.field == "response_a"
    with pytest.raises(UnknownTaskType):
        embedded_judge.judge("no_such_task", [{"prompt": "p"}])
    with pytest.raises(InvalidInput) as err:
        embedded_judge.classify("q", "r", labels=["yes", "no", "yes"])
    assert err.value.field == "labels"


@pytest.mark.xfail(
    strict=True,
    reason="factual correctness under the default criteria is not what the shipped adapter learnt (issue 7): with it, "
    "debiased P(correct) 0.492-0.523 on these 10 clear pairs, 6/10 above 0.5, each order still position-locked "
    "(order-1 P(A) 0.54-0.86); raw model 0.492-0.517, 7/10. The adapter acts under the HH helpfulness and "
    "harmlessness criteria (tests/test_shipped_adapter.py)",
)
def test_prefers_correct_answers_in_both_orders(embedded_judge):
    verdicts = embedded_judge.compare_batch(CLEAR_PAIRS)
    for v in verdicts:
        assert v.score > 0.5  # debiased over both orders
        assert v.orders[0]["A"] > 0.5 and v.orders[1]["B"] > 0.5  # and in each order alone
