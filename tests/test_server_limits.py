"""Hostile requests against a real server on 127.0.0.1 (tiny judge): work counted in
judgments against --max-items and --max-queue (a Rank counts its pairs), work split into
pieces with deadlines and cancellation checked between them, over-long fields cut by
characters before tokenizing, bounded caches, and servers that stop every thread.

Which piece of work reaches the core is decided by the test (:class:`StepJudge`), so
every assertion is a count of judged examples, never a timing.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from flame_reward.sidecar.client import RewardClient, ServerError
from flame_reward.errors import InvalidInput
from flame_reward.results import ItemError, Verdict
from flame_reward.sidecar.batcher import FIRST_PIECE, TEMPLATE_CHARS
from flame_reward.sidecar.wire import METHODS, example_to_pair, pb
from tests.server_helpers import (
    WAIT, GatedJudge, StepJudge, close, pair_items, running_server, varied_judge, wait_until,
)
from tests.server_helpers import one_torch_thread, stops_its_threads  # noqa: F401 (autouse fixtures)


@pytest.fixture(scope="module")
def judge(tokenizer):
    return varied_judge(tokenizer)


def _stub(channel: grpc.Channel, method: str):
    m = METHODS[method]
    return channel.unary_unary(m.path, request_serializer=m.request.SerializeToString,
                               response_deserializer=m.response.FromString)


def _candidates(n: int, tag: str = "") -> list[str]:
    return [f"Candidate {tag}{i}: " + "word " * (1 + i % 5) for i in range(n)]


# -- limits in judgments ------------------------------------------------------------------
def test_rank_counts_its_pairs_against_the_request_limit(judge):
    with running_server(judge, max_wait_ms=0) as (_, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
            with pytest.raises(InvalidInput) as err:  # 64 * 63 / 2 = 2016 pairs > 1024
                c.rank("Pick the best.", _candidates(64))
            assert err.value.field == "candidates" and "2016 judgments" in str(err.value)
            assert "limit of 1024" in str(err.value)
            with pytest.raises(InvalidInput, match="1035 judgments"):  # 46 candidates: 1035 pairs
                c.rank("Pick the best.", _candidates(46))
            # 45 candidates (990 pairs) fit; swiss on 64 asks 6 rounds x 32 pairs = 192
            swiss = c.rank("Pick the best.", _candidates(64), "swiss")
            assert sorted(swiss.order) == list(range(64)) and swiss.details["rounds"] == 6
            assert swiss.judge_calls <= 2 * 192
    with running_server(judge, max_items=100, max_wait_ms=0) as (_, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
            with pytest.raises(InvalidInput) as err:
                c.rank("Pick.", _candidates(64), "swiss")
            assert err.value.field == "candidates" and "192 judgments" in str(err.value)
            with pytest.raises(InvalidInput) as err:
                c.rank("Pick.", _candidates(64), "swiss", rounds=4)  # 4 x 32 = 128 > 100
            assert err.value.field == "rounds"
            assert len(c.rank("Pick.", _candidates(64), "swiss", rounds=3).order) == 64  # 96
            assert len(c.rank("Pick.", _candidates(64), "knockout").order) == 64  # 63
            for rounds in (-1, 65):
                with pytest.raises(InvalidInput) as err:
                    c.rank("Pick.", _candidates(64), "swiss", rounds=rounds)
                assert err.value.field == "rounds"


def test_no_request_larger_than_the_queue(judge):
    with running_server(judge, max_queue=5, max_items=1024, max_wait_ms=0) as (_, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0, max_items_per_request=100) as c:
            with pytest.raises(InvalidInput) as err:
                c.compare_batch([(p["prompt"], p["response_a"], p["response_b"]) for p in pair_items(6)])
            assert err.value.field == "pairs" and "limit of 5" in str(err.value)
            with pytest.raises(InvalidInput) as err:
                c.rank("Pick.", _candidates(4))  # 6 pairs
            assert err.value.field == "candidates"
            assert len(c.rank("Pick.", _candidates(3)).order) == 3  # 3 pairs


def test_a_rank_reserves_its_whole_tournament_in_the_queue(judge):
    gated = GatedJudge(judge)
    with running_server(gated, max_queue=50, max_wait_ms=0) as (server, port):
        batcher = server.servicer.batcher
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c, ThreadPoolExecutor(4) as pool:
            first = pool.submit(c.compare, "busy", "a", "b")
            assert gated.entered.wait(WAIT)  # the worker holds the first request
            ranked = pool.submit(c.rank, "Pick the best.", _candidates(10))  # 45 pairs
            wait_until(lambda: batcher.pending_items == 45, what="the Rank's reservation")
            pairs = [(p["prompt"], p["response_a"], p["response_b"]) for p in pair_items(6)]
            with pytest.raises(ServerError) as err:  # 45 + 6 > 50
                c.compare_batch(pairs)
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue full" in err.value.details
            fits = pool.submit(c.compare_batch, pairs[:5])  # 45 + 5 = 50
            wait_until(lambda: batcher.pending_items == 50, what="the queue to fill")
            gated.gate.set()
            assert isinstance(first.result(WAIT), Verdict)
            assert sorted(ranked.result(WAIT).order) == list(range(10))
            assert all(isinstance(v, Verdict) for v in fits.result(WAIT))
        wait_until(lambda: batcher.idle, what="the reservation to be given back")
        assert server.metrics.value("rejected_total", reason="queue_full") == 1


# -- pieces, deadlines, cancellation ------------------------------------------------------
def test_a_rank_past_its_deadline_stops_between_pieces(judge):
    stepper = StepJudge(judge)
    with running_server(stepper, max_batch_size=4, max_wait_ms=0, max_batch_seconds=0) as (server, port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = _stub(channel, "Rank").future(
                pb.RankRequest(prompt="rank-deadline", candidates=_candidates(20)), timeout=3.0)  # 190 pairs
            stepper.wait_calls(1)
            stepper.step()  # piece 1 judged, piece 2 enters the core and waits there
            stepper.wait_calls(2)
            with pytest.raises(grpc.RpcError) as err:
                call.result(WAIT)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            stepper.gate.set()  # from now on every call runs at once
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
            assert close(c.compare("after", "a", "b"), judge.compare("after", "a", "b"))
        wait_until(lambda: server.servicer.batcher.idle, what="an idle worker")
        assert all(len(examples) <= 4 for _, examples in stepper.calls)  # pieces of max_batch_size
        assert stepper.judged("prompt", "rank-deadline") == 8  # 2 pieces of 190 pairs; the rest dropped
        assert server.metrics.value("dropped_total", reason="deadline") == 1


def test_a_cancelled_swiss_rank_runs_no_later_round(judge):
    stepper = StepJudge(judge)
    with running_server(stepper, max_wait_ms=0, max_batch_seconds=0) as (server, port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = _stub(channel, "Rank").future(
                pb.RankRequest(prompt="rank-swiss", candidates=_candidates(16), strategy="swiss"), timeout=WAIT)
            stepper.wait_calls(1)  # round 1 (8 pairs) is in the core
            assert call.cancel()
            wait_until(lambda: server.metrics.value("requests_total", method="Rank") == 1, what="the Rank to end")
            stepper.gate.set()
            wait_until(lambda: server.servicer.batcher.idle, what="an idle worker")
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
            assert isinstance(c.compare("after", "a", "b"), Verdict)
        assert stepper.judged("prompt", "rank-swiss") == 8  # of 4 rounds x 8 pairs: round 1 only
        assert server.metrics.value("requests_total", method="Rank", code="CANCELLED") == 1


def test_a_cancelled_compare_is_dropped_between_pieces(judge):
    stepper = StepJudge(judge)
    pairs = [dict(p, prompt="cancel-me") for p in pair_items(12)]
    with running_server(stepper, max_batch_size=3, max_wait_ms=0, max_batch_seconds=0) as (server, port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = _stub(channel, "Compare").future(
                pb.CompareRequest(pairs=[example_to_pair(p) for p in pairs]), timeout=WAIT)
            stepper.wait_calls(1)
            assert call.cancel()
            wait_until(lambda: server.metrics.value("requests_total", method="Compare") == 1,
                       what="the Compare to end")
            # its 9 unjudged pairs leave the queue at once, while its piece is still in the core
            wait_until(lambda: server.servicer.batcher.pending_items == 0, what="the room to be given back")
            stepper.gate.set()
            wait_until(lambda: server.servicer.batcher.idle, what="an idle worker")
        assert stepper.judged("prompt", "cancel-me") == 3  # the piece in the core when cancelled
        assert server.metrics.value("dropped_total", reason="cancelled") == 1


def test_a_large_request_shares_the_worker_piece_by_piece(judge):
    """A request arriving while a large one is judged is served after the piece in the
    core, not after the whole large request."""
    stepper = StepJudge(judge)
    big = [dict(p, prompt="big") for p in pair_items(20)]
    with running_server(stepper, max_batch_size=4, max_wait_ms=0, max_batch_seconds=0) as (server, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c, ThreadPoolExecutor(2) as pool:
            large = pool.submit(c.judge, "pairwise", big)
            stepper.wait_calls(1)  # piece 1 of 5 in the core
            small = pool.submit(c.compare, "small", "a", "b")
            wait_until(lambda: server.servicer.batcher.pending_items == 17, what="the small request to queue")
            stepper.gate.set()
            assert isinstance(small.result(WAIT), Verdict)
            got = large.result(WAIT)
        want = judge.judge("pairwise", big)
        assert all(close(a, b) for a, b in zip(got, want))
        prompts = [examples[0]["prompt"] for _, examples in stepper.calls]
        assert "small" in {ex["prompt"] for ex in stepper.calls[1][1]}, prompts  # in the very next call
        assert prompts.count("big") >= 5 and all(len(examples) <= 4 for _, examples in stepper.calls)


def test_pieces_are_bounded_in_characters(judge):
    stepper = StepJudge(judge)
    stepper.gate.set()
    items = [{"prompt": "chars", "response_a": "x " * 1500, "response_b": "y"} for _ in range(6)]
    with running_server(stepper, max_batch_size=32, max_batch_chars=7000, max_wait_ms=0,
                        max_batch_seconds=0) as (_, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
            assert all(isinstance(v, Verdict) for v in c.judge("pairwise", items))
    assert [len(examples) for _, examples in stepper.calls] == [2, 2, 2]  # 3,006 characters each


class SlowJudge(GatedJudge):
    """Takes at least ``seconds`` per example (a lower bound: a slower machine only adds)."""

    def __init__(self, inner, seconds: float) -> None:
        super().__init__(inner)
        self.gate.set()
        self.seconds = seconds

    def judge(self, task, examples, on_error="raise", **kwargs):
        time.sleep(self.seconds * len(examples))
        return super().judge(task, examples, on_error=on_error, **kwargs)


def test_pieces_follow_the_cores_pace(judge):
    """Pieces hold what the measured pace says fits in max_batch_seconds: at 0.1 s or more
    per judgment and 0.25 s per piece, at most 2 judgments after the first piece (4, the
    most before the pace is known)."""
    slow = SlowJudge(judge, 0.1)
    items = [{"prompt": "pace", "response_a": "a", "response_b": "b"}] * 12
    with running_server(slow, max_batch_size=32, max_wait_ms=0, max_batch_seconds=0.25) as (server, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
            assert all(isinstance(v, Verdict) for v in c.judge("pairwise", items))
        assert server.servicer.batcher.pace >= 0.1 / (len("pace") + 2 + TEMPLATE_CHARS)
    sizes = [len(examples) for _, examples in slow.calls]
    assert sizes[0] == FIRST_PIECE and max(sizes[1:]) <= 2 and sum(sizes) == 12, sizes


def test_stopping_a_server_drops_unjudged_work_and_stops_the_worker(judge):
    stepper = StepJudge(judge)
    with running_server(stepper, max_batch_size=4, max_wait_ms=0, max_batch_seconds=0) as (server, port):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = _stub(channel, "Rank").future(
                pb.RankRequest(prompt="rank-stop", candidates=_candidates(20)), timeout=WAIT)
            stepper.wait_calls(1)
            stopped = server.stop(0)
            with pytest.raises(grpc.RpcError):
                call.result(WAIT)
            stepper.gate.set()
            assert stopped.wait(WAIT)
        assert not server.servicer.batcher.running
        assert stepper.judged("prompt", "rank-stop") == 4


# -- over-long fields and the message size ------------------------------------------------
def test_over_long_fields_are_cut_by_characters_or_refused(judge):
    recorder = GatedJudge(judge)
    recorder.gate.set()
    huge = "lorem ipsum " * 100_000  # 1.2 M characters
    items = [
        {"prompt": "ok", "response_a": "a", "response_b": "b"},
        {"prompt": "cut", "response_a": huge, "response_b": "b"},
        {"prompt": huge, "response_a": "a", "response_b": "b"},
        {"prompt": "criteria", "response_a": "a", "response_b": "b", "criteria": huge},
        {"prompt": "meta", "response_a": "a", "response_b": "b", "note": huge},
    ]
    with running_server(recorder, max_field_chars=2000, max_wait_ms=0) as (_, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
            got = c.judge("pairwise", items)
            assert [type(r) for r in got] == [Verdict, Verdict, ItemError, ItemError, ItemError]
            assert got[1].truncated == ("response_a",)
            assert close(got[1], judge.judge("pairwise", [dict(items[1], response_a=huge[:2000])])[0])
            for r, field in zip(got[2:], ("prompt", "criteria", "note")):
                assert r.field == field and "1200000 characters exceed the server's limit of 2000" in r.message
            labels = c.classify_batch([("Is it?", "yes")], labels=[f"l{i}" for i in range(300)], on_error="return")
            assert isinstance(labels[0], ItemError) and labels[0].field == "labels"
            labels = c.classify_batch([("Is it?", "yes")], labels=["y" * 1500, "n" * 1500], on_error="return")
            assert labels[0].field == "labels" and "3000 characters in all" in labels[0].message
            with pytest.raises(InvalidInput) as err:
                c.rank(huge, ["a", "b"])
            assert err.value.field == "prompt"
            ranked = c.rank("Pick.", ["short", huge, "other"])
            assert sorted(ranked.order) == [0, 1, 2] and ranked.details["cut_candidates"] == [1]
    sent = [v for _, examples in recorder.calls for ex in examples for v in ex.values() if isinstance(v, str)]
    assert max(len(v) for v in sent) == 2000  # nothing longer reached the tokenizer


def test_default_field_cap_follows_the_judges_token_budget(judge):
    recorder = GatedJudge(judge)
    recorder.gate.set()
    with running_server(recorder, max_wait_ms=0) as (server, port):
        assert server.servicer.max_field_chars == 32 * judge.scorer.max_length == 16384
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
            v = c.compare("p", "z " * 7_500_000, "b")  # a 15 MB field
        assert v.truncated == ("response_a",) and v.tokens <= 2 * judge.scorer.max_length
    assert len(recorder.calls[0][1][0]["response_a"]) == 16384


def test_oversized_message_is_resource_exhausted_naming_the_limit(judge):
    with running_server(judge, max_message_bytes=64 * 1024) as (_, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c:
            with pytest.raises(ServerError) as err:
                c.compare("p", "a" * 200_000, "b")
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "larger than max" in err.value.details and "65536" in err.value.details
            assert "--max-message-mb" in str(err.value)
            assert isinstance(c.compare("p", "a", "b"), Verdict)


def test_requests_in_progress_are_bounded_in_bytes(judge):
    gated = GatedJudge(judge)
    big = "lorem ipsum " * 20_000  # 240 kB
    with running_server(gated, max_inflight_bytes=300_000, max_wait_ms=0) as (server, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0) as c, ThreadPoolExecutor(2) as pool:
            first = pool.submit(c.compare, "first", big, "b")
            assert gated.entered.wait(WAIT)  # its 240 kB are held while it is judged
            with pytest.raises(ServerError) as err:
                c.compare("second", big, "b")
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert err.value.details.startswith("request: ") and "in progress" in err.value.details
            small = pool.submit(c.compare, "small", "a", "b")  # a few bytes still fit
            gated.gate.set()
            assert isinstance(first.result(WAIT), Verdict) and isinstance(small.result(WAIT), Verdict)
        assert server.servicer.inflight.used == 0
        assert server.metrics.value("rejected_total", reason="inflight_bytes") == 1


# -- caches -------------------------------------------------------------------------------
def test_new_label_sets_do_not_grow_the_label_cache(tokenizer):
    from flame_reward.scoring import LABEL_CACHE_SIZE

    fresh = varied_judge(tokenizer)
    items = [{"prompt": "Which?", "response": "r", "labels": [f"x{i}", f"y{i}"]} for i in range(LABEL_CACHE_SIZE + 8)]
    with running_server(fresh, max_wait_ms=0) as (_, port):
        with RewardClient(f"127.0.0.1:{port}", timeout=WAIT, retries=0, max_items_per_request=1024) as c:
            got = c.judge("classification", items)
    assert all(isinstance(v, Verdict) for v in got)
    assert list(got[-1].distribution) == [f"x{len(items) - 1}", f"y{len(items) - 1}"]
    assert len(fresh.scorer._label_cache) == LABEL_CACHE_SIZE
