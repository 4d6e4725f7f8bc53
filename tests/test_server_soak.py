"""Soak: hostile and normal requests mixed for a bounded time against the embedded default
served in this process on 127.0.0.1, then a normal Compare answers in normal time and
resident memory is back near where it started.

Hostile traffic: 4 MB and 15 MB fields, a 1 MB prompt, 64-candidate Ranks (refused),
32-candidate Ranks with a 2 s deadline, Swiss Ranks cancelled mid-tournament, Compares
with 0.3 s deadlines and cancelled Compares, classification requests with new label sets.
Normal traffic: one client sending Compares throughout, every one of which must succeed.

Stated margins: after the soak, the median of three Compares is at most
``LATENCY_FACTOR`` times the median measured before it (same test, same server) plus
``LATENCY_SLACK_S``; resident memory (VmRSS after ``gc.collect()``) is at most
``RSS_MARGIN_MB`` above its value before (measured once the server has judged one item at
the full token budget). The judge reads at most 256 tokens per task, so one maximal item
costs about two normal Compares and the test stays within a minute.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest

from flame_reward.sidecar.client import RewardClient
from flame_reward.results import ItemError, Verdict
from flame_reward.sidecar.wire import METHODS, pb
from tests.server_helpers import close, running_server, wait_until
from tests.server_helpers import one_torch_thread, stops_its_threads  # noqa: F401 (autouse fixtures)

LATENCY_FACTOR = 2.0
LATENCY_SLACK_S = 1.0
RSS_MARGIN_MB = 150.0
MAX_LENGTH = 256


def rss_mb() -> float:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture(scope="module")
def soak_judge(embedded_judge):
    """The embedded default's weights with a 256-token budget (a new Scorer on the same backend)."""
    from flame_reward.autorater import Autorater
    from flame_reward.scoring import Scorer

    scorer = embedded_judge.scorer
    return Autorater(Scorer(scorer.backend, scorer.tokenizer, batch_size=4, max_length=MAX_LENGTH),
                     model_name=embedded_judge.model_name)


def _median_compare(client: RewardClient, n: int = 3) -> tuple[float, Verdict]:
    times = []
    verdict = None
    for _ in range(n):
        started = time.perf_counter()
        verdict = client.compare("What is 2+2?", "4", "5", timeout=120)
        times.append(time.perf_counter() - started)
    return statistics.median(times), verdict


def _outcome(fn) -> str:
    """``OK``, the status code's name, the client exception's name, or what ``fn`` says."""
    try:
        said = fn()
        return said if isinstance(said, str) else "OK"
    except grpc.RpcError as exc:
        return exc.code().name
    except Exception as exc:  # noqa: BLE001 (client errors carry the status code)
        code = getattr(exc, "code", None)
        return getattr(code, "name", type(exc).__name__)


def _soak(target: str, seconds: float) -> dict[str, Counter]:
    """Run every kind of traffic in its own thread for ``seconds``; outcomes by kind."""
    end = time.monotonic() + seconds
    outcomes: dict[str, Counter] = {}
    candidates = [f"Answer {i}: Paris is the capital, " + "indeed " * (i % 5) for i in range(64)]
    field_4mb = "lorem ipsum dolor sit amet " * 150_000
    field_15mb = ("lorem ipsum dolor sit amet " * 560_000)[:15_000_000]
    rank = METHODS["Rank"]
    compare = METHODS["Compare"]

    def loop(kind: str, action, pause: float, once: bool = False) -> None:
        seen = outcomes.setdefault(kind, Counter())
        with RewardClient(target, timeout=60, retries=0) as client, grpc.insecure_channel(target) as channel:
            while time.monotonic() < end:
                seen[_outcome(lambda: action(client, channel))] += 1
                if once:
                    return
                time.sleep(pause)

    def huge_field(client, channel):
        v = client.compare("Summarise the text.", field_4mb, "A summary.", timeout=20)
        assert v.truncated == ("response_a",)

    def field_15mb_once(client, channel):
        v = client.compare("Summarise the text.", field_15mb, "A summary.", timeout=30)
        assert v.truncated == ("response_a",)

    def huge_prompt(client, channel):
        got = client.judge("pairwise", [{"prompt": field_4mb[:1_000_000], "response_a": "a", "response_b": "b"}])
        assert isinstance(got[0], ItemError) and got[0].field == "prompt"

    def rank64(client, channel):
        client.rank("Capital of France?", candidates, timeout=10)

    def rank32_deadline(client, channel):
        client.rank("Capital of France?", candidates[:32], timeout=2.0)

    def swiss_cancelled(client, channel):
        call = channel.unary_unary(rank.path, request_serializer=rank.request.SerializeToString,
                                   response_deserializer=rank.response.FromString)
        future = call.future(pb.RankRequest(prompt="Capital of France?", candidates=candidates[:16],
                                            strategy="swiss"), timeout=30)
        time.sleep(0.5)
        return "CANCELLED" if future.cancel() else f"done before the cancel: {future.exception()!r}"

    def short_deadline(client, channel):
        client.compare("Quick?", "yes", "no", timeout=0.3)

    def cancelled_compare(client, channel):
        call = channel.unary_unary(compare.path, request_serializer=compare.request.SerializeToString,
                                   response_deserializer=compare.response.FromString)
        pairs = [pb.Pair(prompt=f"Cancel {i}?", response_a="yes", response_b="no") for i in range(16)]
        future = call.future(pb.CompareRequest(pairs=pairs), timeout=30)
        time.sleep(0.2)
        return "CANCELLED" if future.cancel() else f"done before the cancel: {future.exception()!r}"

    labels_round = [0]

    def new_labels(client, channel):
        labels_round[0] += 1
        r = labels_round[0]
        items = [{"prompt": "Which fits?", "response": "It fits.", "labels": [f"a{r}x{i}", f"b{r}x{i}"]}
                 for i in range(8)]
        client.judge("classification", items, timeout=15)

    def normal(client, channel):
        assert isinstance(client.compare("What is 2+2?", "4", "5", timeout=60), Verdict)

    kinds = [("huge_field", huge_field, 1.0, False), ("field_15mb", field_15mb_once, 0.0, True),
             ("huge_prompt", huge_prompt, 1.0, False), ("rank64", rank64, 0.2, False),
             ("rank32_deadline", rank32_deadline, 0.5, False), ("swiss_cancelled", swiss_cancelled, 0.5, False),
             ("short_deadline", short_deadline, 0.3, False), ("cancelled_compare", cancelled_compare, 0.5, False),
             ("new_labels", new_labels, 0.5, False), ("normal", normal, 0.0, False)]
    threads = [threading.Thread(target=loop, args=k, name=f"soak-{k[0]}") for k in kinds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
        assert not t.is_alive(), f"{t.name} still running"
    return outcomes


@pytest.mark.model
@pytest.mark.parametrize("seconds", [20.0, pytest.param(300.0, marks=pytest.mark.slow)])
def test_hostile_soak_then_normal_compare_and_memory(soak_judge, seconds, capsys):
    with running_server(soak_judge, max_wait_ms=2.0) as (server, port):
        target = f"127.0.0.1:{port}"
        batcher = server.servicer.batcher
        with RewardClient(target, timeout=120, retries=0) as client:
            # Warm up to the longest rows the soak sends (the token budget), so the baseline
            # is a warm server's and any growth afterwards is the hostile traffic's.
            client.compare("Warm up.", "lorem ipsum " * 200, "b")
            before_s, _ = _median_compare(client)
            before_mb = rss_mb()
            outcomes = _soak(target, seconds)
            wait_until(lambda: batcher.idle, timeout=120, what="the worker to finish the soak's pieces")
            time.sleep(1.0)  # the worker hands freed memory back after 0.5 s idle
            after_mb = rss_mb()
            after_s, verdict = _median_compare(client)
        served = {k: server.metrics.value("requests_total", method=k) for k in ("Compare", "Rank", "Score")}
    with capsys.disabled():
        print(f"\nsoak {seconds:.0f} s: Compare median before {before_s:.2f} s, after {after_s:.2f} s; "
              f"RSS before {before_mb:.0f} MB, after {after_mb:.0f} MB; requests {served}; "
              f"outcomes { {k: dict(v) for k, v in outcomes.items()} }")
    assert close(verdict, soak_judge.compare("What is 2+2?", "4", "5"))
    allowed = {
        "huge_field": {"OK", "DEADLINE_EXCEEDED"}, "field_15mb": {"OK", "DEADLINE_EXCEEDED"},
        "huge_prompt": {"OK"}, "rank64": {"InvalidInput"}, "rank32_deadline": {"DEADLINE_EXCEEDED"},
        "swiss_cancelled": {"CANCELLED"}, "short_deadline": {"OK", "DEADLINE_EXCEEDED"},
        "cancelled_compare": {"CANCELLED"}, "new_labels": {"OK", "DEADLINE_EXCEEDED"}, "normal": {"OK"},
    }
    for kind, seen in outcomes.items():
        assert set(seen) <= allowed[kind], (kind, dict(seen))
    assert outcomes["normal"]["OK"] >= 1 and outcomes["rank64"]["InvalidInput"] >= 1
    assert outcomes["rank32_deadline"]["DEADLINE_EXCEEDED"] >= 1
    assert after_s <= LATENCY_FACTOR * before_s + LATENCY_SLACK_S, (before_s, after_s)
    assert after_mb <= before_mb + RSS_MARGIN_MB, (before_mb, after_mb)
