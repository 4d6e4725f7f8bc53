"""The sidecar's lifecycle: a gRPC server with the service, health, reflection, auth and
metrics, started, drained and stopped as one (:func:`create_server`, :class:`RewardServer`).

>>> server, port = create_server("127.0.0.1:0", judge)   # judge: an Autorater (or None: load later)
>>> server.start()
>>> server.stop(grace=30).wait()                          # drains in-flight requests
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from flame_reward.errors import InvalidInput
from flame_reward.sidecar.auth import BearerTokenInterceptor
from flame_reward.sidecar.observability import Metrics, event, serve_metrics
from flame_reward.sidecar.service import RewardServicer, method_handlers
from flame_reward.sidecar.wire import SERVICE


class RewardServer:
    """A ``grpc.Server`` with the service's parts: ``servicer``, ``health``, ``metrics``.

    ``start()``, ``stop(grace)`` and ``wait_for_termination()`` behave like grpc's;
    ``stop`` also turns health NOT_SERVING first and stops the batcher after the drain.
    ``set_judge(judge)`` starts serving when the server was created without one.
    """

    def __init__(self, server: grpc.Server, servicer: RewardServicer, health_servicer: health.HealthServicer,
                 port: int, address: str, executor: futures.ThreadPoolExecutor | None = None) -> None:
        self.grpc_server = server
        self.executor = executor
        self.servicer = servicer
        self.health = health_servicer
        self.metrics = servicer.metrics
        self.port = port
        self.address = address
        self.metrics_http: Any = None
        self._stopped = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()

    def start(self) -> RewardServer:
        self.grpc_server.start()
        event("listening", address=self.address, port=self.port)
        return self

    def set_judge(self, judge: Any) -> None:
        self.servicer.set_judge(judge)

    def serve_metrics(self, host: str, port: int) -> int:
        """Expose Prometheus text metrics on ``http://host:port/metrics``; returns the port."""
        self.metrics_http = serve_metrics(self.metrics, host, port)
        return int(self.metrics_http.server_address[1])

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stop taking new RPCs, let in-flight ones finish for up to ``grace`` seconds
        (then cancel them), stop the batcher. Returns an event set when all is done."""
        with self._lock:
            if self._stopping:
                return self._stopped
            self._stopping = True
        self.health.enter_graceful_shutdown()
        event("stopping", grace_s=grace)
        done = self.grpc_server.stop(grace)

        def finish() -> None:
            done.wait()
            worker_stopped = self.servicer.close(timeout=30)
            if self.executor is not None:  # grpc leaves the handler pool it was given running
                self.executor.shutdown(wait=True)
            if self.metrics_http is not None:
                self.metrics_http.shutdown()
                self.metrics_http.server_close()
            event("stopped", **({} if worker_stopped else {"worker": "still judging after 30 s"}))
            self._stopped.set()

        threading.Thread(target=finish, name="flame-reward-stop", daemon=True).start()
        return self._stopped

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self.grpc_server.wait_for_termination(timeout)

    def __enter__(self) -> RewardServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop(0).wait(30)


def _read(path: str | Path | bytes | None) -> bytes | None:
    if path is None or isinstance(path, bytes):
        return path
    return Path(path).read_bytes()


def create_server(
    address: str = "127.0.0.1:0",
    judge: Any = None,
    *,
    max_batch_size: int = 32,
    max_wait_ms: float = 5.0,
    max_queue: int = 1024,
    max_items: int = 1024,
    max_rank_candidates: int = 64,
    max_field_chars: int | None = None,
    max_batch_chars: int = 65536,
    max_batch_seconds: float | None = 1.0,
    max_message_bytes: int = 16 * 1024 * 1024,
    max_inflight_bytes: int = 256 * 1024 * 1024,
    max_concurrent_rpcs: int = 256,
    tls_cert: str | Path | bytes | None = None,
    tls_key: str | Path | bytes | None = None,
    tls_client_ca: str | Path | bytes | None = None,
    token: str | Sequence[str] | None = None,
    max_connection_age_s: float | None = None,
    metrics: Metrics | None = None,
) -> tuple[RewardServer, int]:
    """Build the scoring server bound to ``address`` (port 0: any free port); returns
    ``(server, port)``. Call ``server.start()``.

    ``judge``: an :class:`~flame_reward.autorater.Autorater` (or any object with
    ``judge(task, examples, on_error=...)``); ``None`` starts NOT_SERVING until
    ``server.set_judge(...)`` (load the model after the port is open, so health checks
    see it loading). ``max_batch_size`` judgments, ``max_batch_chars`` characters and
    about ``max_batch_seconds`` (from the core's recent pace; ``None`` or 0: no time
    bound) per call into the core, gathered for up to ``max_wait_ms``; ``max_queue`` judgments
    admitted and not yet judged before RESOURCE_EXHAUSTED; ``max_items`` judgments per
    request (a Rank counts its tournament's pairs). ``max_field_chars``: a longer field is
    cut to it before tokenizing when the task may truncate it, refused (an item error
    naming it) otherwise; ``None``: 32 characters per token of the judge's ``max_length``.
    ``max_message_bytes``: the largest request (RESOURCE_EXHAUSTED beyond);
    ``max_inflight_bytes``: requests in progress at once, in bytes (at least one request;
    RESOURCE_EXHAUSTED beyond). ``tls_cert``/``tls_key`` (PEM paths or bytes) serve TLS, with
    ``tls_client_ca`` also requiring client certificates (mTLS). ``token``: require
    ``authorization: Bearer <token>`` (one token or several, for rotation).
    ``max_connection_age_s``: close client connections after this age (in-flight calls
    get 30 s to finish) so clients re-resolve DNS and find new replicas.
    """
    metrics = metrics or Metrics()
    health_servicer = health.HealthServicer()
    health_servicer.set(health.OVERALL_HEALTH, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    servicer = RewardServicer(max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_queue=max_queue,
                              max_items=max_items, max_rank_candidates=max_rank_candidates,
                              max_field_chars=max_field_chars, max_batch_chars=max_batch_chars,
                              max_batch_seconds=max_batch_seconds, max_inflight_bytes=max_inflight_bytes,
                              metrics=metrics,
                              health_servicer=health_servicer)
    interceptors = [BearerTokenInterceptor(token, metrics)] if token else []
    options = [
        ("grpc.max_receive_message_length", int(max_message_bytes)),
        ("grpc.max_send_message_length", int(max_message_bytes)),
        ("grpc.so_reuseport", 0),
    ]
    if max_connection_age_s:
        options += [("grpc.max_connection_age_ms", int(max_connection_age_s * 1000)),
                    ("grpc.max_connection_age_grace_ms", 30_000)]
    executor = futures.ThreadPoolExecutor(max_workers=max_concurrent_rpcs + 4, thread_name_prefix="flame-reward-rpc")
    server = grpc.server(executor, interceptors=interceptors, options=options,
                         maximum_concurrent_rpcs=max_concurrent_rpcs)
    server.add_generic_rpc_handlers((method_handlers(servicer),))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    from grpc_reflection.v1alpha import reflection

    reflection.enable_server_reflection((SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if (tls_cert is None) != (tls_key is None):
        raise InvalidInput("tls_cert" if tls_cert is None else "tls_key", "TLS needs both a certificate and a key")
    try:
        if tls_cert is not None:
            client_ca = _read(tls_client_ca)
            creds = grpc.ssl_server_credentials([(_read(tls_key), _read(tls_cert))], root_certificates=client_ca,
                                                require_client_auth=client_ca is not None)
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise InvalidInput("address", f"cannot bind {address}: {exc}") from None
    if not port:
        raise InvalidInput("address", f"cannot bind {address}")
    reward_server = RewardServer(server, servicer, health_servicer, port, address, executor)
    if judge is not None:
        reward_server.set_judge(judge)
    return reward_server, port


__all__ = ["RewardServer", "create_server"]
