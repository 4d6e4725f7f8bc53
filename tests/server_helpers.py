"""Shared pieces of the gRPC server tests: judges, a bounded server context, items, certificates.

Every server binds 127.0.0.1 port 0 and is stopped in a ``finally``; every wait is bounded.
Test modules import :func:`stops_its_threads` (autouse): after a module's tests no thread
the server starts (batcher, stream readers, handler pool, metrics, stop) may be left.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

WAIT = 30.0  # the longest any test waits for anything
THREAD_PREFIX = "flame-reward-"  # every thread the server starts is named so


def server_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive())


@pytest.fixture(scope="module", autouse=True)
def stops_its_threads():
    """Fails the module if a server, batcher or stream thread outlives its tests (a
    leftover thread logs into streams pytest has closed)."""
    yield
    wait_until(lambda: not server_threads(), what="server threads to stop")


def wait_until(condition: Callable[[], bool], timeout: float = WAIT, what: str = "a condition") -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f" (left: {server_threads()})" if "thread" in what else ""))
        time.sleep(0.01)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread while these tests run (restored after): on a small shared
    machine the default pool spin-waits on descheduled threads and every op of the tiny
    model costs tens of milliseconds; the server tests measure behaviour, not speed."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def varied_judge(tokenizer, seed: int = 3):
    """A tiny random Llama judge whose verdicts differ clearly between inputs
    (initializer_range 0.5), so a mixed-up answer cannot pass for the right one."""
    from flame_reward.autorater import Autorater
    from flame_reward.models.backends import TorchBackend
    from flame_reward.scoring import Scorer
    from tests.conftest import make_tiny_loaded

    loaded = make_tiny_loaded(tokenizer, seed=seed, initializer_range=0.5)
    return Autorater(Scorer(TorchBackend(loaded), tokenizer, batch_size=8, max_length=512), model_name="tiny-varied")


class GatedJudge:
    """Wraps a judge; each call announces itself (``entered``) and waits for ``gate``
    (bounded), so a test can hold the worker busy while it queues more requests."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.scorer = getattr(inner, "scorer", None)  # the server reads the token budget from it
        self.model_name = "gated"
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []

    def judge(self, task, examples, on_error="raise", **kwargs):
        name = task if isinstance(task, str) else task.name
        self.calls.append((name, [dict(e) for e in examples]))
        self.entered.set()
        self.gate.wait(WAIT)
        return self.inner.judge(task, examples, on_error=on_error, **kwargs)


class StepJudge:
    """Wraps a judge; each call is recorded and then waits for a permit (``step()`` gives
    one; ``gate.set()`` lets every call through), so a test decides when each piece of
    work reaches the core and can count exactly what was judged."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.scorer = getattr(inner, "scorer", None)
        self.model_name = "step"
        self.gate = threading.Event()
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []
        self._permits = threading.Semaphore(0)

    def judge(self, task, examples, on_error="raise", **kwargs):
        name = task if isinstance(task, str) else task.name
        self.calls.append((name, [dict(e) for e in examples]))
        deadline = time.monotonic() + WAIT
        while not self.gate.is_set() and not self._permits.acquire(timeout=0.01):
            if time.monotonic() > deadline:
                break
        return self.inner.judge(task, examples, on_error=on_error, **kwargs)

    def step(self, n: int = 1) -> None:
        self._permits.release(n)

    def wait_calls(self, n: int) -> None:
        wait_until(lambda: len(self.calls) >= n, what=f"{n} calls into the judge")

    def judged(self, key: str, value: str) -> int:
        """Examples judged so far whose ``key`` field is ``value``."""
        return sum(1 for _, examples in self.calls for ex in examples if ex.get(key) == value)


@contextlib.contextmanager
def running_server(judge: Any, address: str = "127.0.0.1:0", **kwargs: Any) -> Iterator[tuple[Any, int]]:
    """A started server on 127.0.0.1 (a random port unless ``address`` names one), always stopped."""
    from flame_reward.sidecar import create_server

    server, port = create_server(address, judge, **kwargs)
    server.start()
    try:
        yield server, port
    finally:
        gate = getattr(judge, "gate", None)
        if gate is not None:
            gate.set()
        assert server.stop(0).wait(WAIT), "the server did not stop"
        assert server.servicer.batcher is None or not server.servicer.batcher.running, "the batcher still runs"


def pair_items(n: int, tag: str = "") -> list[dict[str, Any]]:
    """``n`` distinct pairwise items of different lengths (so ``tokens`` tells them apart)."""
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    out = []
    for i in range(n):
        out.append({
            "prompt": f"Question {tag}{i}: " + " ".join(words[: 1 + i % 8]),
            "response_a": "Answer " + " ".join(words[i % 3:]) * (1 + i % 4),
            "response_b": "Reply " + words[(i * 5) % 8] * (1 + i % 5),
        })
    return out


def mixed_items(n: int, tag: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(task, example) for pairwise, pointwise and classification items, all distinct."""
    out: list[tuple[str, dict[str, Any]]] = []
    for i, pair in enumerate(pair_items(n, tag)):
        kind = i % 3
        if kind == 0:
            out.append(("pairwise", pair))
        elif kind == 1:
            out.append(("pointwise", {"prompt": pair["prompt"], "response": pair["response_a"],
                                      "scale": [1, 3 + i % 7]}))
        else:
            out.append(("classification", {"prompt": "Is it correct? " + pair["prompt"], "response": pair["response_b"],
                                           "labels": ["yes", "no", "maybe"][: 2 + i % 2]}))
    return out


def close(a: Any, b: Any, tol: float = 1e-4) -> bool:
    """Two verdicts agree: same task, label set, tokens; every probability within ``tol``."""
    return (
        a.task == b.task and a.tokens == b.tokens and list(a.distribution) == list(b.distribution)
        and abs(a.score - b.score) <= tol * max(1.0, abs(b.score))
        and all(abs(a.distribution[k] - b.distribution[k]) <= tol for k in b.distribution)
        and len(a.orders) == len(b.orders)
    )


def self_signed_cert(tmp_path) -> tuple[bytes, bytes]:
    """A self-signed certificate for localhost / 127.0.0.1 and its key (PEM), made with
    ``cryptography`` when installed, else the ``openssl`` command."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key_path), "-out",
                        str(cert_path), "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        return cert_path.read_bytes(), key_path.read_bytes()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
