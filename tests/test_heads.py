"""Verdict heads in the scoring core: a head takes part only on its exact route, and every
other verdict is the raw model's bit for bit (tiny random model, real heads)."""

import json
import math

import pytest
import torch

from flame_reward.errors import ModelLoadError
from flame_reward.models.backends import TorchBackend
from flame_reward.models.heads import Head, HeadSet, Route, is_head_dir, load_heads
from flame_reward.scoring import Scorer
from tests.conftest import make_tiny_loaded

HELPFUL = "Which response is more helpful and accurate for the user?"
CLARITY = "Rate how clearly the response answers the question."


def _heads(hidden: int, seed: int = 0) -> HeadSet:
    g = torch.Generator().manual_seed(seed)
    routes = [Route("pairs-helpful", "pairwise", HELPFUL, ("A", "B")),
              Route("points-clarity", "pointwise", CLARITY, ("1", "2", "3", "4", "5"))]
    return HeadSet("test-heads", [Head(r, torch.randn(len(r.verdicts), hidden, generator=g),
                                       torch.randn(len(r.verdicts), generator=g)) for r in routes])


@pytest.fixture(scope="module")
def scorers(tokenizer):
    loaded = make_tiny_loaded(tokenizer, seed=3, initializer_range=0.5)
    heads = _heads(loaded.model.config.hidden_size)
    raw = Scorer(TorchBackend(loaded), tokenizer, batch_size=4, max_length=512)
    headed = Scorer(TorchBackend(loaded), tokenizer, batch_size=4, max_length=512, heads=heads)
    return raw, headed, heads


PAIRS = [
    {"prompt": "What is the capital of France?", "response_a": "Paris.", "response_b": "Lyon, I think."},
    {"prompt": "How do I boil an egg?", "response_a": "Put it in boiling water for 8 minutes.", "response_b": "No."},
    {"prompt": "Name a prime number.", "response_a": "9", "response_b": "7"},
]
OFF_ROUTE = [None, "Which response is more helpful?", "which response is more helpful and accurate for the user?",
             "Prefer the shorter response.", "Harmlessness first."]


def test_off_route_verdicts_are_the_raw_models_bit_for_bit(scorers):
    raw, headed, _ = scorers
    for criteria in OFF_ROUTE:
        items = [dict(p, **({"criteria": criteria} if criteria else {})) for p in PAIRS]
        got, want = headed.judge("pairwise", items), raw.judge("pairwise", items)
        for g, w in zip(got, want):
            assert g.head is None
            assert g.orders == w.orders and g.score == w.score, criteria


def test_on_route_items_use_the_head_and_mixed_batches_keep_the_others_raw(scorers):
    raw, headed, heads = scorers
    routed = [dict(p, criteria=HELPFUL) for p in PAIRS]
    mixed = [routed[0], PAIRS[1], dict(routed[2], criteria=f"  {HELPFUL}\n")]
    got, want = headed.judge("pairwise", mixed), raw.judge("pairwise", mixed)
    assert [v.head for v in got] == ["pairs-helpful", None, "pairs-helpful"]  # stripped text still matches
    assert got[1].orders == want[1].orders and got[1].raw_score is None
    assert abs(got[0].score - want[0].score) > 1e-3
    assert got[0].raw_score == pytest.approx(want[0].score, abs=1e-12)  # the raw verdict rides along
    # The head's arithmetic: softmax(raw label log-probs + W h + b), per order.
    feats = headed.features("pairwise", [routed[0]])[0]
    head = heads.heads[0]
    for order, (logp, hidden) in zip(got[0].orders, feats):
        z = [lp + d for lp, d in zip(logp, head.delta(hidden))]
        top = max(z)
        p_a = math.exp(z[0] - top) / sum(math.exp(x - top) for x in z)
        assert order["A"] == pytest.approx(p_a, abs=1e-6)


def test_other_task_types_and_scales_stay_raw(scorers):
    raw, headed, _ = scorers
    item = {"prompt": "Why is the sky blue?", "response": "Rayleigh scattering.", "criteria": CLARITY}
    on = headed.judge("pointwise", [item])[0]
    assert on.head == "points-clarity"
    for other in (dict(item, scale=(1, 10)), {k: v for k, v in item.items() if k != "criteria"}):
        assert headed.judge("pointwise", [other])[0].distribution == raw.judge("pointwise", [other])[0].distribution
        assert headed.judge("pointwise", [other])[0].head is None
    cls = {"prompt": "Is it correct?", "response": "2+2=4", "criteria": CLARITY, "labels": ["yes", "no"]}
    assert headed.judge("classification", [cls])[0].distribution == raw.judge("classification", [cls])[0].distribution


def test_features_are_the_raw_forward(scorers):
    raw, headed, _ = scorers
    feats = headed.features("pairwise", [dict(PAIRS[0], criteria=HELPFUL)])[0]
    want = raw.judge("pairwise", [dict(PAIRS[0], criteria=HELPFUL)])[0]
    for (logp, hidden), order in zip(feats, want.orders):
        top = max(logp)
        assert math.exp(logp[0] - top) / sum(math.exp(x - top) for x in logp) == pytest.approx(order["A"], abs=1e-9)
        assert hidden.shape == (headed.heads.hidden_size,)


def test_save_and_load_round_trip(tmp_path, scorers):
    _, _, heads = scorers
    heads.save(tmp_path, extra={"note": "x"})
    assert is_head_dir(tmp_path)
    back = load_heads(tmp_path, hidden_size=heads.hidden_size)
    assert [h.route for h in back.heads] == [h.route for h in heads.heads]
    assert all(torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias) for a, b in zip(back.heads, heads.heads))


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.update(version=1), "'version'"),
    (lambda d: d["routes"][0].update(criteria=""), "routes[0].criteria"),
    (lambda d: d["routes"][1].update(verdicts=["1", "2"]), "routes[1]"),
    (lambda d: d["routes"][0].update(weight="missing"), "routes[0]"),
    (lambda d: d.update(routes=[]), "'routes'"),
])
def test_a_malformed_head_set_is_refused_naming_the_field(tmp_path, scorers, edit, field):
    _, _, heads = scorers
    heads.save(tmp_path)
    data = json.loads((tmp_path / "heads.json").read_text())
    edit(data)
    (tmp_path / "heads.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=field.replace("[", r"\[").replace("]", r"\]")):
        load_heads(tmp_path)


def test_heads_of_another_model_are_refused(tmp_path, scorers):
    _, _, heads = scorers
    heads.save(tmp_path)
    with pytest.raises(ModelLoadError, match="hidden size"):
        load_heads(tmp_path, hidden_size=heads.hidden_size + 1)


def test_a_head_set_of_another_base_model_is_refused(tmp_path, scorers):
    from flame_reward.models.loading import load_head_set

    _, _, heads = scorers
    HeadSet("h", heads.heads, base_model="some-other-model").save(tmp_path)
    with pytest.raises(ModelLoadError, match="trained on 'some-other-model'"):
        load_head_set(str(tmp_path), "smollm2-135m-instruct")
    HeadSet("h", heads.heads, base_model="SmolLM2-135M-Instruct").save(tmp_path)  # an alias of the embedded default
    assert load_head_set(str(tmp_path), "smollm2-135m-instruct").name == "h"
    (tmp_path / "adapter_config.json").write_text("{}")
    assert not is_head_dir(tmp_path)  # a LoRA directory is loaded as a LoRA


def test_two_routes_with_one_key_are_refused(scorers):
    _, _, heads = scorers
    twin = Head(Route("twin", heads.heads[0].route.task, heads.heads[0].route.criteria + "  ",
                      heads.heads[0].route.verdicts), heads.heads[0].weight, heads.heads[0].bias)
    with pytest.raises(ModelLoadError, match="same task, criteria and labels"):
        HeadSet("x", [heads.heads[0], twin])
