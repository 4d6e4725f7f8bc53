"""Ray: offline scoring on Ray Data (``--engine ray``) and the Ray Serve deployment, on a local
``ray.init(num_cpus=2)`` shared by the module (a few seconds to start, about 1 GB).

CI runs the Ray Data test on the tiny judge; the embedded-model run and Ray Serve (whose
controller and proxy take another ~20 s to start on two cores) are marked slow.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request

import pytest

from flame_reward.cli import main
from tests.integration_helpers import WAIT, chat_prompt, openrlhf_query, tiny_dir_judge, tiny_model_dir  # noqa: F401

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed")


@pytest.fixture(scope="session")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def hh_rows(tmp_path_factory) -> str:
    """100 real HH-RLHF helpfulness pairs, plus a line that is not JSON and a row missing a field."""
    from flame_reward.data.sets import load_pairs

    pairs = load_pairs("hh-helpful").records[:100]
    assert len(pairs) == 100
    path = tmp_path_factory.mktemp("hh") / "hh.jsonl"
    with open(path, "w") as f:
        for k, r in enumerate(pairs):
            f.write(json.dumps({"id": k, "prompt": r.prompt, "response_a": r.response_a, "response_b": r.response_b}) + "\n")
            if k == 10:
                f.write("{not json\n")
            if k == 20:
                f.write(json.dumps({"id": "no-b", "prompt": "Hi", "response_a": "Hello"}) + "\n")
    return str(path)


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def _same_output(ray_rows: list[dict], local_rows: list[dict], tolerance: float) -> float:
    """Every row in the same place with the same fields; verdict numbers within ``tolerance``."""
    assert len(ray_rows) == len(local_rows)
    worst = 0.0
    for got, want in zip(ray_rows, local_rows):
        assert {k: v for k, v in got.items() if k != "flame_reward"} == \
               {k: v for k, v in want.items() if k != "flame_reward"}
        assert ("flame_reward" in got) == ("flame_reward" in want)
        if "flame_reward" in got:
            g, w = got["flame_reward"], want["flame_reward"]
            assert g["label"] == w["label"] and g["truncated"] == w["truncated"] and g["head"] == w["head"]
            worst = max(worst, abs(g["score"] - w["score"]),
                        *(abs(g["distribution"][k] - w["distribution"][k]) for k in w["distribution"]))
    assert worst <= tolerance
    return worst


def _compare(hh_rows: str, out, engine: str, *args: str) -> list[dict]:
    assert main(["compare", hh_rows, "-o", str(out), "--engine", engine, "-q", *args]) == 0
    return _rows(out)


def test_ray_data_writes_the_local_rows_in_order(ray_session, hh_rows, tmp_path, tiny_model_dir):
    model = ["--model", tiny_model_dir, "--max-length", "1024", "--batch-size", "8"]
    local = _compare(hh_rows, tmp_path / "local.jsonl", "local", *model)
    on_ray = _compare(hh_rows, tmp_path / "ray.jsonl", "ray", "--actors", "2", *model)
    _same_output(on_ray, local, 1e-5)
    assert len(on_ray) == 102 and [r.get("id") for r in on_ray if "id" in r][:3] == [0, 1, 2]
    assert on_ray[11]["_line"] == 12 and "invalid JSON" in on_ray[11]["error"]
    assert on_ray[22]["error"].startswith("response_b") and on_ray[22]["_line"] == 23
    assert sum("flame_reward" in r for r in on_ray) >= 95


@pytest.mark.slow
def test_ray_data_embedded_default_on_100_hh_rows_equals_in_process(ray_session, hh_rows, tmp_path):
    model = ["--max-length", "768", "--batch-size", "8", "--threads", "1"]
    local = _compare(hh_rows, tmp_path / "local.jsonl", "local", *model)
    on_ray = _compare(hh_rows, tmp_path / "ray.jsonl", "ray", "--actors", "2", *model)
    _same_output(on_ray, local, 1e-5)


def test_ray_engine_refuses_a_bad_actor_count(ray_session, hh_rows, tmp_path, capsys):
    assert main(["compare", hh_rows, "-o", str(tmp_path / "x.jsonl"), "--engine", "ray", "--actors", "0", "-q"]) == 2
    assert "--actors" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_ray_serve_handle_and_openrlhf_route(ray_session, tokenizer, tiny_model_dir, tiny_dir_judge):
    from ray import serve

    from flame_reward.errors import InvalidInput
    from flame_reward.integrations.ray_serve import app

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        handle = serve.run(app({"model": tiny_model_dir, "max_length": "512", "num_replicas": "1",
                                "max_batch_size": "16"}), name="flame", route_prefix="/")
        examples = [{"prompt": "Name a fruit.", "response_a": f"Apple {i}.", "response_b": "Rock."} for i in range(8)]
        want = tiny_dir_judge.judge("pairwise", examples)
        got = [r.result(timeout_s=WAIT) for r in [handle.judge.remote("pairwise", ex) for ex in examples]]
        assert [g["score"] for g in got] == pytest.approx([w.score for w in want], abs=1e-5)
        bad = handle.judge_many.remote("pairwise", [examples[0], {"prompt": "x", "response_a": "y"}]).result(timeout_s=WAIT)
        assert bad[0]["score"] == pytest.approx(want[0].score, abs=1e-5)
        assert bad[1]["field"] == "response_b" and bad[1]["index"] == 1
        with pytest.raises(Exception, match="task"):
            handle.judge.remote("nope", examples[0]).result(timeout_s=WAIT)

        from openrlhf.utils.agent import SingleTurnAgentExecutor

        prompt = chat_prompt(tokenizer, "What is 2+2?")
        query = openrlhf_query(tokenizer, prompt, "Four.")
        executor = SingleTurnAgentExecutor(f"http://127.0.0.1:{port}/get_reward?mode=reference")
        (reply,) = asyncio.run(executor._fetch_rewards_via_http([query], [prompt], ["4"]))
        ref = tiny_dir_judge.judge("pairwise", [{"prompt": "system\nYou are a helpful AI assistant named SmolLM, "
                                                           "trained by Hugging Face\n\nuser\nWhat is 2+2?",
                                                 "response_a": "Four.", "response_b": "4"}])[0]
        assert reply["rewards"] == pytest.approx([ref.score], abs=1e-5)
        foreign = openrlhf_query(tokenizer, chat_prompt(tokenizer, "Another prompt."), "Hi.")
        (bad_reply,) = asyncio.run(executor._fetch_rewards_via_http([foreign, query], [prompt, prompt], ["4", ""]))
        assert bad_reply["rewards"] == [0.0, 0.0]
        assert bad_reply["errors"][0].startswith("query:") and bad_reply["errors"][1].startswith("labels:")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/get_reward", data=b"{oops", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=WAIT)
        assert err.value.code == 400 and json.loads(err.value.read())["field"] == "body"
        with pytest.raises(InvalidInput, match="num_gpu"):
            app({"num_gpu": "1"})
    finally:
        serve.shutdown()
