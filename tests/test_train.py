"""Training recipe pieces: mixtures, targets and loss masks, and a tiny real training run."""

from collections import Counter

import pytest

from flame_reward.data.records import PairRecord, ScoreRecord
from flame_reward.errors import InvalidInput
from flame_reward.train.examples import from_pair, from_score, to_examples
from flame_reward.train.mixture import mix, mixing_rates
from flame_reward.train.targets import IGNORE, tokenize_example


def pair(i, label="A"):
    return PairRecord(f"prompt {i}", f"good {i}", f"bad {i}", label, "toy", None, "toy.jsonl", i)


def test_rates_are_examples_proportional_with_cap():
    rates = mixing_rates({"big": 100_000, "mid": 30_000, "small": 1_000}, cap=2**16)
    assert rates["big"] == pytest.approx(65536 / (65536 + 30000 + 1000))
    assert rates["small"] == pytest.approx(1000 / 96536)
    assert sum(rates.values()) == pytest.approx(1.0)
    uniform = mixing_rates({"a": 10, "b": 1000}, weights={"a": 1, "b": 1})
    assert uniform == {"a": 0.5, "b": 0.5}
    with pytest.raises(InvalidInput) as err:
        mixing_rates({"a": 1}, weights={"zzz": 1})
    assert err.value.field == "weights"


def test_mix_counts_seed_and_reproducibility():
    tasks = {"a": list(range(50)), "b": list(range(100, 110))}
    m = mix(tasks, cap=20, seed=1)
    counts = Counter(name for name, _ in m)
    assert counts == {"a": 20, "b": 10}
    assert len({x for _, x in m}) == 30  # no repeats when under the cap
    assert mix(tasks, cap=20, seed=1) == m
    assert mix(tasks, cap=20, seed=2) != m
    drawn = mix(tasks, total=100, seed=0, weights={"a": 1, "b": 1})
    assert Counter(n for n, _ in drawn) == {"a": 50, "b": 50}  # b repeated 5x to meet its share
    assert Counter(x for n, x in drawn if n == "b") == {x: 5 for x in range(100, 110)}


def test_pairs_emit_both_orders():
    a, b = list(from_pair(pair(1)))
    assert (a.example["response_a"], a.label) == ("good 1", "A")
    assert (b.example["response_a"], b.label) == ("bad 1", "B")
    assert a.key == b.key
    t1, t2 = list(from_pair(pair(2, "tie")))
    assert t1.label == t2.label == "tie" and t1.example["allow_tie"] is True
    labels = Counter(e.label for e in to_examples([pair(i) for i in range(10)]))
    assert labels == {"A": 10, "B": 10}
    assert "criteria" not in a.example


def test_pair_criteria_reach_both_orders():
    import dataclasses

    judged = dataclasses.replace(pair(4), criteria="Harmlessness.")
    assert [e.example["criteria"] for e in from_pair(judged)] == ["Harmlessness.", "Harmlessness."]


def test_score_target_rounds_to_scale():
    r = ScoreRecord("Summarize.", "sum", 3.6667, (1, 5), "summeval", "coherence", "f", 1, {"source_text": "doc"})
    ex = from_score(r)
    assert ex.label == "4" and ex.example["source"] == "doc" and ex.example["scale"] == (1, 5)


def test_loss_mask_covers_only_the_target(tokenizer):
    ex = next(from_pair(pair(3)))
    tok = tokenize_example(tokenizer, ex, 512)
    trained = [t for t, lab in zip(tok.input_ids, tok.labels) if lab != IGNORE]
    assert tokenizer.decode(trained) == "A" + tokenizer.eos_token
    assert len(tok.labels) == len(tok.input_ids)
    # The unmasked prompt is exactly what the scorer sees (same rendering and template).
    from flame_reward.encoding import encode
    from flame_reward.tasks import get_task_type

    task = get_task_type("pairwise")
    enc = encode(tokenizer, task.render(task.validate(ex.example)), task.truncatable(), 512, 2)
    assert tok.input_ids[: len(enc.ids)] == enc.ids


def test_invalid_examples_are_skipped_and_counted(tokenizer):
    # Real sets hold a few pairs with an empty response; they must not stop a run.
    from flame_reward.train.sft import _dataset

    empty = PairRecord("prompt", "good", "", "A", "toy", None, "toy.jsonl", 9)
    items = [*from_pair(pair(1)), *from_pair(empty)]
    invalid: dict[str, int] = {}
    ds, too_long = _dataset(tokenizer, items, 512, invalid)
    assert (len(ds), too_long) == (2, 0)
    assert invalid == {"response_b: is empty": 1, "response_a: is empty": 1}
    with pytest.raises(InvalidInput):  # without a counter the error still surfaces
        _dataset(tokenizer, items, 512)


def test_tiny_training_run_lowers_the_loss(tmp_path, tokenizer):
    from tests.conftest import make_tiny_loaded
    from flame_reward.train.sft import TrainConfig, latest_checkpoint, train

    # A wide init so the tiny model's logits can move: with the default 0.02 a 32-wide
    # model's logits are bounded near 0 and no adapter can lower the loss much.
    loaded = make_tiny_loaded(tokenizer, seed=1, initializer_range=0.5)
    items = to_examples([pair(i) for i in range(8)])
    cfg = TrainConfig(out=str(tmp_path / "run"), max_length=256, max_steps=12, batch_size=8,
                      learning_rate=2e-2, eval_every=0, save_every=6, warmup_ratio=0.0, log_every=1)
    report = train(cfg, items, loaded=loaded)
    assert report["steps"] == 12
    assert report["last_losses"][-1] < report["first_losses"][0] * 0.7
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    assert latest_checkpoint(tmp_path / "run").endswith("checkpoint-12")


def test_weights_from_effects():
    from flame_reward.train.recipes import weights_from_effects

    w = weights_from_effects({"a": 0.04, "b": 0.01, "c": -0.02})
    assert w == pytest.approx({"a": 0.8, "b": 0.2, "c": 0.0})
    assert weights_from_effects({"a": -0.1, "b": 0.0}) == {"a": 0.5, "b": 0.5}


def test_rm_mixture_is_uniform_and_never_sees_dev():
    from flame_reward.data import load_pairs
    from flame_reward.train.recipes import DataPlan, build_mixture, dev_pairs

    items = build_mixture("rm", DataPlan(pairwise=("llmbar", "pandalm")), total=400, seed=3)
    assert Counter(i.dataset for i in items) == {"llmbar": 200, "pandalm": 200}
    assert items == build_mixture("rm", DataPlan(pairwise=("llmbar", "pandalm")), total=400, seed=3)
    dev_keys = {r.key for name in ("llmbar", "pandalm") for r in load_pairs(name, split="dev").records}
    assert dev_keys and not dev_keys & {i.key for i in items}
    dev = dev_pairs(("llmbar",))
    assert dev and all(d.key in dev_keys for d in dev)
    with pytest.raises(InvalidInput) as err:
        build_mixture("opt-rm", DataPlan(pairwise=("llmbar",)))
    assert err.value.field == "weights"


def test_tail_patch_on_a_tiny_model(tmp_path, tokenizer):
    import argparse
    import json

    from tests.conftest import make_tiny_loaded
    from flame_reward.train.command import tail_patch
    from flame_reward.train.recipes import dev_pairs

    args = argparse.Namespace(model=None, init_adapter=None, device=None, max_length=1024, epochs=1.0, max_steps=-1,
                              batch_size=2, grad_accum=1, lr=1e-2, lora_r=4, lora_alpha=8, top_layers=None,
                              seed=0, eval_every=0, dev_pairs=4, save_every=100, threads=None, tail_steps=2)
    dev = dev_pairs(("llmbar",))[:4]
    details = tail_patch(args, ("llmbar", "pandalm"), dev, tmp_path,
                         loader=lambda: make_tiny_loaded(tokenizer, seed=2))
    assert set(details["sets"]) == {"llmbar", "pandalm"}
    for d in details["sets"].values():
        assert d["steps"] == 2
        assert d["effect"] == pytest.approx(d["dev_after"]["dev_accuracy"] - details["baseline"]["dev_accuracy"])
    assert sum(details["weights"].values()) == pytest.approx(1.0)
    assert json.loads((tmp_path / "tailpatch.json").read_text())["weights"] == details["weights"]
    assert "| llmbar |" in (tmp_path / "tailpatch.md").read_text()


def test_adapter_resolution(monkeypatch, tmp_path):
    from flame_reward.models import loading

    assert loading.resolve_adapter(None, None) is None
    assert loading.resolve_adapter("some/model", "auto") is None  # only the embedded default ships one
    assert loading.resolve_adapter(None, "/x/adapter") == "/x/adapter"
    shipped = tmp_path / "adapter"
    shipped.mkdir()
    (shipped / "adapter_config.json").write_text("{}")
    monkeypatch.setattr(loading, "packaged_adapter_dir", lambda model: shipped if loading.is_embedded(model) else None)
    assert loading.resolve_adapter(None, "auto") == str(shipped)
    assert loading.resolve_adapter(None, "none") is None
