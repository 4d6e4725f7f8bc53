"""Every RPC of the scoring server against a real server on 127.0.0.1 (tiny judge).

Answers must equal in-process verdicts for the same items (within 1e-4: batching with
other requests changes padding only), errors must name the field, and item errors keep
their slots.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request

import grpc
import pytest

import flame_reward.rerank as rerank
from flame_reward.sidecar.client import AsyncRewardClient, RewardClient, ServerError
from flame_reward.errors import InvalidInput, UnknownTaskType
from flame_reward.results import ItemError, Verdict
from flame_reward.sidecar.wire import METHODS, pb
from tests.server_helpers import WAIT, close, mixed_items, pair_items, running_server, varied_judge
from tests.server_helpers import one_torch_thread, stops_its_threads  # noqa: F401 (autouse fixtures)


@pytest.fixture(scope="module")
def judge(tokenizer):
    return varied_judge(tokenizer)


@pytest.fixture(scope="module")
def served(judge):
    with running_server(judge, max_wait_ms=2.0) as (server, port):
        yield server, port


@pytest.fixture()
def client(served):
    with RewardClient(f"127.0.0.1:{served[1]}", timeout=WAIT, retries=0) as c:
        yield c


def _raw(port: int, method: str, request_bytes: bytes, timeout: float = WAIT) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHODS[method].path)  # bytes in, bytes out
        return call(request_bytes, timeout=timeout)


# -- verdicts ---------------------------------------------------------------------------
def test_compare_score_classify_equal_in_process(client, judge):
    assert close(client.compare("What is 2+2?", "4", "5"), judge.compare("What is 2+2?", "4", "5"))
    assert close(client.compare("Pick one", "x", "y", allow_tie=True, criteria="Be brief."),
                 judge.compare("Pick one", "x", "y", allow_tie=True, criteria="Be brief."))
    got = client.score("Summarize: cats.", "Cats.", scale=(1, 10), source="Cats are pets.")
    want = judge.score("Summarize: cats.", "Cats.", scale=(1, 10), source="Cats are pets.")
    assert close(got, want) and list(got.distribution) == [str(i) for i in range(1, 11)]
    got = client.classify("Is it polite?", "Thanks!", labels=["yes", "no", "unsure"])
    assert close(got, judge.classify("Is it polite?", "Thanks!", labels=["yes", "no", "unsure"]))
    pairs = [(p["prompt"], p["response_a"], p["response_b"]) for p in pair_items(5)]
    for a, b in zip(client.compare_batch(pairs, tie_margin=0.01), judge.compare_batch(pairs, tie_margin=0.01)):
        assert close(a, b) and a.label == b.label and a.orders and len(a.orders) == 2


def test_judge_any_task_type_by_name(client, judge):
    for task in ("pairwise", "pointwise", "classification", "summary_faithfulness"):
        items = [ex for t, ex in mixed_items(9) if t == task] or [
            {"source": "The cat sat on the mat.", "summary": "A cat sat."}, {"source": "Rain.", "summary": "Sun."}]
        for a, b in zip(client.judge(task, items), judge.judge(task, items)):
            assert isinstance(a, Verdict) and close(a, b), task


def test_item_errors_keep_their_slots(client, judge):
    items = [
        {"prompt": "p", "response_a": "a"},                        # missing
        {"prompt": "p", "response_a": "a", "response_b": "b"},     # fine
        {"prompt": "p", "response_a": " ", "response_b": "b"},     # empty
        {"prompt": "p", "response_a": "a", "response_b": 7},       # wrong type
        {"prompt": "p", "response_a": "a", "response_b": "b", "tie_margin": 2.0},  # bad option
    ]
    got = client.judge("pairwise", items)
    want = judge.judge("pairwise", items, on_error="return")
    assert [type(x) for x in got] == [ItemError, Verdict, ItemError, ItemError, ItemError]
    for a, b in zip(got, want):
        if isinstance(b, ItemError):
            assert a == b  # same index, field and message as in process
        else:
            assert close(a, b)
    with pytest.raises(InvalidInput) as err:
        client.judge("pairwise", items, on_error="raise")
    assert err.value.field == "response_b" and "(item 0)" in str(err.value)
    with pytest.raises(InvalidInput, match="scale"):
        client.score("p", "r", scale=(5, 1))


def test_request_level_errors_name_the_field(client, served):
    with pytest.raises(UnknownTaskType) as err:
        client.judge("no_such_task", [{"prompt": "p"}])
    assert "pairwise" in err.value.known
    with pytest.raises(InvalidInput) as err:
        client.judge("open_ended", [{"prompt": "p"}])
    assert err.value.field == "task"
    port = served[1]
    for method, request, field in [
        ("Score", pb.ScoreRequest(task="pointwise"), "items"),
        ("Compare", pb.CompareRequest(), "pairs"),
        ("Rank", pb.RankRequest(prompt="p"), "candidates"),
        ("Rank", pb.RankRequest(prompt="p", candidates=["a", "b"], strategy="best_guess"), "strategy"),
        ("Rank", pb.RankRequest(prompt=" ", candidates=["a", "b"]), "prompt"),
        ("Rank", pb.RankRequest(prompt="p", candidates=["a", "b"], pair_task="nope"), "pair_task"),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            _raw(port, method, request.SerializeToString())
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, field)
        assert err.value.details().startswith(f"{field}: "), err.value.details()


def test_too_many_items_is_invalid_argument(judge):
    with running_server(judge, max_items=3) as (_, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0, max_items_per_request=10) as c:
            with pytest.raises(InvalidInput) as err:
                c.judge("pairwise", pair_items(4))
            assert err.value.field == "items" and "limit of 3" in str(err.value)
            # the client splits large calls when told the server's limit
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0, max_items_per_request=3) as c:
            assert all(isinstance(v, Verdict) for v in c.judge("pairwise", pair_items(7)))


def test_malformed_request_is_invalid_argument(served):
    with pytest.raises(grpc.RpcError) as err:
        _raw(served[1], "Score", b"\xff\xff\xff\xff")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("request: not a valid flame_reward.v1.ScoreRequest")
    with pytest.raises(grpc.RpcError) as err:  # a field of the wrong wire type
        _raw(served[1], "Compare", b"\x12\x05\x08\x01")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_oversized_request_is_rejected_and_server_keeps_serving(judge):
    with running_server(judge, max_message_bytes=64 * 1024) as (_, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
            with pytest.raises(ServerError) as err:
                c.compare("p", "a" * 200_000, "b")
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert isinstance(c.compare("p", "a", "b"), Verdict)


# -- the other RPCs ---------------------------------------------------------------------
def test_list_task_types(client):
    types = client.task_types()
    assert {"pairwise", "pointwise", "classification", "open_ended"} <= set(types)
    pair = types["pairwise"]
    assert pair.pairwise and not pair.generative and "allow_tie" in pair.options
    assert [f.name for f in pair.fields] == ["prompt", "response_a", "response_b"]
    assert types["open_ended"].generative


def test_rank_matches_in_process_reranker(client, judge):
    candidates = ["Paris.", "It is Paris, the capital.", "Rome", "Paris."]
    for strategy, options in [("round_robin", {}), ("pointwise", {"scale": (1, 10)}), ("knockout", {}),
                              ("swiss", {}), ("random", {})]:
        got = client.rank("Capital of France?", candidates, strategy, options=options, seed=3)
        want = rerank.rank("Capital of France?", candidates, strategy, judge=judge, seed=3,
                           point_options=options or None)
        assert got.strategy == strategy and got.order == want.order, strategy
        for a, b in zip(got.scores, want.scores):
            assert (list(a) if isinstance(a, tuple) else [a]) == pytest.approx(
                [float(x) for x in (b if isinstance(b, tuple) else [b])], abs=1e-4), strategy
        assert got.judge_calls == want.judge_calls and got.best == want.order[0]


def test_stream_answers_each_request_by_id(served, judge):
    jobs = [(task, [ex]) for task, ex in mixed_items(12, "s")]
    requests = [pb.ScoreRequest(request_id=f"r{i}", task=t, items=[pb.Item(fields={k: v for k, v in ex[0].items()
                                                                                  if isinstance(v, str)})])
                for i, (t, ex) in enumerate(jobs)]
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        call = channel.stream_stream(METHODS["ScoreStream"].path, request_serializer=pb.ScoreRequest.SerializeToString,
                                     response_deserializer=pb.ScoreResponse.FromString)
        responses = list(call(iter(requests), timeout=WAIT))
    assert sorted(r.request_id for r in responses) == sorted(r.request_id for r in requests)
    with RewardClient(f"127.0.0.1:{served[1]}", timeout=WAIT, retries=0) as c:
        streamed = list(c.judge_many(jobs))
    for (task, ex), got in zip(jobs, streamed):
        assert close(got[0], judge.judge(task, ex)[0])
    # judge() splits a large call into chunks over the stream; item errors keep global indices
    items = pair_items(7)
    items[5] = {"prompt": "p", "response_a": "a"}
    with RewardClient(f"127.0.0.1:{served[1]}", timeout=WAIT, retries=0, max_items_per_request=2) as c:
        got = c.judge("pairwise", items)
    want = judge.judge("pairwise", items, on_error="return")
    assert got[5] == want[5] == ItemError(5, "response_b", "required by task type 'pairwise' but missing")
    assert all(close(a, b) for a, b in zip(got, want) if isinstance(b, Verdict))


def test_stream_with_a_bad_request_ends_with_invalid_argument(served):
    requests = [pb.ScoreRequest(task="pointwise", items=[pb.Item(fields={"prompt": "p", "response": "r"})]),
                pb.ScoreRequest(task="nope", items=[pb.Item(fields={"prompt": "p"})])]
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        call = channel.stream_stream(METHODS["ScoreStream"].path, request_serializer=pb.ScoreRequest.SerializeToString,
                                     response_deserializer=pb.ScoreResponse.FromString)
        with pytest.raises(grpc.RpcError) as err:
            list(call(iter(requests), timeout=WAIT))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith("task: ")


def test_async_client(served, judge):
    async def main():
        async with AsyncRewardClient(f"127.0.0.1:{served[1]}", timeout=WAIT, retries=0,
                                     max_items_per_request=2) as c:
            v = await c.compare("What is 2+2?", "4", "5")
            many = await c.judge("pairwise", pair_items(5))
            s = await c.score("p", "r", scale=(1, 7))
            streamed = [r async for r in c.judge_many([("pairwise", pair_items(2)), ("pointwise", [{"prompt": "p",
                                                                                                  "response": "r"}])])]
            ranked = await c.rank("Say hi", ["hi", "hello"])
            return v, many, s, streamed, ranked, await c.health(), await c.task_types()

    v, many, s, streamed, ranked, health, types = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert close(v, judge.compare("What is 2+2?", "4", "5"))
    assert all(close(a, b) for a, b in zip(many, judge.judge("pairwise", pair_items(5))))
    assert close(s, judge.score("p", "r", scale=(1, 7)))
    assert len(streamed) == 2 and len(streamed[0]) == 2 and close(streamed[1][0], judge.score("p", "r"))
    assert sorted(ranked.order) == [0, 1] and health == "SERVING" and "pairwise" in types


def test_reward_client_plugs_into_trl_reward_functions(client, judge):
    from flame_reward.trl import FlameRewardFunction

    prompts = ["Say hi.", "Name a color.", "Say hi."]
    completions = ["hi", "blue", "hello there"]
    remote = FlameRewardFunction(client, mode="pointwise")(prompts=prompts, completions=completions)
    local = FlameRewardFunction(judge, mode="pointwise")(prompts=prompts, completions=completions)
    assert remote == pytest.approx(local, abs=1e-4)
    group = FlameRewardFunction(client, mode="group")(prompts=prompts, completions=completions)
    assert group == pytest.approx(FlameRewardFunction(judge, mode="group")(prompts=prompts, completions=completions),
                                  abs=1e-4)


# -- health, reflection, metrics, logs --------------------------------------------------
def test_health_not_serving_until_the_judge_is_set(judge):
    with running_server(None) as (server, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=5, retries=0) as c:
            assert c.health() == "NOT_SERVING"
            assert c.health("flame_reward.v1.RewardService") == "NOT_SERVING"
            with pytest.raises(ServerError) as err:
                c.compare("p", "a", "b")
            assert err.value.code == grpc.StatusCode.UNAVAILABLE and "loading" in err.value.details
            assert "pairwise" in c.task_types()  # needs no model
            server.set_judge(judge)
            c.wait_until_serving(timeout=5)
            assert c.health() == "SERVING"
            assert isinstance(c.compare("p", "a", "b"), Verdict)


def test_reflection_lists_the_services(served):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {"flame_reward.v1.RewardService", "grpc.health.v1.Health"} <= services
        assert db.FindFileContainingSymbol("flame_reward.v1.RewardService").name == "flame_reward/v1/reward.proto"


def test_metrics_endpoint_and_json_logs(judge):
    from flame_reward.sidecar.observability import JsonLinesFormatter, log

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with running_server(judge) as (server, port):
            metrics_port = server.serve_metrics("127.0.0.1", 0)
            with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
                c.judge("pairwise", pair_items(3))
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=WAIT) as r:
                text = r.read().decode()
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    assert 'flame_reward_server_requests_total{code="OK",method="Score"} 1' in text
    assert 'flame_reward_server_items_total{task="pairwise"} 3' in text
    assert "flame_reward_server_rpc_latency_seconds_bucket" in text and "flame_reward_server_serving 1" in text
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    rpc = [r for r in records if r["event"] == "rpc" and r.get("method") == "Score"]
    batch = [r for r in records if r["event"] == "batch"]
    assert rpc and rpc[0]["code"] == "OK" and rpc[0]["items"] == 3 and rpc[0]["latency_ms"] >= 0
    assert rpc[0]["request_id"]
    assert batch and batch[0]["batch_size"] == 3 and "latency_ms" in batch[0] and batch[0]["task"] == "pairwise"


def test_client_pickles_as_its_settings(served, judge):
    import pickle

    with RewardClient(f"127.0.0.1:{served[1]}", timeout=WAIT, retries=1, token=None) as c:
        copy = pickle.loads(pickle.dumps(c))
    with copy:
        assert copy.target == c.target and copy.settings.retries == 1
        assert close(copy.compare("p", "a", "b"), judge.compare("p", "a", "b"))


def test_both_clients_retry_unavailable_under_one_policy(judge):
    """A server still loading answers UNAVAILABLE; the sync and async clients, unary calls and
    streams alike, retry under the one policy until the judge is set, then get verdicts."""
    import threading

    items = pair_items(2)
    with running_server(None) as (server, port):
        target = f"127.0.0.1:{port}"
        timer = threading.Timer(1.0, server.set_judge, args=(judge,))
        timer.start()
        try:
            with RewardClient(target, timeout=WAIT, retries=20, backoff=0.05, max_backoff=0.2) as c:
                streamed = list(c.judge_many([("pairwise", items)]))
                assert [isinstance(v, Verdict) for v in streamed[0]] == [True, True]
                assert isinstance(c.compare("p", "a", "b"), Verdict)
        finally:
            timer.join()
    with running_server(None) as (server, port):
        target = f"127.0.0.1:{port}"

        async def run() -> tuple[list, Verdict]:
            async with AsyncRewardClient(target, timeout=WAIT, retries=20, backoff=0.05, max_backoff=0.2) as c:
                asyncio.get_running_loop().call_later(1.0, server.set_judge, judge)
                streamed = [r async for r in c.judge_many([("pairwise", items)])]
                return streamed, await c.compare("p", "a", "b")

        streamed, verdict = asyncio.run(run())
        assert [isinstance(v, Verdict) for v in streamed[0]] == [True, True] and isinstance(verdict, Verdict)


def test_no_retry_past_the_policy(judge):
    """retries=0: the loading server's UNAVAILABLE reaches both clients' streams at once."""
    with running_server(None) as (server, port):
        target = f"127.0.0.1:{port}"
        with RewardClient(target, timeout=WAIT, retries=0) as c:
            with pytest.raises(ServerError) as err:
                list(c.judge_many([("pairwise", pair_items(1))]))
            assert err.value.code == grpc.StatusCode.UNAVAILABLE

        async def run() -> None:
            async with AsyncRewardClient(target, timeout=WAIT, retries=0) as c:
                with pytest.raises(ServerError) as err:
                    [r async for r in c.judge_many([("pairwise", pair_items(1))])]
                assert err.value.code == grpc.StatusCode.UNAVAILABLE

        asyncio.run(run())
