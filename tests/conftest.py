"""Shared fixtures: a tiny random Llama (fast suite) and the embedded default (model suite).

The tiny model uses the embedded default's tokenizer (real chat template, real verdict
tokens) with randomly initialised weights from a config built here, so the fast tests
exercise the real rendering/encoding/batching path in milliseconds per forward.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def in_process_batchers_stop():
    """Every module stops the process-wide in-process batchers its integrations started, so
    no batcher thread outlives it (the server tests check that none does)."""
    yield
    import sys

    sources = sys.modules.get("flame_reward.integrations.judge_sources")
    if sources is not None:
        sources.close_in_process()


@pytest.fixture(scope="session")
def embedded_dir():
    from flame_reward.models.embedded import embedded_model_dir

    return embedded_model_dir()


@pytest.fixture(scope="session")
def tokenizer(embedded_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_dir)
    return tok


def make_tiny_loaded(tokenizer, seed: int = 0, initializer_range: float = 0.02):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from flame_reward.models.loading import LoadedModel

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        initializer_range=initializer_range,
    )
    model = LlamaForCausalLM(config).eval()
    return LoadedModel(model, tokenizer, "tiny-random-llama", "<memory>", "cpu", "float32")


@pytest.fixture(scope="session")
def tiny_loaded(tokenizer):
    return make_tiny_loaded(tokenizer)


@pytest.fixture()
def tiny_judge(tiny_loaded):
    """A fresh Autorater over the tiny random Llama (fresh so cost counters start at 0)."""
    from flame_reward.autorater import Autorater
    from flame_reward.models.backends import TorchBackend
    from flame_reward.scoring import Scorer

    scorer = Scorer(TorchBackend(tiny_loaded), tiny_loaded.tokenizer, batch_size=4, max_length=512)
    return Autorater(scorer, model_name="tiny-random-llama")


@pytest.fixture(scope="session")
def embedded_judge():
    from flame_reward.autorater import Autorater

    return Autorater.from_pretrained(batch_size=4, max_length=1024)
