"""The cached top-layer trainer: its forward is the model's, its adapter loads normally."""

import json

import pytest
import torch

from flame_reward.data.records import PairRecord
from flame_reward.errors import InvalidInput
from flame_reward.train.cached import (
    CachedConfig,
    cache_examples,
    top_logits,
    train_cached,
)
from flame_reward.train.examples import from_pair
from flame_reward.train.targets import tokenize_example
from tests.conftest import make_tiny_loaded


def pairs(n, start=0):
    # A learnable toy preference: the better response repeats the prompt's number.
    out = []
    for i in range(start, start + n):
        good, bad = f"{i}", f"{i + 7} apples"
        out.append(PairRecord(f"Repeat the number {i}.", *((good, bad, "A") if i % 2 else (bad, good, "B")),
                              "toy", None, "toy", i))
    return out


def items_of(records):
    return [ex for r in records for ex in from_pair(r)]


def test_cached_forward_equals_the_full_model(tokenizer):
    loaded = make_tiny_loaded(tokenizer)
    items = items_of(pairs(2))
    cached, skipped = cache_examples(loaded.model, tokenizer, items, 1, 512, dtype="float32")
    assert skipped == {} and len(cached) == 4
    for item, ex in zip(items, cached):
        ids = tokenize_example(tokenizer, item, 512).input_ids
        with torch.no_grad():
            full = loaded.model(input_ids=torch.tensor([ids[:-1]])).logits[0, ex.positions]
            mine = top_logits(loaded.model, 1, ex.hidden, ex.positions)
        assert torch.allclose(full, mine, atol=1e-5)
        # The targets are the verdict then the end-of-turn token.
        assert tokenizer.convert_ids_to_tokens(ex.targets.tolist()) == [item.label, tokenizer.eos_token]


def test_training_lowers_the_loss_and_the_adapter_loads_normally(tmp_path, tokenizer):
    from peft import PeftModel

    loaded = make_tiny_loaded(tokenizer, seed=1)
    cfg = CachedConfig(out=str(tmp_path / "run"), top_layers=1, max_length=256, epochs=3, batch_size=8,
                       learning_rate=5e-3, select_fraction=0.25, cache_dtype="float32", shard_size=16)
    dev = {"toy": items_of(pairs(6, start=100))}
    report = train_cached(cfg, items_of(pairs(24)), dev, loaded=loaded)
    losses = [h["train_loss"] for h in report["history"][1:]]
    assert losses[-1] < losses[0]
    assert report["dev_before"]["dev:toy"]["pairs"] == 6
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    assert json.loads((tmp_path / "run" / "train_report.json").read_text())["best_epoch"] == report["best_epoch"]

    # The saved adapter, loaded the standard way on a fresh copy of the base, computes what
    # the cached path computes for the model that was kept.
    fresh = make_tiny_loaded(tokenizer, seed=1).model
    peft = PeftModel.from_pretrained(fresh, str(tmp_path / "run" / "adapter")).eval()
    item = items_of(pairs(1, start=200))[0]
    [ex], _ = cache_examples(fresh, tokenizer, [item], 1, 256, dtype="float32")
    ids = tokenize_example(tokenizer, item, 256).input_ids
    with torch.no_grad():
        full = peft(input_ids=torch.tensor([ids[:-1]])).logits[0, ex.positions]
        mine = top_logits(peft, 1, ex.hidden, ex.positions)
    assert torch.allclose(full, mine, atol=1e-5)
    if report["best_epoch"] > 0:
        base = make_tiny_loaded(tokenizer, seed=1).model
        with torch.no_grad():
            assert not torch.allclose(base(input_ids=torch.tensor([ids[:-1]])).logits[0, ex.positions], full)


def test_rerun_resumes_from_cache_and_last_epoch(tmp_path, tokenizer, monkeypatch):
    import flame_reward.train.cached as cached_mod

    loaded = make_tiny_loaded(tokenizer, seed=2)
    cfg = CachedConfig(out=str(tmp_path / "run"), top_layers=1, max_length=256, epochs=1, batch_size=8,
                       select_fraction=0.25, cache_dtype="float32", shard_size=8)
    train_cached(cfg, items_of(pairs(12)), loaded=loaded)
    calls = []
    real = cached_mod.cache_examples
    monkeypatch.setattr(cached_mod, "cache_examples", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg.epochs = 2
    report = train_cached(cfg, items_of(pairs(12)), loaded=make_tiny_loaded(tokenizer, seed=2))
    assert calls == []  # every shard came back from disk
    assert [h["epoch"] for h in report["history"]] == [0, 1, 2]
    with pytest.raises(InvalidInput) as err:  # other examples cannot reuse this cache
        train_cached(cfg, items_of(pairs(10, start=50)), loaded=make_tiny_loaded(tokenizer, seed=2))
    assert err.value.field == "out"
