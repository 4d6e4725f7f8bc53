"""OpenRLHF: our HTTP sidecar and our file mode, called through OpenRLHF's own fetch functions.

``openrlhf.utils.agent.SingleTurnAgentExecutor`` is OpenRLHF 0.11's reward caller; its
``_fetch_rewards_via_http`` (POST to ``--reward.remote_url``) and ``_fetch_rewards_via_func``
(a ``.py`` URL) are run with ``asyncio.run`` against our server and our file. Queries are
built the way the executor builds them, from real tokenizers' chat templates.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from flame_reward.errors import InvalidInput
from flame_reward.integrations.openrlhf import RewardSpec, clean_response, plain_text, split_response
from tests.integration_helpers import (WAIT, chat_prompt, http_sidecar, openrlhf_query, tiny_dir_judge,  # noqa: F401
                                       tiny_model_dir)
from tests.server_helpers import one_torch_thread, running_server  # noqa: F401

pytest.importorskip("starlette", reason="the 'http' extra is not installed")
agent = pytest.importorskip("openrlhf.utils.agent", reason="the 'openrlhf' extra is not installed")

SYSTEM = "system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _fetch_http(url: str, queries, prompts, labels):
    executor = agent.SingleTurnAgentExecutor(url)
    (reply,) = asyncio.run(executor._fetch_rewards_via_http(queries, prompts, labels))
    return reply


# -- splitting OpenRLHF's query on real chat templates -------------------------------------------
def test_split_on_the_smollm2_chat_template(tokenizer):
    prompt = chat_prompt(tokenizer, "What is 2+2?")
    query = openrlhf_query(tokenizer, prompt, "It is 4.")
    assert query.endswith("It is 4.<|im_end|>")  # what OpenRLHF decodes: the EOS token is in the text
    assert clean_response(split_response(query, prompt)) == "It is 4."
    assert plain_text(prompt) == SYSTEM + "\n\nuser\nWhat is 2+2?"


def test_split_on_mistral_nemo_tekken_chat_template():
    """Mistral NeMo's Tekken tokenizer and chat format, as mistral-common ships them."""
    mistral_common = pytest.importorskip("mistral_common", reason="the 'test-tokenizers' extra is not installed")
    from transformers.tokenization_mistral_common import MistralCommonBackend

    path = Path(mistral_common.__file__).parent / "data" / "tekken_240718.json"
    tok = MistralCommonBackend(tokenizer_path=str(path))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  What is 2+2?\n"}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    query = openrlhf_query(tok, prompt, " It is 4, not 5.")
    assert prompt.startswith("<s>[INST]") and query.endswith("</s>")
    assert clean_response(split_response(query, prompt)) == "It is 4, not 5."
    assert plain_text(prompt) == "Be brief.\n\n  What is 2+2?"


def test_split_tolerates_whitespace_a_decoder_adds_and_refuses_a_foreign_query():
    # Llama-2-style decoders put a space after special tokens that the template had not.
    prompt = "<s>[INST] Name a colour. [/INST]"
    assert clean_response(split_response("<s> [INST] Name a colour. [/INST] Blue.</s>", prompt)) == "Blue."
    with pytest.raises(InvalidInput) as err:
        split_response("<s>[INST] Name a shape. [/INST] Square.</s>", prompt)
    assert err.value.field == "query" and "does not start with its prompt" in str(err.value)
    with pytest.raises(InvalidInput, match="prompts"):
        split_response("text", None)
    # only a role header on its own line is dropped, never the user's last word
    chatml = "<|im_start|>user\nWhat is a language model<|im_end|>\n<|im_start|>assistant\n"
    assert plain_text(chatml) == "user\nWhat is a language model"


# -- the HTTP sidecar through OpenRLHF's fetch ---------------------------------------------------
def test_openrlhf_fetch_gets_the_in_process_reward(tokenizer, tiny_dir_judge):
    prompt = chat_prompt(tokenizer, "What is the capital of France?")
    query = openrlhf_query(tokenizer, prompt, "Paris.")
    want = tiny_dir_judge.judge("pointwise", [{"prompt": SYSTEM + "\n\nuser\nWhat is the capital of France?",
                                               "response": "Paris."}])[0]
    with http_sidecar(tiny_dir_judge, tokens=("s3cret",)) as (url, _):
        reply = _fetch_http(f"{url}/t/s3cret/get_reward", [query], [prompt], [None])
        normalized = _fetch_http(f"{url}/t/s3cret/get_reward?normalize=true", [query], [prompt], [None])
    assert reply["rewards"] == pytest.approx([want.score], abs=1e-6)
    assert reply["scores"] == pytest.approx([(want.score - 1) / 4], abs=1e-6)
    assert reply["extra_logs"] == {"flame_invalid": [0.0], "flame_truncated": [0.0], "flame_head": [0.0]}
    assert reply["errors"] == [None]
    assert normalized["rewards"] == pytest.approx([(want.score - 1) / 4], abs=1e-6)


def test_reference_mode_judges_the_label_pairwise(tokenizer, tiny_dir_judge):
    prompt = chat_prompt(tokenizer, "What is 2+2?")
    query = openrlhf_query(tokenizer, prompt, "Five.")
    want = tiny_dir_judge.judge("pairwise", [{"prompt": SYSTEM + "\n\nuser\nWhat is 2+2?",
                                              "response_a": "Five.", "response_b": "4"}])[0]
    with http_sidecar(tiny_dir_judge, mode="reference") as (url, _):
        reply = _fetch_http(f"{url}/get_reward", [query], [prompt], ["4"])
    assert reply["rewards"] == pytest.approx([want.score], abs=1e-6)
    assert reply["scores"] == reply["rewards"] and reply["errors"] == [None]


def test_concurrent_one_sample_calls_share_batches(tokenizer, tiny_dir_judge):
    prompts = [chat_prompt(tokenizer, f"Give me fact number {i}.") for i in range(32)]
    queries = [openrlhf_query(tokenizer, p, f"Fact {i}: water is wet.") for i, p in enumerate(prompts)]
    want = tiny_dir_judge.judge("pointwise", [{"prompt": plain_text(p), "response": f"Fact {i}: water is wet."}
                                              for i, p in enumerate(prompts)])
    with http_sidecar(tiny_dir_judge) as (url, servicer):
        executor = agent.SingleTurnAgentExecutor(f"{url}/get_reward")

        async def all_at_once():  # OpenRLHF's rollout: one call per sample, all in flight together
            return await asyncio.gather(*(executor._fetch_rewards_via_http([q], [p], [None])
                                          for q, p in zip(queries, prompts)))

        replies = asyncio.run(all_at_once())
        batches = servicer.metrics.value("batches_total", task="pointwise")
        items = servicer.metrics.value("items_total", task="pointwise")
    assert [r[0]["rewards"][0] for r in replies] == pytest.approx([v.score for v in want], abs=1e-5)
    assert items == 32
    assert batches <= 16, f"32 concurrent calls ran in {batches} batches: not batched"


def test_bad_input_gets_a_documented_number_or_a_json_error(tokenizer, tiny_dir_judge):
    prompt = chat_prompt(tokenizer, "Say something.")
    good = openrlhf_query(tokenizer, prompt, "Something.")
    empty = openrlhf_query(tokenizer, prompt, "")  # the policy stopped at once: only <|im_end|>
    foreign = openrlhf_query(tokenizer, chat_prompt(tokenizer, "Another prompt."), "Hi.")
    body = {"query": [good, empty, foreign], "prompts": [prompt] * 3, "labels": [None] * 3}
    with http_sidecar(tiny_dir_judge, tokens=("s3cret",)) as (url, _):
        reply = _fetch_http(f"{url}/t/s3cret/get_reward", body["query"], body["prompts"], body["labels"])
        # reference mode without a label: a number too, with the reason
        no_label = _fetch_http(f"{url}/t/s3cret/get_reward?mode=reference", [good], [prompt], [""])
        not_json = _post(f"{url}/t/s3cret/get_reward", b"{not json")
        no_prompts = _post(f"{url}/t/s3cret/get_reward", json.dumps({"query": [good]}).encode())
        bad_option = _post(f"{url}/t/s3cret/get_reward?mode=best", json.dumps(body).encode())
        wrong_token = _post(f"{url}/t/wrong/get_reward", json.dumps(body).encode())
        no_token = _post(f"{url}/get_reward", json.dumps(body).encode())
        header_token = _post(f"{url}/get_reward", json.dumps(body).encode(), {"Authorization": "Bearer s3cret"})
        unknown = _post(f"{url}/t/s3cret/score", b"{}")
        with urllib.request.urlopen(f"{url}/health", timeout=WAIT) as response:
            health = json.loads(response.read())
    assert reply["rewards"][1:] == [1.0, 1.0]  # the pointwise floor: the lowest rating of 1-5
    assert reply["extra_logs"]["flame_invalid"] == [0.0, 1.0, 1.0]
    assert reply["errors"][0] is None
    assert reply["errors"][1].startswith("response: is empty")
    assert reply["errors"][2].startswith("query: does not start with its prompt")
    assert no_label["rewards"] == [0.0] and no_label["errors"][0].startswith("labels:")
    assert not_json[0] == 400 and not_json[1]["field"] == "body"
    assert no_prompts[0] == 400 and no_prompts[1]["field"] == "prompts"
    assert bad_option[0] == 400 and bad_option[1]["field"] == "mode"
    assert wrong_token == no_token == (401, {"error": "authorization: missing or invalid bearer token",
                                             "field": "authorization"})
    assert header_token[0] == 200 and header_token[1]["rewards"] == reply["rewards"]
    assert unknown[0] == 404 and unknown[1]["field"] == "route"
    assert health["status"] == "SERVING"


def test_health_and_calls_while_the_model_loads():
    from flame_reward.sidecar.http import HttpServer, HttpSettings, create_app

    with HttpServer(create_app(HttpSettings(batcher=lambda: None))) as server:
        url = f"http://127.0.0.1:{server.port}"
        try:
            urllib.request.urlopen(f"{url}/health", timeout=WAIT)
            raise AssertionError("health answered 200 while loading")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503 and json.loads(exc.read()) == {"status": "NOT_SERVING"}
        body = {"query": ["p r"], "prompts": ["p"], "labels": [None]}
        status, reply = _post(f"{url}/get_reward", json.dumps(body).encode())
    assert status == 503 and reply["field"] == "model"


def test_a_failing_judge_gives_a_json_500():
    from flame_reward.sidecar.batcher import MicroBatcher
    from flame_reward.sidecar.http import HttpServer, HttpSettings, create_app

    class Broken:
        def judge(self, task, examples, on_error="return"):
            raise RuntimeError("out of memory")

    batcher = MicroBatcher(Broken(), max_wait_ms=0)
    try:
        with HttpServer(create_app(HttpSettings(batcher=lambda: batcher))) as server:
            body = {"query": ["p r"], "prompts": ["p"], "labels": [None]}
            status, reply = _post(f"http://127.0.0.1:{server.port}/get_reward", json.dumps(body).encode())
    finally:
        batcher.close(WAIT)
    assert status == 500 and reply == {"error": "scoring: RuntimeError: out of memory", "field": "scoring"}


def test_native_judge_route_returns_verdicts(tiny_dir_judge):
    examples = [{"prompt": "Name a fruit.", "response_a": "Apple.", "response_b": "Rock."},
                {"prompt": "Name a fruit.", "response_a": "Apple."}]
    want = tiny_dir_judge.judge("pairwise", examples[:1])[0]
    with http_sidecar(tiny_dir_judge) as (url, _):
        status, reply = _post(f"{url}/v1/judge", json.dumps({"task": "pairwise", "examples": examples}).encode())
        no_items = _post(f"{url}/v1/judge", json.dumps({"task": "pairwise", "examples": []}).encode())
        bad_task = _post(f"{url}/v1/judge", json.dumps({"task": "nope", "examples": examples}).encode())
    assert status == 200
    assert reply["results"][0]["score"] == pytest.approx(want.score, abs=1e-6)
    assert reply["results"][1]["field"] == "response_b" and reply["results"][1]["index"] == 1
    assert no_items[0] == 400 and no_items[1]["field"] == "examples"
    assert bad_task[0] == 400 and bad_task[1]["field"] == "task"


# -- the file mode through OpenRLHF's loader -----------------------------------------------------
def _file_executor():
    from flame_reward.integrations import openrlhf_file

    # OpenRLHF imports the file by path (a fresh module, configured from the environment).
    return agent.SingleTurnAgentExecutor(openrlhf_file.__file__)


def test_file_mode_through_the_grpc_sidecar(monkeypatch, tokenizer, tiny_dir_judge):
    prompt = chat_prompt(tokenizer, "What is 2+2?")
    queries = [openrlhf_query(tokenizer, prompt, "Four."), openrlhf_query(tokenizer, prompt, "")]
    want = tiny_dir_judge.judge("pairwise", [{"prompt": SYSTEM + "\n\nuser\nWhat is 2+2?",
                                              "response_a": "Four.", "response_b": "4"}])[0]
    with running_server(tiny_dir_judge, token="s3cret") as (_, port):
        monkeypatch.setenv("FLAME_REWARD_TARGET", f"127.0.0.1:{port}")
        monkeypatch.setenv("FLAME_REWARD_TOKEN", "s3cret")
        monkeypatch.setenv("FLAME_REWARD_MODE", "reference")
        executor = _file_executor()

        async def rollout():
            return await asyncio.gather(*(executor._fetch_rewards_via_func([q], [prompt], ["4"]) for q in queries))

        (good,), (empty,) = asyncio.run(rollout())
    assert good["rewards"] == pytest.approx([want.score], abs=1e-6) and good["errors"] == [None]
    assert empty["rewards"] == [0.0] and empty["errors"][0].startswith("response: is empty")


def test_file_mode_in_process(monkeypatch, tokenizer, tiny_model_dir, tiny_dir_judge):
    prompt = chat_prompt(tokenizer, "Name a planet.")
    query = openrlhf_query(tokenizer, prompt, "Mars.")
    want = tiny_dir_judge.judge("pointwise", [{"prompt": SYSTEM + "\n\nuser\nName a planet.",
                                               "response": "Mars.", "scale": (1, 10)}])[0]
    for name in ("TARGET", "TOKEN", "MODE"):
        monkeypatch.delenv(f"FLAME_REWARD_{name}", raising=False)
    monkeypatch.setenv("FLAME_REWARD_MODEL", tiny_model_dir)
    monkeypatch.setenv("FLAME_REWARD_MAX_LENGTH", "512")
    monkeypatch.setenv("FLAME_REWARD_SCALE", "1-10")
    (reply,) = asyncio.run(_file_executor()._fetch_rewards_via_func([query], [prompt], [None]))
    assert reply["rewards"] == pytest.approx([want.score], abs=1e-6)
    monkeypatch.setenv("FLAME_REWARD_SCALE", "ten")
    with pytest.raises(InvalidInput, match="scale"):  # a bad setting fails loudly, naming it
        from flame_reward.integrations.openrlhf_file import make_reward_func, settings_from_env

        make_reward_func(**settings_from_env())


def test_reward_spec_checks_its_options():
    with pytest.raises(InvalidInput, match="mode"):
        RewardSpec(mode="group")
    with pytest.raises(InvalidInput, match="invalid_reward"):
        RewardSpec().updated({"invalid_reward": "low"})
    assert RewardSpec(normalize=True).floor == 0.0 and RewardSpec().floor == 1.0
    assert RewardSpec(invalid_reward=-1).floor == -1.0


# -- the command line ----------------------------------------------------------------------------
def test_serve_http_subprocess_answers_openrlhf_then_stops(tmp_path, tokenizer, tiny_model_dir, tiny_dir_judge):
    token_file = tmp_path / "tokens"
    token_file.write_text("s3cret\n")
    port_file = tmp_path / "http-port"
    log_path = tmp_path / "serve.log"
    env = {**os.environ, "FLAME_REWARD_NO_PLUGINS": "1"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flame_reward.cli", "serve", "--no-grpc", "--http", "0", "--http-port-file",
             str(port_file), "--token-file", str(token_file), "--http-mode", "reference", "--model", tiny_model_dir,
             "--max-length", "512", "--threads", "1", "--grace", "5"],
            stdout=subprocess.DEVNULL, stderr=log, env=env)
        try:
            deadline = time.monotonic() + WAIT
            while not port_file.exists():
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "no HTTP port file"
                time.sleep(0.1)
            url = f"http://127.0.0.1:{int(port_file.read_text())}"
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=WAIT):
                        break
                except urllib.error.HTTPError:
                    assert time.monotonic() < deadline + WAIT, "never SERVING"
                    time.sleep(0.2)
            prompt = chat_prompt(tokenizer, "What is 2+2?")
            reply = _fetch_http(f"{url}/t/s3cret/get_reward", [openrlhf_query(tokenizer, prompt, "Four.")],
                                [prompt], ["4"])
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=WAIT) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    want = tiny_dir_judge.judge("pairwise", [{"prompt": SYSTEM + "\n\nuser\nWhat is 2+2?",
                                              "response_a": "Four.", "response_b": "4"}])[0]
    assert reply["rewards"] == pytest.approx([want.score], abs=1e-5)
    log = log_path.read_text()
    assert "s3cret" not in log and "/t/***/get_reward" in log  # the token never reaches the log
