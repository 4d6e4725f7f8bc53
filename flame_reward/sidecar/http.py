"""The sidecar's HTTP face: OpenRLHF's ``POST /get_reward`` (and a JSON judge route) over the
same micro-batcher as the gRPC service.

An ASGI app (Starlette) served by uvicorn on a thread of the ``flame-reward serve``
process; every request is queued into the one :class:`~flame_reward.sidecar.batcher.MicroBatcher`,
so OpenRLHF's concurrent one-sample calls and gRPC calls share forward passes.

Routes (each also under ``/t/<token>/...``, see *Auth*):

* ``POST /get_reward``: OpenRLHF's contract (:mod:`flame_reward.integrations.openrlhf`).
  The server's reward options (``--http-mode`` ...) can be overridden per URL with a query
  string (``/get_reward?mode=reference&normalize=true``); OpenRLHF posts to its
  ``--reward.remote_url`` verbatim. Every sample gets a number: one the judge cannot read
  gets the mode's floor, flagged in ``extra_logs.flame_invalid`` with its reason in ``errors``.
* ``POST /v1/judge``: ``{"task", "examples"}`` -> ``{"model", "results"}``, each result a
  verdict dict or ``{"error", "field", "index"}`` (:mod:`flame_reward.sidecar.jsonwire`).
* ``GET /health``: 200 ``{"status": "SERVING"}``, or 503 while the model loads. No auth.

Errors are JSON ``{"error": "<field>: <reason>", "field": ...}``: 400 for a malformed
request (non-JSON, missing or mismatched lists), 401 for a missing or wrong token, 404/405
for unknown routes, 413 past the size limit, 503 while loading or shutting down, 504 when
scoring outlives ``timeout_s``. A full queue makes a request wait for room (OpenRLHF would
otherwise retry and then give up), bounded by ``timeout_s``.

Auth: with tokens configured, a request needs ``Authorization: Bearer <token>`` or the
token as the first path segment after ``/t/``. OpenRLHF cannot send headers, so its URL
carries the token (``http://host:8000/t/<token>/get_reward``): the token then sits in the
trainer's command line and config, and in any proxy's access log. This server's own
request logs redact it (``/t/***/...``) and uvicorn's access log is off.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flame_reward.errors import FlameRewardError, InvalidInput
from flame_reward.sidecar.batcher import Closed, DeadlineExpired, QueueFull
from flame_reward.sidecar.observability import Metrics, event

WAIT_S = 30.0  # the longest start/stop waits for uvicorn


class _HttpError(Exception):
    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.status = status
        self.field = field
        self.reason = reason


@dataclass
class HttpSettings:
    """What the HTTP face needs: where the batcher is (``None`` while the model loads),
    tokens, the OpenRLHF reward options, and limits."""

    batcher: Callable[[], Any]
    tokens: Sequence[str] = ()
    spec: Any = None  # a RewardSpec; default pointwise
    model_name: Callable[[], str] = lambda: ""
    max_items: int = 1024
    max_body_bytes: int = 16 * 1024 * 1024
    timeout_s: float = 170.0  # under OpenRLHF's 180 s client timeout
    metrics: Metrics = field(default_factory=Metrics)


def _json(status: int, body: Any) -> Any:
    from starlette.responses import Response

    return Response(json.dumps(body, ensure_ascii=False), status_code=status, media_type="application/json")


def _error(exc: _HttpError) -> Any:
    return _json(exc.status, {"error": f"{exc.field}: {exc.reason}", "field": exc.field})


def create_app(settings: HttpSettings) -> Any:
    """The Starlette app (see the module docstring)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.routing import Route

    from flame_reward.integrations.openrlhf import RewardSpec, build_examples, make_reply, parse_request
    from flame_reward.sidecar.jsonwire import parse_judge_request, result_to_json

    base_spec = settings.spec or RewardSpec()
    expected = [t.encode() for t in settings.tokens]

    def authorize(request: Request) -> None:
        if not expected:
            return
        got = request.path_params.get("token")
        if got is None:
            header = request.headers.get("authorization", "")
            scheme, _, value = header.partition(" ")
            got = value.strip() if scheme.lower() == "bearer" else None
        ok = False
        for want in expected:  # compare with every token (rotation) in constant time
            ok |= got is not None and hmac.compare_digest(got.encode(), want)
        if not ok:
            settings.metrics.inc("rejected_total", reason="unauthenticated")
            raise _HttpError(401, "authorization", "missing or invalid bearer token")

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise _HttpError(413, "body", f"{declared} bytes exceed the limit of {settings.max_body_bytes}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                raise _HttpError(413, "body", f"more than the limit of {settings.max_body_bytes} bytes")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except (ValueError, UnicodeDecodeError) as exc:
            raise _HttpError(400, "body", f"not valid JSON ({exc})") from None

    async def judge(task: str, examples: list[dict[str, Any]], request_id: str) -> list[Any]:
        batcher = settings.batcher()
        if batcher is None:
            raise _HttpError(503, "model", "still loading; retry when /health says SERVING")
        deadline = time.monotonic() + settings.timeout_s
        try:
            try:
                future = batcher.submit(task, examples, deadline=deadline, request_id=request_id)
            except QueueFull:  # wait for room off the event loop: back-pressure, not a refusal
                future = await asyncio.to_thread(batcher.submit, task, examples, deadline=deadline,
                                                 request_id=request_id, block=True)
            return list(await asyncio.wait_for(asyncio.wrap_future(future), settings.timeout_s))
        except (asyncio.TimeoutError, DeadlineExpired):
            raise _HttpError(504, "deadline", f"not scored within {settings.timeout_s:g} s") from None
        except Closed as exc:
            raise _HttpError(503, "server", str(exc)) from None
        except InvalidInput as exc:
            raise _HttpError(400, exc.field, exc.reason) from None

    def handler(route: str, fn: Callable[[Request, str], Any]) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Any:
            started = time.perf_counter()
            request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:12]
            status, items = 200, 0
            try:
                if route != "health":
                    authorize(request)
                response, items = await fn(request, request_id)
                status = response.status_code
                return response
            except _HttpError as exc:
                status = exc.status
                return _error(exc)
            except Exception as exc:  # noqa: BLE001 (a JSON 500 naming the failure, never a bare traceback)
                status = 500
                return _json(500, {"error": f"scoring: {type(exc).__name__}: {exc}", "field": "scoring"})
            finally:
                seconds = time.perf_counter() - started
                settings.metrics.inc("requests_total", method=f"http:{route}", code=str(status))
                settings.metrics.observe("request_seconds", seconds, method=f"http:{route}")
                path = request.url.path
                if "token" in request.path_params:
                    path = path.replace(request.path_params["token"], "***", 1)
                event("http", route=path, status=status, items=items, request_id=request_id,
                      latency_ms=round(seconds * 1000, 2))

        return handle

    async def get_reward(request: Request, request_id: str) -> tuple[Any, int]:
        body = await read_json(request)
        try:
            spec = base_spec.updated(dict(request.query_params))
            queries, prompts, labels = parse_request(body, settings.max_items)
        except InvalidInput as exc:
            raise _HttpError(400, exc.field, exc.reason) from None
        examples, slots, errors = build_examples(spec, queries, prompts, labels)
        results = await judge(spec.task, examples, request_id) if examples else []
        reply = make_reply(spec, len(queries), slots, results, errors)
        for i, reason in enumerate(reply["errors"]):
            if reason is not None:
                event("unjudgeable", request_id=request_id, item=i, error=reason, reward=reply["rewards"][i])
        return _json(200, reply), len(queries)

    async def judge_route(request: Request, request_id: str) -> tuple[Any, int]:
        body = await read_json(request)
        try:
            task, examples = parse_judge_request(body, settings.max_items)
        except InvalidInput as exc:
            raise _HttpError(400, exc.field, exc.reason) from None
        results = await judge(task, examples, request_id)
        return _json(200, {"model": settings.model_name(), "results": [result_to_json(r) for r in results]}), len(results)

    async def health(request: Request, request_id: str) -> tuple[Any, int]:
        if settings.batcher() is None:
            return _json(503, {"status": "NOT_SERVING"}), 0
        return _json(200, {"status": "SERVING", "model": settings.model_name()}), 0

    routes = []
    for prefix in ("", "/t/{token}"):
        routes += [Route(f"{prefix}/get_reward", handler("get_reward", get_reward), methods=["POST"]),
                   Route(f"{prefix}/v1/judge", handler("judge", judge_route), methods=["POST"]),
                   Route(f"{prefix}/health", handler("health", health), methods=["GET"])]

    async def http_error(request: Request, exc: HTTPException) -> Any:
        field = "route" if exc.status_code == 404 else "method"
        return _json(exc.status_code, {"error": f"{field}: {exc.detail}", "field": field})

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


class HttpServer:
    """uvicorn serving an app on a background thread; ``start()`` returns once it listens."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, tls_cert: str | None = None,
                 tls_key: str | None = None, tls_client_ca: str | None = None, grace_s: float = 30.0) -> None:
        import ssl

        import uvicorn

        kwargs: dict[str, Any] = {}
        if tls_cert:
            kwargs.update(ssl_certfile=tls_cert, ssl_keyfile=tls_key)
            if tls_client_ca:
                kwargs.update(ssl_ca_certs=tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=int(grace_s), **kwargs)
        self.server = uvicorn.Server(config)
        self.host = host
        self.port = port
        self._thread = threading.Thread(target=self.server.run, name="flame-reward-http", daemon=True)

    def start(self) -> HttpServer:
        self._thread.start()
        deadline = time.monotonic() + WAIT_S
        while not self.server.started:
            if not self._thread.is_alive():
                raise InvalidInput("--http", f"cannot serve HTTP on {self.host}:{self.port} (see the log above)")
            if time.monotonic() > deadline:
                raise FlameRewardError("the HTTP server did not start within 30 s")
            time.sleep(0.02)
        sockets = [s for server in getattr(self.server, "servers", []) for s in server.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        event("listening", protocol="http", address=self.host, port=self.port)
        return self

    def stop(self, timeout: float = WAIT_S) -> None:
        """Stop accepting, let in-flight requests finish (uvicorn's graceful shutdown), join."""
        self.server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_http(servicer: Any, host: str, port: int, *, tokens: Sequence[str] = (), spec: Any = None,
               max_body_bytes: int = 16 * 1024 * 1024, tls_cert: str | None = None, tls_key: str | None = None,
               tls_client_ca: str | None = None, grace_s: float = 30.0) -> HttpServer:
    """Start the HTTP face over a :class:`~flame_reward.sidecar.service.RewardServicer`'s batcher."""
    settings = HttpSettings(batcher=lambda: servicer.batcher, tokens=tokens, spec=spec,
                            model_name=lambda: servicer.model_name, max_items=servicer.max_items,
                            max_body_bytes=max_body_bytes, metrics=servicer.metrics)
    return HttpServer(create_app(settings), host, port, tls_cert=tls_cert, tls_key=tls_key,
                      tls_client_ca=tls_client_ca, grace_s=grace_s).start()


__all__ = ["HttpServer", "HttpSettings", "create_app", "serve_http"]
