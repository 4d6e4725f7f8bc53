"""Bearer-token auth for the gRPC service: one interceptor; health checks are exempt so
probes need no secret, and tokens are compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health

from flame_reward.errors import InvalidInput
from flame_reward.sidecar.observability import Metrics, event

StatusCode = grpc.StatusCode


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Require ``authorization: Bearer <token>`` metadata on every call except health checks
    (so load balancers and Kubernetes probes need no secret). Wrong or missing tokens get
    UNAUTHENTICATED; tokens are compared in constant time."""

    def __init__(self, tokens: str | Sequence[str], metrics: Metrics | None = None,
                 exempt: Sequence[str] = (f"/{health.SERVICE_NAME}/",)) -> None:
        tokens = [tokens] if isinstance(tokens, str) else list(tokens)
        if not tokens or not all(t for t in tokens):
            raise InvalidInput("token", "must be a non-empty string")
        self._expected = [f"Bearer {t}".encode() for t in tokens]
        self._exempt = tuple(exempt)
        self._metrics = metrics

    def _allowed(self, metadata: Sequence[tuple[str, Any]] | None) -> bool:
        values = [v for k, v in (metadata or ()) if k.lower() == "authorization"]
        if len(values) != 1:
            return False
        got = values[0].encode() if isinstance(values[0], str) else bytes(values[0])
        ok = False
        for want in self._expected:
            ok |= hmac.compare_digest(got, want)
        return ok

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        if details.method.startswith(self._exempt) or self._allowed(details.invocation_metadata):
            return continuation(details)
        handler = continuation(details)
        if handler is None:
            return None
        if self._metrics is not None:
            self._metrics.inc("rejected_total", reason="unauthenticated")
        event("rpc", method=details.method, code="UNAUTHENTICATED")
        return _denying(handler, StatusCode.UNAUTHENTICATED, "authorization: missing or invalid bearer token")


def _denying(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    def deny_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        context.abort(code, message)
        yield  # pragma: no cover

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    streaming = handler.response_streaming
    make = kinds[(bool(handler.request_streaming), bool(streaming))]
    return make(deny_stream if streaming else deny, request_deserializer=None,
                response_serializer=handler.response_serializer)


__all__ = ["BearerTokenInterceptor"]
