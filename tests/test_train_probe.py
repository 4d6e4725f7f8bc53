"""The probe-built LoRA: its closed-form verdict is the PEFT model's, it switches on the
criteria, and the command path writes a loadable adapter with a report."""

import dataclasses
import json

import pytest
import torch

from flame_reward.data.records import PairRecord
from flame_reward.errors import InvalidInput
from flame_reward.train.cached import cache_examples
from flame_reward.train.examples import from_pair
from flame_reward.train.probe import (
    ProbeConfig,
    _Head,
    fit_probe_lora,
    lora_state,
    train_probe,
    verdict_states,
)
from flame_reward.train.targets import tokenize_example
from tests.conftest import make_tiny_loaded

NUMBER, APPLES = "Prefer the response that repeats the number.", "Prefer the response that mentions apples."


def loaded_with_massive_coordinate(tokenizer, seed=0):
    # Real LMs carry a near-constant "massive activation" coordinate (SmolLM2: ~7.2 +- 0.05
    # at the last MLP input) that carries the detectors' bias; give the tiny model one.
    loaded = make_tiny_loaded(tokenizer, seed=seed)
    with torch.no_grad():
        loaded.model.model.embed_tokens.weight[:, 0] = 2.0  # tied head: a shift common to all logits
    return loaded


def records(n, start=0):
    # Two criteria groups that reward opposite responses (as HH helpful and harmless do).
    out = []
    for i in range(start, start + n):
        good, bad = f"{i}", f"{i + 7} apples"
        flip = i % 4 >= 2
        criteria = APPLES if flip else NUMBER
        winner_first = i % 2 == 0
        a, b = (good, bad) if winner_first else (bad, good)
        label = ("A" if winner_first else "B") if not flip else ("B" if winner_first else "A")
        out.append(dataclasses.replace(PairRecord(f"Repeat the number {i}.", a, b, label, "toy", None, "toy", i),
                                       criteria=criteria))
    return out


def items(recs):
    return [ex for r in recs for ex in from_pair(r)]


def test_closed_form_verdict_equals_the_peft_model(tokenizer):
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    loaded = loaded_with_massive_coordinate(tokenizer)
    its = items(records(16))
    cached, _ = cache_examples(loaded.model, tokenizer, its, 1, 256, dtype="float32")
    x, rp = verdict_states(loaded.model, 1, cached)
    label_ids = {lab: tokenizer(lab, add_special_tokens=False)["input_ids"][0] for lab in ("A", "B")}
    head = _Head(loaded.model, label_ids)
    fit = fit_probe_lora(x, rp, [e.label for e in cached], [it.example["criteria"] for it in its], head,
                         ProbeConfig(out="unused", l2=0.01, detector_l2=1e-4))
    assert fit["groups"] == sorted([APPLES, NUMBER]) and len(set(fit["neurons"])) == 2
    predicted = head.logit_diff(x, rp, fit["neurons"], fit["gates"], fit["ups"], fit["scale"])

    model = get_peft_model(loaded.model, LoraConfig(r=2, lora_alpha=2, target_modules=["gate_proj", "up_proj", "down_proj"],
                                                    layers_to_transform=[1], task_type="CAUSAL_LM"))
    result = set_peft_model_state_dict(model, lora_state(head, fit, 1))
    assert not result.unexpected_keys
    model.eval()
    for item, ex, want in zip(its, cached, predicted):
        ids = tokenize_example(tokenizer, item, 256).input_ids
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids[:-1]])).logits[0, ex.positions[0]]
        got = logits[label_ids["A"]] - logits[label_ids["B"]]
        assert abs(float(got) - float(want)) < 1e-3


def test_fit_switches_the_preference_on_the_criteria(tokenizer):
    # Synthetic verdict states: coordinate 0 is the constant one, coordinate 1 says which
    # criteria are asked, coordinate 2 carries a preference whose sign the criteria flip.
    loaded = loaded_with_massive_coordinate(tokenizer)
    label_ids = {lab: tokenizer(lab, add_special_tokens=False)["input_ids"][0] for lab in ("A", "B")}
    head = _Head(loaded.model, label_ids)
    gen = torch.Generator().manual_seed(0)
    n = 400
    x = torch.randn(n, 32, generator=gen) * 0.1
    x[:, 0] = 5.6 + 0.01 * torch.randn(n, generator=gen)
    group_b = torch.arange(n) % 2 == 1
    x[:, 1] = torch.where(group_b, -1.0, 1.0) + 0.05 * torch.randn(n, generator=gen)
    pref = torch.randn(n, generator=gen)
    x[:, 2] = pref
    label_a = (pref > 0) ^ group_b
    labels = ["A" if a else "B" for a in label_a.tolist()]
    groups = ["b" if g else "a" for g in group_b.tolist()]
    rp = torch.zeros(n, 32)
    rp[:, 0] = 30.0
    fit = fit_probe_lora(x, rp, labels, groups, head, ProbeConfig(out="unused", l2=1e-3, scales=(0.5, 1.0, 2.0, 5.0)))
    assert min(fit["detector_agreement"].values()) >= 0.98  # scaled at the 1st/99th percentiles
    ld = head.logit_diff(x, rp, fit["neurons"], fit["gates"], fit["ups"], fit["scale"])
    base = head.logit_diff(x, rp, [], [], [], fit["scale"])
    shifted = ld - base  # what the rewritten neurons add
    for g in (False, True):
        sel = group_b == g
        agree = ((shifted[sel] > 0) == label_a[sel]).float().mean()
        assert agree > 0.9, (g, agree)


def test_a_group_with_one_verdict_is_refused(tokenizer):
    loaded = loaded_with_massive_coordinate(tokenizer)
    label_ids = {lab: tokenizer(lab, add_special_tokens=False)["input_ids"][0] for lab in ("A", "B")}
    x = torch.randn(6, 32)
    x[:, 0] = 5.0
    with pytest.raises(InvalidInput) as err:
        fit_probe_lora(x, torch.zeros(6, 32), ["A"] * 6, ["g"] * 6, _Head(loaded.model, label_ids),
                       ProbeConfig(out="unused"))
    assert err.value.field == "training data"


def test_train_probe_writes_a_loadable_adapter_and_report(tmp_path, tokenizer):
    from peft import PeftModel

    loaded = loaded_with_massive_coordinate(tokenizer, seed=3)
    cfg = ProbeConfig(out=str(tmp_path / "run"), top_layers=1, max_length=256, select_fraction=0.25,
                      cache_dtype="float32", shard_size=16, l2=0.01, detector_l2=1e-4)
    report = train_probe(cfg, items(records(24)), {"toy": items(records(8, start=100))}, loaded=loaded)
    assert set(report["groups"]) == {APPLES, NUMBER}
    assert report["dev_before"]["dev:toy"]["pairs"] == report["dev_after"]["dev:toy"]["pairs"] == 8
    saved = json.loads((tmp_path / "run" / "train_report.json").read_text())
    assert saved["neurons"] == report["neurons"] and saved["scale"] == report["scale"]

    fresh = loaded_with_massive_coordinate(tokenizer, seed=3).model
    peft = PeftModel.from_pretrained(fresh, str(tmp_path / "run" / "adapter")).eval()
    ids = tokenize_example(tokenizer, items(records(1, start=200))[0], 256).input_ids
    with torch.no_grad():
        adapted = peft(input_ids=torch.tensor([ids[:-1]])).logits[0, -1]
        raw = loaded_with_massive_coordinate(tokenizer, seed=3).model(input_ids=torch.tensor([ids[:-1]])).logits[0, -1]
    ids_ab = [tokenizer(lab, add_special_tokens=False)["input_ids"][0] for lab in ("A", "B")]
    assert float((adapted[ids_ab[0]] - adapted[ids_ab[1]]) - (raw[ids_ab[0]] - raw[ids_ab[1]])) != 0.0


def test_cli_refuses_probe_without_the_cache(tmp_path, capsys):
    from flame_reward.cli import main

    code = main(["train", "--out", str(tmp_path / "r"), "--method", "probe", "--pairwise-sets", "llmbar"])
    assert code != 0
    assert "--method" in capsys.readouterr().err
    code = main(["train", "--out", str(tmp_path / "r"), "--background-sets", "pandalm", "--pairwise-sets", "llmbar"])
    assert code != 0 and "--background-sets" in capsys.readouterr().err
    code = main(["train", "--out", str(tmp_path / "r"), "--method", "probe", "--cached-top-layers", "2",
                 "--background-examples", "0", "--pairwise-sets", "llmbar"])
    assert code != 0 and "--background-examples" in capsys.readouterr().err


def test_background_prompts_keep_the_neurons_off(tokenizer):
    # Prompts under other criteria (here: coordinate 3 set, coordinate 1 near 0) are negatives
    # of every detector, so the rewritten neurons add nothing to their verdicts.
    loaded = loaded_with_massive_coordinate(tokenizer)
    label_ids = {lab: tokenizer(lab, add_special_tokens=False)["input_ids"][0] for lab in ("A", "B")}
    head = _Head(loaded.model, label_ids)
    gen = torch.Generator().manual_seed(1)
    n, m = 200, 100
    x = torch.randn(n + m, 32, generator=gen) * 0.1
    x[:, 0] = 5.6 + 0.01 * torch.randn(n + m, generator=gen)
    group_b = torch.arange(n) % 2 == 1
    x[:n, 1] = torch.where(group_b, -1.0, 1.0)
    x[n:, 3] = 1.0
    x[:, 2] = torch.randn(n + m, generator=gen)
    labels = ["A" if a else "B" for a in ((x[:n, 2] > 0) ^ group_b).tolist()]
    groups = ["b" if g else "a" for g in group_b.tolist()]
    rp = torch.zeros(n + m, 32)
    rp[:, 0] = 30.0
    fit = fit_probe_lora(x[:n], rp[:n], labels, groups, head, ProbeConfig(out="unused", l2=1e-3, detector_l2=1e-4),
                         background=x[n:])
    assert fit["background_examples"] == m and fit["background_all_gates_off"] >= 0.98
    with torch.no_grad():
        on = head.logit_diff(x, rp, fit["neurons"], fit["gates"], fit["ups"], fit["scale"])
        # the same neurons rewritten to output nothing
        zero = head.logit_diff(x, rp, fit["neurons"], fit["gates"], [u * 0 for u in fit["ups"]], fit["scale"])
    effect = (on - zero).abs()
    assert effect[n:].mean() < 0.05 * effect[:n].mean()  # off for the background, on for the groups


def test_background_under_a_training_criteria_is_refused_before_caching(tmp_path, tokenizer):
    cfg = ProbeConfig(out=str(tmp_path / "run"), top_layers=1, max_length=256)
    with pytest.raises(InvalidInput) as err:
        train_probe(cfg, items(records(8)), background=items(records(2, start=50)),
                    loaded=loaded_with_massive_coordinate(tokenizer))
    assert err.value.field == "background"
    assert not (tmp_path / "run" / "cache").exists()
