"""Every face says whether a trained verdict head took part (``Verdict.head``).

A tiny random Llama judges with a small real :class:`HeadSet` (random weights, two routes;
:func:`tests.head_helpers.headed_judge`).
An item on a route (its task, verdict labels and exact criteria) must come back with the
route's name through the gRPC sidecar, the HTTP/JSON face, the OpenRLHF and verl replies,
the TRL reward functions' logged metrics and the CLI's rows and summary; an item off every
route must come back with ``None`` / 0. The in-process verdicts are the reference.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request

import pytest

from flame_reward.results import ItemError, Verdict
from flame_reward.sidecar import jsonwire, wire
from flame_reward.sidecar.wire import pb
from tests.head_helpers import CLARITY, HELPFUL, PAIR_ROUTE, POINT_ROUTE, headed_judge
from tests.integration_helpers import WAIT, http_sidecar
from tests.server_helpers import one_torch_thread, running_server, stops_its_threads  # noqa: F401 (autouse)

PAIR = {"prompt": "What is 2+2?", "response_a": "It is 4.", "response_b": "Five, I think."}
POINT = {"prompt": "What is the capital of France?", "response": "Paris."}


@pytest.fixture(scope="module")
def headed(tokenizer):
    return headed_judge(tokenizer)


def test_the_fixture_routes_exactly_its_criteria(headed):
    """The reference every face is held to: the core names the route on it, and only there."""
    on, paraphrase, default = headed.judge("pairwise", [{**PAIR, "criteria": HELPFUL},
                                                        {**PAIR, "criteria": "Which answer helps the user more?"},
                                                        PAIR])
    assert on.head == PAIR_ROUTE and paraphrase.head is None and default.head is None
    assert on.distribution != default.distribution  # the head changed the verdict
    other_scale, rated = headed.judge("pointwise", [{**POINT, "criteria": CLARITY, "scale": (1, 10)},
                                                    {**POINT, "criteria": CLARITY}])
    assert other_scale.head is None and rated.head == POINT_ROUTE


# -- wire formats --------------------------------------------------------------------------
@pytest.mark.parametrize("head", [PAIR_ROUTE, None])
def test_proto_and_json_keep_the_head(head):
    v = Verdict(task="pairwise", label="A", score=0.75, distribution={"A": 0.75, "B": 0.25},
                orders=({"A": 0.7, "B": 0.3}, {"A": 0.2, "B": 0.8}), tokens=42, head=head)
    msg = pb.ItemResult.FromString(wire.result_to_proto(0, v).SerializeToString())
    assert msg.verdict.HasField("head") is (head is not None)  # a raw verdict leaves the field unset
    assert wire.results_from_proto([msg]) == [v]
    data = json.loads(json.dumps(jsonwire.result_to_json(v)))
    assert data["head"] == head and jsonwire.result_from_json(data) == v


# -- the gRPC sidecar: verdicts, metrics, logs ------------------------------------------------
def test_grpc_verdicts_metrics_and_logs_say_which_head_took_part(headed):
    from flame_reward.sidecar.client import RewardClient
    from flame_reward.sidecar.observability import JsonLinesFormatter, log

    items = [{**PAIR, "criteria": HELPFUL}, PAIR, {**PAIR, "criteria": f"  {HELPFUL}\n"},
             {"prompt": "p", "response_a": "", "response_b": "b", "criteria": HELPFUL}]  # the last: an item error
    want = headed.judge("pairwise", items, on_error="return")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with running_server(headed, max_wait_ms=2.0) as (server, port):
            metrics_port = server.serve_metrics("127.0.0.1", 0)
            with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
                got = c.judge("pairwise", items)
                compared = c.compare(PAIR["prompt"], PAIR["response_a"], PAIR["response_b"], criteria=HELPFUL)
                rated = c.score(POINT["prompt"], POINT["response"], criteria=CLARITY)
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=WAIT) as r:
                text = r.read().decode()
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    assert [getattr(v, "head", "error") for v in got] == [PAIR_ROUTE, None, PAIR_ROUTE, "error"]
    assert [getattr(v, "head", "error") for v in want] == [PAIR_ROUTE, None, PAIR_ROUTE, "error"]
    assert isinstance(got[3], ItemError)
    assert compared.head == PAIR_ROUTE and rated.head == POINT_ROUTE
    assert f'flame_reward_server_head_verdicts_total{{head="{PAIR_ROUTE}",task="pairwise"}} 3' in text
    assert f'flame_reward_server_head_verdicts_total{{head="{POINT_ROUTE}",task="pointwise"}} 1' in text
    assert 'flame_reward_server_raw_verdicts_total{task="pairwise"} 1' in text
    assert 'flame_reward_server_raw_verdicts_total{task="pointwise"}' not in text
    batches = [json.loads(line) for line in stream.getvalue().splitlines()]
    batches = [r for r in batches if r["event"] == "batch"]
    assert sum(b["head_verdicts"] for b in batches if b["task"] == "pairwise") == 3
    assert sum(b["head_verdicts"] for b in batches if b["task"] == "pointwise") == 1


# -- the HTTP face, OpenRLHF and verl -----------------------------------------------------------
def test_http_judge_openrlhf_and_verl_report_the_head(headed):
    pytest.importorskip("starlette", reason="the 'http' extra is not installed")
    from flame_reward.integrations.verl import compute_score

    body = json.dumps({"task": "pointwise", "examples": [{**POINT, "criteria": CLARITY}, POINT]}).encode()
    with http_sidecar(headed, criteria=CLARITY) as (url, _):
        request = urllib.request.Request(f"{url}/v1/judge", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=WAIT) as r:
            judged = json.loads(r.read())
        reward_body = json.dumps({"query": ["Q: hi\nA: hello", "Q: hi\nA: "], "prompts": ["Q: hi\nA:", "Q: hi\nA:"],
                                  "labels": [None, None]}).encode()
        request = urllib.request.Request(f"{url}/get_reward", data=reward_body, method="POST")
        with urllib.request.urlopen(request, timeout=WAIT) as r:
            reply = json.loads(r.read())

        async def verl_samples():
            info = {"prompt": POINT["prompt"]}
            return await asyncio.gather(compute_score(solution_str="Paris.", extra_info=info, url=url, criteria=CLARITY),
                                        compute_score(solution_str="Paris.", extra_info=info, url=url))

        rated, raw = asyncio.run(verl_samples())
    assert [r["head"] for r in judged["results"]] == [POINT_ROUTE, None]
    # OpenRLHF: the first sample is judged under the spec's CLARITY criteria; the second is empty (floored)
    assert reply["extra_logs"]["flame_head"] == [1.0, 0.0] and reply["errors"][0] is None
    assert reply["errors"][1] is not None
    assert rated["head"] == 1.0 and raw["head"] == 0.0 and rated["error"] == raw["error"] == ""


def test_openrlhf_reply_flags_head_verdicts_per_sample():
    from flame_reward.integrations.openrlhf import RewardSpec, make_reply

    def verdict(head):
        return Verdict(task="pointwise", label="3", score=3.0, distribution={str(i): 0.2 for i in range(1, 6)},
                       head=head)

    reply = make_reply(RewardSpec(), 4, [0, 1, 3], [verdict(POINT_ROUTE), verdict(None),
                                                    ItemError(0, "response", "is empty")], {2: "query: bad"})
    assert reply["extra_logs"]["flame_head"] == [1.0, 0.0, 0.0, 0.0]


# -- TRL reward functions -----------------------------------------------------------------------
@pytest.mark.parametrize("mode, criteria, heads", [("pointwise", CLARITY, 4), ("pointwise", None, 0),
                                                   ("group", HELPFUL, 6), ("group", "Be helpful.", 0)])
def test_trl_logs_the_share_of_head_verdicts(headed, mode, criteria, heads):
    from flame_reward.trl import FlameRewardFunction

    fn = FlameRewardFunction(headed, mode=mode, criteria=criteria)
    logged: dict[str, float] = {}
    fn(prompts=["What is 2+2?"] * 4, completions=["4", "5", "It is four.", "No idea."],
       log_metric=lambda k, v: logged.__setitem__(k, v))
    verdicts = 4 if mode == "pointwise" else 6  # a group of 4: C(4,2) pairs
    assert logged[f"{fn.__name__}/judge_head_verdicts"] == heads
    assert logged[f"{fn.__name__}/judge_head_share"] == heads / verdicts
    assert fn.last_cost["head_verdicts"] == heads and fn.last_cost["verdicts"] == verdicts


def test_trl_head_share_is_zero_when_nothing_was_judged(headed):
    from flame_reward.trl import FlameRewardFunction

    fn = FlameRewardFunction(headed, mode="pointwise", criteria=CLARITY)
    logged: dict[str, float] = {}
    assert fn(prompts=["q", "q"], completions=["", None], log_metric=lambda k, v: logged.__setitem__(k, v)) == [None, None]
    assert logged[f"{fn.__name__}/judge_head_share"] == 0.0 and logged[f"{fn.__name__}/judge_head_verdicts"] == 0


# -- the CLI -------------------------------------------------------------------------------------
def test_cli_rows_keep_the_head_and_the_summary_counts_them(headed, tmp_path, monkeypatch, capsys):
    from flame_reward import cli

    monkeypatch.setattr(cli, "load_judge", lambda args: headed)
    rows = [{**POINT, "criteria": CLARITY}, POINT, {**POINT, "criteria": CLARITY, "scale": [1, 10]},
            {**POINT, "response": ""}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert cli.main(["score", str(src), "-o", str(out), "-q"]) == 0
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [w["flame_reward"]["head"] for w in written[:3]] == [POINT_ROUTE, None, None]
    assert "flame_reward" not in written[3] and "error" in written[3]
    assert "1 of 3 verdicts by a trained head" in capsys.readouterr().err
