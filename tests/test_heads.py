"""Gated heads on the tiny random Llama: routing by task, verdicts and exact criteria, raw
weights everywhere else, input order kept, and the faces that report which route a verdict took.

The shipped adapter's own checks (real pairs, the embedded default) are in
tests/test_shipped_adapter.py.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from flame_reward.errors import ModelLoadError

TRAINED = "Trained criteria. Prefer the response the head was fitted for."
PAIRS = [
    ("Question one: what is 2+2?", "It is 4.", "It is 5, clearly."),
    ("Name a primary colour, please.", "Red.", "Green is a primary colour of paint."),
    ("Summarise the plot of a long novel " + "in detail " * 30, "A short summary.", "A much longer reply " * 12),
]


@pytest.fixture(scope="module")
def model_dirs(tokenizer, tmp_path_factory):
    """A saved tiny model, a random LoRA on it with ``heads.json`` (gated) and the same LoRA without (ungated)."""
    from peft import LoraConfig, get_peft_model

    from flame_reward.models.heads import Route, write_routes
    from tests.conftest import make_tiny_loaded

    root = tmp_path_factory.mktemp("heads")
    loaded = make_tiny_loaded(tokenizer, seed=2, initializer_range=0.5)  # verdicts far from uniform
    loaded.model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    torch.manual_seed(0)
    peft = get_peft_model(make_tiny_loaded(tokenizer, seed=2, initializer_range=0.5).model,
                          LoraConfig(r=2, lora_alpha=2, target_modules=["gate_proj", "up_proj", "down_proj"],
                                     layers_to_transform=[1], init_lora_weights=False))
    with torch.no_grad():  # large enough to move the verdicts visibly
        for name, p in peft.named_parameters():
            if "lora_" in name:
                p.mul_(20.0)
    peft.save_pretrained(root / "ungated")
    shutil.copytree(root / "ungated", root / "gated")
    write_routes(root / "gated", "tiny-head", [Route("pairwise", TRAINED, ("A", "B"))])
    return root


def _judge(model_dirs, adapter, **kwargs):
    from flame_reward.autorater import Autorater

    return Autorater.from_pretrained(str(model_dirs / "model"), adapter=adapter, device="cpu", batch_size=4,
                                     max_length=512, **kwargs)


@pytest.fixture(scope="module")
def judges(model_dirs):
    return {"gated": _judge(model_dirs, str(model_dirs / "gated")),
            "ungated": _judge(model_dirs, str(model_dirs / "ungated")),
            "raw": _judge(model_dirs, None)}


def _examples(criteria, allow_tie=False):
    out = []
    for p, a, b in PAIRS:
        ex = {"prompt": p, "response_a": a, "response_b": b, "allow_tie": allow_tie}
        if criteria is not None:
            ex["criteria"] = criteria
        out.append(ex)
    return out


def _max_diff(xs, ys):
    return max(max(abs(x.distribution[k] - y.distribution[k]) for k in x.distribution) for x, y in zip(xs, ys))


@pytest.mark.parametrize("criteria", [None, "Prefer the shorter response.", "trained criteria. Prefer the response "
                                      "the head was fitted for.", TRAINED + " Also be kind."])
def test_off_route_items_get_the_raw_models_verdicts(judges, criteria):
    gated = judges["gated"].judge("pairwise", _examples(criteria))
    raw = judges["raw"].judge("pairwise", _examples(criteria))
    assert all(v.head is None for v in gated)
    assert _max_diff(gated, raw) <= 1e-6


def test_trained_route_uses_the_head_and_other_labels_do_not(judges):
    gated = judges["gated"].judge("pairwise", _examples(TRAINED))
    ungated = judges["ungated"].judge("pairwise", _examples(TRAINED))
    raw = judges["raw"].judge("pairwise", _examples(TRAINED))
    assert [v.head for v in gated] == ["tiny-head"] * len(PAIRS)
    assert _max_diff(gated, ungated) <= 1e-6
    assert _max_diff(gated, raw) > 1e-3  # the head does change these verdicts
    # surrounding whitespace renders the same prompt, so it is the same route
    padded = judges["gated"].judge("pairwise", _examples(f"  {TRAINED}\n"))
    assert [v.head for v in padded] == ["tiny-head"] * len(PAIRS) and _max_diff(padded, gated) <= 1e-6
    # with a tie label the verdict vocabulary differs from the trained one: raw
    tie = judges["gated"].judge("pairwise", _examples(TRAINED, allow_tie=True))
    assert all(v.head is None for v in tie)
    assert _max_diff(tie, judges["raw"].judge("pairwise", _examples(TRAINED, allow_tie=True))) <= 1e-6


def test_mixed_batches_route_each_item_and_keep_input_order(judges):
    examples = _examples(TRAINED) + _examples(None) + _examples("Prefer the shorter response.")
    order = [examples[i] for i in (3, 0, 6, 4, 1, 7, 5, 2, 8)]  # routes interleaved
    order.insert(4, {"prompt": "p", "response_a": "", "response_b": "b", "criteria": TRAINED})  # an item error
    got = judges["gated"].judge("pairwise", order, on_error="return")
    assert got[4].field == "response_a"
    for ex, v in zip(order, got):
        if ex.get("response_a") == "":
            continue
        on = ex.get("criteria") == TRAINED
        ref = (judges["ungated"] if on else judges["raw"]).judge("pairwise", [ex])[0]
        assert v.head == ("tiny-head" if on else None)
        assert _max_diff([v], [ref]) <= 1e-5  # batch-mates differ from the one-item reference


def test_pointwise_classification_and_generation_run_raw(judges):
    items = [(p, a) for p, a, _ in PAIRS]
    for method, kwargs in (("score_batch", {}), ("classify_batch", {"criteria": TRAINED})):
        gated = getattr(judges["gated"], method)(items, **kwargs)
        raw = getattr(judges["raw"], method)(items, **kwargs)
        assert all(v.head is None for v in gated) and _max_diff(gated, raw) <= 1e-6
    ex = _examples(TRAINED)[:2]
    gen = judges["gated"].generate("pairwise", ex, max_new_tokens=6, rationale=False)
    assert [g.text for g in gen] == [g.text for g in judges["raw"].generate("pairwise", ex, max_new_tokens=6,
                                                                             rationale=False)]


def test_raw_weights_are_in_place_outside_routed_calls(judges):
    gated, raw = judges["gated"].scorer.backend.model, judges["raw"].scorer.backend.model
    head = judges["gated"].scorer.head
    judges["gated"].judge("pairwise", _examples(TRAINED))

    def same():
        return all(torch.equal(a, b) for a, b in zip(gated.parameters(), raw.parameters()))

    assert same()
    with pytest.raises(RuntimeError):
        with head.active(True):
            assert not same()
            raise RuntimeError("an error inside a routed call")
    assert same()


def test_ungated_adapter_takes_part_everywhere(judges):
    got = judges["ungated"].judge("pairwise", _examples(None))
    assert all(v.head == "ungated" for v in got)
    assert judges["ungated"].info["head"] == {"name": "ungated", "routes": None}
    assert judges["gated"].info["head"]["routes"] == [{"task": "pairwise", "criteria": TRAINED, "verdicts": ["A", "B"]}]


def test_an_unmerged_gated_adapter_routes_the_same(model_dirs, judges):
    from flame_reward.autorater import Autorater
    from flame_reward.models.backends import TorchBackend
    from flame_reward.models.loading import load_model
    from flame_reward.scoring import Scorer

    loaded = load_model(str(model_dirs / "model"), adapter=str(model_dirs / "gated"), device="cpu",
                        merge_adapter=False)
    judge = Autorater(Scorer(TorchBackend(loaded), loaded.tokenizer, batch_size=4, max_length=512))
    examples = _examples(TRAINED) + _examples(None)
    got = judge.judge("pairwise", examples)
    assert _max_diff(got, judges["gated"].judge("pairwise", examples)) <= 1e-5
    assert [v.head for v in got] == ["tiny-head"] * 3 + [None] * 3


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"format": "other", "version": 1}', "'format'"),
    ('{"format": "flame-reward-heads", "version": 9, "name": "x", "routes": []}', "'version'"),
    ('{"format": "flame-reward-heads", "version": 1, "name": "x", "routes": []}', "'routes'"),
    ('{"format": "flame-reward-heads", "version": 1, "name": "x", "routes": [{"task": "pairwise", "criteria": 3, '
     '"verdicts": ["A", "B"]}]}', r"routes\[0\].criteria"),
    ('{"format": "flame-reward-heads", "version": 1, "name": "x", "routes": [{"task": "pairwise", '
     '"verdicts": []}]}', r"routes\[0\].verdicts"),
])
def test_a_malformed_heads_file_is_refused_by_field(model_dirs, tmp_path, content, message):
    from flame_reward.models.loading import load_model

    bad = tmp_path / "bad"
    shutil.copytree(model_dirs / "gated", bad)
    (bad / "heads.json").write_text(content)
    with pytest.raises(ModelLoadError, match=message):
        load_model(str(model_dirs / "model"), adapter=str(bad), device="cpu")


def test_onnx_never_merges_a_gated_head(model_dirs):
    from flame_reward.models.loading import packaged_adapter_dir
    from flame_reward.models.onnx_export import onnx_adapter

    with pytest.raises(ModelLoadError, match="gated head"):
        onnx_adapter(str(model_dirs / "model"), str(model_dirs / "gated"))
    assert onnx_adapter(str(model_dirs / "model"), str(model_dirs / "ungated")) == str(model_dirs / "ungated")
    if packaged_adapter_dir(None) is not None:  # the shipped head is gated: "auto" exports the raw model
        assert onnx_adapter(None, "auto") is None
    # an export that merged a gated head before gating existed: tests/test_onnx_backend.py


def test_trl_logs_head_and_raw_judgments(judges):
    from flame_reward.trl import flame_group_reward

    prompts, completions = ["What is 2+2?"] * 3, ["4", "5", "four"]
    for criteria, head in ((TRAINED, 3.0), (None, 0.0)):
        logged = {}
        fn = flame_group_reward(judges["gated"], name="g", criteria=criteria)
        fn(prompts=prompts, completions=completions, log_metric=lambda k, v: logged.__setitem__(k, v))
        assert logged["g/judge_head_judgments"] == head  # the group's 3 pairs
        assert logged["g/judge_raw_judgments"] == 3.0 - head


def test_portable_base_model_id(embedded_dir, tmp_path):
    from flame_reward.models.embedded import EMBEDDED_NAME
    from flame_reward.models.loading import make_adapter_config_portable, portable_base_id

    assert portable_base_id(str(embedded_dir)) == EMBEDDED_NAME
    assert portable_base_id("/elsewhere/model") == "/elsewhere/model"
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(embedded_dir), "r": 2}))
    make_adapter_config_portable(tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text()) == {"base_model_name_or_path": EMBEDDED_NAME,
                                                                          "r": 2}
