"""Bearer-token auth (UNAUTHENTICATED; health exempt) and TLS with a self-signed certificate."""

from __future__ import annotations

import grpc
import pytest

from flame_reward.sidecar.client import RewardClient, ServerError
from flame_reward.results import Verdict
from tests.server_helpers import WAIT, close, pair_items, running_server, self_signed_cert, varied_judge
from tests.server_helpers import one_torch_thread, stops_its_threads  # noqa: F401 (autouse fixtures)


@pytest.fixture(scope="module")
def judge(tokenizer):
    return varied_judge(tokenizer)


def _code(fn) -> grpc.StatusCode:
    with pytest.raises(ServerError) as err:
        fn()
    return err.value.code


def test_bearer_token_is_required(judge):
    with running_server(judge, token=["s3cret", "next-s3cret"]) as (server, port):
        target = f"127.0.0.1:{port}"
        with RewardClient(target, timeout=WAIT, retries=0) as anonymous:
            assert _code(lambda: anonymous.compare("p", "a", "b")) == grpc.StatusCode.UNAUTHENTICATED
            assert _code(lambda: list(anonymous.judge_many([("pairwise", pair_items(1))]))) == \
                grpc.StatusCode.UNAUTHENTICATED
            assert _code(anonymous.task_types) == grpc.StatusCode.UNAUTHENTICATED
            assert anonymous.health() == "SERVING"  # probes need no secret
        with RewardClient(target, token="wrong", timeout=WAIT, retries=0) as wrong:
            with pytest.raises(ServerError) as err:
                wrong.compare("p", "a", "b")
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED and "bearer token" in err.value.details
        for token in ("s3cret", "next-s3cret"):  # rotation: either token works
            with RewardClient(target, token=token, timeout=WAIT, retries=0) as ok:
                assert close(ok.compare("p", "a", "b"), judge.compare("p", "a", "b"))
                assert len(list(ok.judge_many([("pairwise", pair_items(2))]))) == 1
        assert server.metrics.value("rejected_total", reason="unauthenticated") == 4
        assert server.metrics.value("items_total") == 6  # nothing unauthenticated reached the core


def test_tls_with_self_signed_certificate(judge, tmp_path):
    cert, key = self_signed_cert(tmp_path)
    (tmp_path / "cert.pem").write_bytes(cert)
    with running_server(judge, tls_cert=cert, tls_key=key, token="t0k") as (_, port):
        with RewardClient(f"127.0.0.1:{port}", root_certificates=tmp_path / "cert.pem", token="t0k",
                          timeout=WAIT, retries=0) as c:
            assert isinstance(c.compare("p", "a", "b"), Verdict)
            assert c.health() == "SERVING"
        with RewardClient(f"localhost:{port}", root_certificates=cert, token="t0k", timeout=WAIT, retries=0) as c:
            assert isinstance(c.score("p", "r"), Verdict)
        with RewardClient(f"127.0.0.1:{port}", token="t0k", timeout=5, retries=0) as plaintext:
            assert _code(lambda: plaintext.compare("p", "a", "b")) == grpc.StatusCode.UNAVAILABLE
        (tmp_path / "other").mkdir()
        other, _ = self_signed_cert(tmp_path / "other")  # a certificate the server does not hold
        with RewardClient(f"127.0.0.1:{port}", root_certificates=other, token="t0k", timeout=5, retries=0) as untrusted:
            assert _code(lambda: untrusted.compare("p", "a", "b")) == grpc.StatusCode.UNAVAILABLE


def test_tls_needs_both_files(judge):
    from flame_reward.errors import InvalidInput
    from flame_reward.sidecar import create_server

    with pytest.raises(InvalidInput, match="tls_key"):
        create_server("127.0.0.1:0", judge, tls_cert=b"x")
