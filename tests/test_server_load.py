"""The server under concurrency and failure: 32 clients at once, load balancing, a full
queue, deadlines, graceful drain, and a restart while a client retries."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from flame_reward.sidecar.client import RewardClient, ServerError
from flame_reward.results import Verdict
from flame_reward.sidecar.wire import METHODS, example_to_item, pb
from tests.server_helpers import WAIT, GatedJudge, close, mixed_items, pair_items, running_server, varied_judge
from tests.server_helpers import one_torch_thread, stops_its_threads  # noqa: F401 (autouse fixtures)


@pytest.fixture(scope="module")
def judge(tokenizer):
    return varied_judge(tokenizer)


def test_32_concurrent_clients_get_their_own_answers(judge):
    clients, per_client = 32, 2
    jobs = {(c, r): mixed_items(1 + (c + r) % 2, f"c{c}r{r}-") for c in range(clients) for r in range(per_client)}
    # in-process answers first: one batched call per task type over every item
    flat = [(key, k, task, ex) for key, items in jobs.items() for k, (task, ex) in enumerate(items)]
    expected: dict = {}
    for task in {t for _, _, t, _ in flat}:
        mine = [(key, k, ex) for key, k, t, ex in flat if t == task]
        for (key, k, _), v in zip(mine, judge.judge(task, [ex for _, _, ex in mine])):
            expected.setdefault(key, {})[k] = v
    with running_server(judge, max_batch_size=32, max_wait_ms=20) as (server, port):
        barrier = threading.Barrier(clients, timeout=WAIT)

        def run(c: int) -> dict:
            out = {}
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                score = channel.unary_unary(METHODS["Score"].path, request_serializer=pb.ScoreRequest.SerializeToString,
                                            response_deserializer=pb.ScoreResponse.FromString)
                barrier.wait()
                for r in range(per_client):
                    for k, (task, ex) in enumerate(jobs[(c, r)]):
                        rid = f"client{c}-req{r}-{k}"
                        resp = score(pb.ScoreRequest(request_id=rid, task=task, items=[example_to_item(ex)]),
                                     timeout=WAIT)
                        assert resp.request_id == rid
                        out[(c, r, k)] = resp
            return out

        with ThreadPoolExecutor(clients) as pool:
            answers = {}
            for part in pool.map(run, range(clients), timeout=2 * WAIT):
                answers.update(part)
        from flame_reward.sidecar.wire import results_from_proto

        assert len(answers) == len(flat)
        for (c, r, k), resp in answers.items():
            got = results_from_proto(resp.results)
            assert len(got) == 1 and close(got[0], expected[(c, r)][k], 1e-4), (c, r, k)
        count, total = server.metrics.histogram("batch_items")
        assert count < len(answers) and total == len(answers)  # requests were batched together


def test_round_robin_over_two_servers(tokenizer):
    a_judge, b_judge = varied_judge(tokenizer), varied_judge(tokenizer)
    with running_server(a_judge) as (a, pa), running_server(b_judge) as (b, pb_):
        with RewardClient([f"127.0.0.1:{pa}", f"127.0.0.1:{pb_}"], timeout=WAIT, retries=0) as c:
            assert c.target == f"ipv4:127.0.0.1:{pa},127.0.0.1:{pb_}"
            for i in range(32):
                assert isinstance(c.compare(f"q{i}", "a", "b"), Verdict)
        served = [s.metrics.value("requests_total", method="Compare") for s in (a, b)]
    assert sum(served) == 32 and min(served) >= 8, served


def test_full_queue_is_resource_exhausted(judge):
    gated = GatedJudge(judge)
    with running_server(gated, max_queue=2, max_wait_ms=0) as (server, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c, ThreadPoolExecutor(3) as pool:
            first = pool.submit(c.compare, "p0", "a", "b")
            assert gated.entered.wait(WAIT)  # the worker is busy with the first request
            queued = [pool.submit(c.compare, f"p{i}", "a", "b") for i in (1, 2)]
            deadline = time.monotonic() + WAIT
            while server.servicer.batcher.pending_items < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(ServerError) as err:
                c.compare("p3", "a", "b")
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue full" in err.value.details
            gated.gate.set()
            assert all(isinstance(f.result(WAIT), Verdict) for f in [first, *queued])
        assert server.metrics.value("rejected_total", reason="queue_full") == 1


def test_expired_requests_are_dropped_not_scored(judge):
    gated = GatedJudge(judge)
    with running_server(gated, max_wait_ms=0) as (server, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c, ThreadPoolExecutor(2) as pool:
            first = pool.submit(c.compare, "first", "a", "b")
            assert gated.entered.wait(WAIT)
            late = pool.submit(c.compare, "late", "a", "b", timeout=1.5)
            deadline = time.monotonic() + WAIT
            while server.servicer.batcher.pending_items < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert server.servicer.batcher.pending_items == 1  # queued behind the first one
            with pytest.raises(ServerError) as err:
                late.result(WAIT)
            assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
            gated.gate.set()
            assert isinstance(first.result(WAIT), Verdict)
            deadline = time.monotonic() + WAIT
            while server.metrics.value("dropped_total") < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert server.metrics.value("dropped_total") == 1
    assert [ex[0]["prompt"] for _, ex in gated.calls] == ["first"]  # "late" never reached the core


def test_graceful_stop_drains_in_flight_requests(judge):
    gated = GatedJudge(judge)
    with running_server(gated, max_wait_ms=0, max_batch_size=1) as (server, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c, ThreadPoolExecutor(3) as pool:
            in_flight = [pool.submit(c.compare, f"p{i}", "a", "b") for i in range(3)]
            assert gated.entered.wait(WAIT)
            deadline = time.monotonic() + WAIT
            while server.servicer.batcher.pending_items < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            stopped = server.stop(grace=WAIT)  # what SIGTERM does in `flame-reward serve`
            time.sleep(0.2)
            with pytest.raises(ServerError) as err:  # new work is refused while draining
                c.compare("late", "a", "b", timeout=5)
            assert err.value.code == grpc.StatusCode.UNAVAILABLE
            assert not stopped.is_set()
            gated.gate.set()
            results = [f.result(WAIT) for f in in_flight]
            assert all(isinstance(v, Verdict) for v in results)
            assert stopped.wait(WAIT)
    assert sorted(ex[0]["prompt"] for _, ex in gated.calls) == ["p0", "p1", "p2"]


def test_client_retries_through_a_server_restart(judge):
    item = pair_items(1)[0]
    want = judge.judge("pairwise", [item])[0]
    with running_server(judge) as (_, port):
        pass  # started and stopped: the port is free again, nothing listens
    result: dict = {}
    with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=50, backoff=0.05, max_backoff=0.3) as c:
        worker = threading.Thread(target=lambda: result.update(v=c.judge("pairwise", [item], on_error="raise")))
        worker.start()
        time.sleep(0.8)  # the client is retrying UNAVAILABLE meanwhile
        assert worker.is_alive()
        with running_server(judge, address=f"127.0.0.1:{port}"):
            worker.join(WAIT)
            assert not worker.is_alive()
    assert close(result["v"][0], want)
