"""Shared pieces of the integration tests (OpenRLHF, verl, Ray): a tiny judge on disk, servers.

The tiny judge is the fast suite's random Llama (real SmolLM2 tokenizer and template) saved
to a directory, so every face loads it the way users load a model: by path, in this
process, in a Ray actor or in a ``flame-reward serve`` subprocess. Its weights are large
(initializer_range 0.5) so different inputs get clearly different verdicts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WAIT = 60.0


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> str:
    from tests.conftest import make_tiny_loaded

    path = tmp_path_factory.mktemp("tiny-judge")
    loaded = make_tiny_loaded(tokenizer, seed=3, initializer_range=0.5)
    loaded.model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_dir_judge(tiny_model_dir):
    """The tiny judge loaded from its directory (the in-process reference for every face)."""
    from flame_reward.autorater import Autorater

    return Autorater.from_pretrained(tiny_model_dir, max_length=512, batch_size=8)


@contextlib.contextmanager
def http_sidecar(judge: Any, tokens: tuple[str, ...] = (), **spec: Any) -> Iterator[tuple[str, Any]]:
    """The HTTP face over a RewardServicer's batcher on 127.0.0.1 (random port); always stopped."""
    from flame_reward.integrations.openrlhf import RewardSpec
    from flame_reward.sidecar.http import serve_http
    from flame_reward.sidecar.service import RewardServicer

    servicer = RewardServicer(judge)
    http = serve_http(servicer, "127.0.0.1", 0, tokens=tokens, spec=RewardSpec(**spec) if spec else None)
    try:
        yield f"http://127.0.0.1:{http.port}", servicer
    finally:
        http.stop(WAIT)
        servicer.close(WAIT)
        assert not http._thread.is_alive(), "the HTTP server did not stop"


def chat_prompt(tokenizer: Any, text: str) -> str:
    """The chat-templated prompt OpenRLHF sends (``apply_chat_template(..., tokenize=False)``)."""
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)


def openrlhf_query(tokenizer: Any, prompt: str, response: str, eos: bool = True) -> str:
    """OpenRLHF's query exactly as SingleTurnAgentExecutor builds it: the prompt's tokens
    (``add_special_tokens=False``) plus the response's, decoded with special tokens."""
    ids = tokenizer(text=prompt, add_special_tokens=False)["input_ids"]
    ids = list(ids) + list(tokenizer(text=response, add_special_tokens=False)["input_ids"])
    if eos:
        ids.append(tokenizer.eos_token_id)
    return tokenizer.decode(ids, skip_special_tokens=False)


def write_file(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)
