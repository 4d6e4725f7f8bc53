"""verl: our ``compute_score`` loaded by verl's own loader and awaited by its reward managers.

verl 0.9's ``naive`` and ``rate_limited`` reward managers (``verl.experimental.reward_loop``)
run ``run_single`` on a one-sample ``DataProto`` (built as verl's own CPU test builds it),
decode the response and await our ``compute_score``, loaded with
``verl.trainer.ppo.reward.get_custom_reward_fn`` from a config, in process, through the
gRPC sidecar and through the HTTP sidecar.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.integration_helpers import http_sidecar, tiny_dir_judge, tiny_model_dir  # noqa: F401
from tests.server_helpers import one_torch_thread, running_server  # noqa: F401

os.environ.setdefault("VERL_USE_EXTERNAL_PLUGINS", "none")  # verl loads no plugins at import
pytest.importorskip("verl", reason="the 'verl' extra is not installed")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.experimental.reward_loop.reward_manager.limited import RateLimitedRewardManager  # noqa: E402
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager  # noqa: E402
from verl.trainer.ppo.reward import get_custom_reward_fn  # noqa: E402

KEYS_POINTWISE = {"score", "rating", "truncated", "head", "error"}
KEYS_REFERENCE = {"score", "p_better", "truncated", "head", "error"}


def sample(tokenizer, response: str, ground_truth: str = "", extra_info: dict | None = None) -> DataProto:
    """One rollout sample as verl's reward managers receive it."""
    ids = tokenizer.encode(response, add_special_tokens=False) or [tokenizer.pad_token_id]
    responses = torch.tensor([ids], dtype=torch.long)
    mask = torch.ones_like(responses) if response else torch.zeros_like(responses)
    return DataProto.from_dict(
        tensors={"responses": responses, "attention_mask": mask},
        non_tensors={"data_source": np.array(["hh"], dtype=object),
                     "reward_model": np.array([{"ground_truth": ground_truth}], dtype=object),
                     "extra_info": np.array([dict(extra_info or {})], dtype=object)})


def load_compute_score(path: str = "pkg://flame_reward.integrations.verl", **reward_kwargs):
    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": path, "name": "compute_score", "reward_kwargs": reward_kwargs}}})
    return get_custom_reward_fn(config)


def run_naive(tokenizer, compute_score, data: list[DataProto]) -> list[dict]:
    async def go():
        manager = NaiveRewardManager(config=OmegaConf.create({}), tokenizer=tokenizer, compute_score=compute_score)
        assert manager.is_async_reward_score
        return await asyncio.gather(*(manager.run_single(d) for d in data))

    return asyncio.run(go())


def run_rate_limited(tokenizer, compute_score, data: list[DataProto]) -> list[dict]:
    # The manager keeps class-level limiters; reset them as verl's own test does.
    RateLimitedRewardManager._class_initialized = False
    RateLimitedRewardManager._semaphore = None

    async def go():
        config = OmegaConf.create({"reward": {"max_concurrent": 8, "timeout": 120.0}})
        manager = RateLimitedRewardManager(config=config, tokenizer=tokenizer, compute_score=compute_score)
        return await asyncio.gather(*(manager.run_single(d) for d in data))

    return asyncio.run(go())


def test_naive_manager_in_process_matches_the_judge(tokenizer, tiny_model_dir, tiny_dir_judge):
    compute_score = load_compute_score(model=tiny_model_dir, max_length=512, scale=[1, 10], normalize=True)
    prompts = ["What is 2+2?", "Name a colour.", "Say hi."]
    responses = ["It is 4.", "Blue.", "Hi!"]
    data = [sample(tokenizer, r, extra_info={"prompt": p}) for p, r in zip(prompts, responses)]
    got = run_naive(tokenizer, compute_score, data)
    want = tiny_dir_judge.judge("pointwise", [{"prompt": p, "response": r, "scale": (1, 10)}
                                              for p, r in zip(prompts, responses)])
    for g, w in zip(got, want):
        assert set(g["reward_extra_info"]) == KEYS_POINTWISE
        assert g["reward_score"] == pytest.approx((w.score - 1) / 9, abs=1e-5)
        assert g["reward_extra_info"]["rating"] == pytest.approx(w.score, abs=1e-5)
        assert g["reward_extra_info"]["error"] == ""


def test_rate_limited_manager_through_the_grpc_sidecar_with_bad_samples(tokenizer, tiny_dir_judge):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
    with running_server(tiny_dir_judge, token="s3cret") as (_, port):
        compute_score = load_compute_score(mode="reference", target=f"127.0.0.1:{port}", token="s3cret")
        data = [sample(tokenizer, "Four.", "4", {"prompt": messages}),
                sample(tokenizer, "", "4", {"prompt": "What is 2+2?"}),           # empty response
                sample(tokenizer, "Four.", "4", {"question": "What is 2+2?"}),    # no prompt in extra_info
                sample(tokenizer, "Four.", "", {"prompt": "What is 2+2?"})]       # no reference
        got = run_rate_limited(tokenizer, compute_score, data)
    want = tiny_dir_judge.judge("pairwise", [{"prompt": "system: Be brief.\n\nuser: What is 2+2?",
                                              "response_a": "Four.", "response_b": "4"}])[0]
    assert [set(g["reward_extra_info"]) for g in got] == [KEYS_REFERENCE] * 4  # stable keys, no 'acc'
    assert got[0]["reward_score"] == pytest.approx(want.score, abs=1e-6)
    assert got[0]["reward_extra_info"]["p_better"] == pytest.approx(want.score, abs=1e-6)
    errors = [g["reward_extra_info"]["error"] for g in got]
    assert errors[0] == ""
    assert errors[1].startswith("solution_str: is empty")
    assert errors[2].startswith("extra_info.prompt: missing")
    assert errors[3].startswith("ground_truth:")
    assert [g["reward_score"] for g in got[1:]] == [0.0, 0.0, 0.0]


def test_naive_manager_through_the_http_sidecar_from_a_file_path(tokenizer, tiny_dir_judge):
    from flame_reward.integrations import verl as ours

    with http_sidecar(tiny_dir_judge, tokens=("s3cret",)) as (url, _):
        compute_score = load_compute_score(ours.__file__, url=url, token="s3cret", prompt_key="question")
        got = run_naive(tokenizer, compute_score, [sample(tokenizer, "Paris.", extra_info={"question": "Capital of France?"})])
        wrong = load_compute_score(ours.__file__, url=url, token="nope")
        with pytest.raises(Exception, match="401"):  # a wrong token is a configuration error: it fails loudly
            run_naive(tokenizer, wrong, [sample(tokenizer, "Paris.", extra_info={"prompt": "Capital of France?"})])
    want = tiny_dir_judge.judge("pointwise", [{"prompt": "Capital of France?", "response": "Paris."}])[0]
    assert got[0]["reward_score"] == pytest.approx(want.score, abs=1e-6)
    assert set(got[0]["reward_extra_info"]) == KEYS_POINTWISE


def test_bad_reward_kwargs_fail_at_the_first_sample(tokenizer):
    from flame_reward.errors import InvalidInput

    with pytest.raises(InvalidInput, match="modle"):
        run_naive(tokenizer, load_compute_score(modle="x"), [sample(tokenizer, "a", extra_info={"prompt": "q"})])
    with pytest.raises(InvalidInput, match="mode"):
        run_naive(tokenizer, load_compute_score(mode="group"), [sample(tokenizer, "a", extra_info={"prompt": "q"})])
