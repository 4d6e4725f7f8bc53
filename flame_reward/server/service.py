"""The gRPC scoring service: a thin servicer over one judge, through the micro-batcher.

>>> server, port = create_server("127.0.0.1:0", judge)   # judge: an Autorater (or None: load later)
>>> server.start()
>>> ...
>>> server.stop(grace=30).wait()                          # drains in-flight requests

Status codes (the message of a request-level error starts with the offending field):

* INVALID_ARGUMENT: unknown or open-ended task type, no items, too many items, an
  unparseable message, a bad strategy. Item-level problems are ``ItemError`` results.
* RESOURCE_EXHAUSTED: the queue is full (retry later) or a message exceeds the size limit.
* DEADLINE_EXCEEDED: the deadline passed; work still queued is dropped, never scored.
* UNAVAILABLE: the model is still loading (health NOT_SERVING) or the server is stopping.
* UNAUTHENTICATED: a bearer token is configured and the call lacks it (health is exempt).

The server never imports training code; it reaches the scoring core only through the
judge object's ``judge(task, examples, on_error="return")``.
"""

from __future__ import annotations

import hmac
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from concurrent.futures import CancelledError, Future
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from flame_reward.errors import FlameRewardError, InvalidInput, UnknownTaskType
from flame_reward.results import ItemError, Verdict
from flame_reward.server import wire
from flame_reward.server.batcher import Closed, DeadlineExpired, MicroBatcher, QueueFull
from flame_reward.server.observability import Metrics, event, log, serve_metrics
from flame_reward.server.wire import METHODS, SERVICE, pb
from flame_reward.tasks.base import TaskType
from flame_reward.tasks.registry import get_task_type, list_task_types

#: Strategies the Rank RPC accepts (the judge-driven ones of :mod:`flame_reward.rerank`).
RANK_STRATEGIES = ("round_robin", "swiss", "knockout", "pointwise", "random")
StatusCode = grpc.StatusCode


class _Status(Exception):
    """End the RPC with ``code`` and ``message`` (raised anywhere in a handler)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(field: str, reason: str) -> _Status:
    return _Status(StatusCode.INVALID_ARGUMENT, f"{field}: {reason}")


def _from_error(exc: BaseException) -> _Status:
    if isinstance(exc, _Status):
        return exc
    if isinstance(exc, InvalidInput):
        return _invalid(exc.field, exc.reason)
    if isinstance(exc, QueueFull):
        return _Status(StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, DeadlineExpired):
        return _Status(StatusCode.DEADLINE_EXCEEDED, str(exc))
    if isinstance(exc, Closed):
        return _Status(StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, CancelledError):
        return _Status(StatusCode.CANCELLED, "the request was cancelled")
    return _Status(StatusCode.INTERNAL, f"scoring failed: {type(exc).__name__}: {exc}")


# -- the servicer --------------------------------------------------------------------------
class RewardServicer:
    """Implements ``flame_reward.v1.RewardService`` over one judge (see the module docstring)."""

    def __init__(
        self,
        judge: Any = None,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        max_items: int = 1024,
        max_rank_candidates: int = 64,
        max_stream_inflight: int = 64,
        metrics: Metrics | None = None,
        health_servicer: health.HealthServicer | None = None,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.max_queue = max_queue
        self.max_items = max_items
        self.max_rank_candidates = max_rank_candidates
        self.max_stream_inflight = max_stream_inflight
        self.metrics = metrics or Metrics()
        self.health = health_servicer
        self.batcher: MicroBatcher | None = None
        self.judge: Any = None
        self.model_name = ""
        self.metrics.gauge("queue_items", lambda: self.batcher.pending_items if self.batcher else 0)
        self.metrics.gauge("serving", lambda: 1.0 if self.batcher is not None else 0.0)
        self.metrics.gauge("core_forwards_total", lambda: self._cost("forwards"))
        self.metrics.gauge("core_tokens_total", lambda: self._cost("tokens"))
        if judge is not None:
            self.set_judge(judge)

    def _cost(self, key: str) -> float:
        cost = getattr(getattr(self.judge, "scorer", self.judge), "cost", None)
        return float(getattr(cost, key, 0) or 0)

    # -- lifecycle ------------------------------------------------------------------------
    def set_judge(self, judge: Any) -> None:
        """Start serving with ``judge`` (health turns SERVING)."""
        if not callable(getattr(judge, "judge", None)):
            raise InvalidInput("judge", "needs a judge(task, examples, on_error=...) method, "
                                        f"got {type(judge).__name__}")
        self.judge = judge
        self.model_name = str(getattr(judge, "model_name", "") or "")
        self.batcher = MicroBatcher(judge, max_batch_size=self.max_batch_size, max_wait_ms=self.max_wait_ms,
                                    max_queue=self.max_queue, metrics=self.metrics)
        if self.health is not None:
            self.health.set(health.OVERALL_HEALTH, health_pb2.HealthCheckResponse.SERVING)
            self.health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        event("serving", model=self.model_name, max_batch_size=self.max_batch_size, max_wait_ms=self.max_wait_ms,
              max_queue=self.max_queue)

    def close(self, timeout: float | None = None) -> None:
        """Finish queued work and stop the batcher."""
        if self.batcher is not None:
            self.batcher.close(timeout)

    def _ready(self) -> MicroBatcher:
        if self.batcher is None:
            raise _Status(StatusCode.UNAVAILABLE, "model: still loading; retry when health is SERVING")
        return self.batcher

    # -- request checks -------------------------------------------------------------------
    def _task(self, name: str, default: str, field: str = "task") -> TaskType:
        name = name or default
        try:
            task = get_task_type(name)
        except UnknownTaskType as exc:
            raise _invalid(field, str(exc)) from None
        if task.generative:
            raise _invalid(field, f"{name!r} is open-ended (generation only) and cannot be scored")
        return task

    def _count(self, n: int, field: str) -> None:
        if n == 0:
            raise _invalid(field, "no items in the request")
        if n > self.max_items:
            raise _invalid(field, f"{n} items exceed the server's limit of {self.max_items} per request")

    @staticmethod
    def _deadline(context: grpc.ServicerContext) -> float | None:
        remaining = context.time_remaining()
        if remaining is None:
            return None
        if remaining <= 0:
            raise _Status(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the request was read")
        return time.monotonic() + remaining

    @staticmethod
    def _wait(future: Future, deadline: float | None) -> list[Verdict | ItemError]:
        try:
            return future.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            future.cancel()
            raise _Status(StatusCode.DEADLINE_EXCEEDED,
                          "deadline exceeded while the request was being scored") from None
        except BaseException as exc:  # noqa: BLE001 (mapped to a status)
            raise _from_error(exc) from None

    def _judge(self, task: str, examples: list[Any], request_id: str, context: grpc.ServicerContext) -> list[Any]:
        deadline = self._deadline(context)
        batcher = self._ready()
        try:
            future = batcher.submit(task, examples, deadline=deadline, request_id=request_id)
        except FlameRewardError as exc:
            raise _from_error(exc) from None
        context.add_callback(future.cancel)  # the RPC ended (cancelled, deadline): drop queued work
        return self._wait(future, deadline)

    # -- RPCs -----------------------------------------------------------------------------
    def Score(self, request: pb.ScoreRequest, context: grpc.ServicerContext) -> pb.ScoreResponse:  # noqa: N802
        task = self._task(request.task, "pointwise")
        self._count(len(request.items), "items")
        defaults = wire.options_to_dict(request.options)
        examples = [wire.item_to_example(item, defaults) for item in request.items]
        results = self._judge(task.name, examples, request.request_id, context)
        return pb.ScoreResponse(request_id=request.request_id, model=self.model_name,
                                results=[wire.result_to_proto(i, r) for i, r in enumerate(results)])

    def Compare(self, request: pb.CompareRequest, context: grpc.ServicerContext) -> pb.CompareResponse:  # noqa: N802
        task = self._task(request.task, "pairwise")
        self._count(len(request.pairs), "pairs")
        defaults = wire.options_to_dict(request.options)
        examples = [wire.pair_to_example(pair, defaults) for pair in request.pairs]
        results = self._judge(task.name, examples, request.request_id, context)
        return pb.CompareResponse(request_id=request.request_id, model=self.model_name,
                                  results=[wire.result_to_proto(i, r) for i, r in enumerate(results)])

    def Rank(self, request: pb.RankRequest, context: grpc.ServicerContext) -> pb.RankResponse:  # noqa: N802
        n = len(request.candidates)
        if n == 0:
            raise _invalid("candidates", "no candidates to rank")
        if n > self.max_rank_candidates:
            raise _invalid("candidates", f"{n} candidates exceed the server's limit of {self.max_rank_candidates}")
        if not request.prompt.strip():
            raise _invalid("prompt", "is empty")
        strategy = request.strategy or "round_robin"
        if strategy not in RANK_STRATEGIES:
            raise _invalid("strategy", f"unknown strategy {strategy!r}; available: {', '.join(RANK_STRATEGIES)}")
        pair_task = self._task(request.pair_task, "pairwise", "pair_task")
        point_task = self._task(request.point_task, "pointwise", "point_task")
        options = wire.options_to_dict(request.options)
        criteria = options.pop("criteria", None)
        pair_options = {k: v for k, v in options.items() if k in pair_task.options}
        point_options = {k: v for k, v in options.items() if k in point_task.options}
        judge = _QueuedJudge(self, self._deadline(context), request.request_id, context)
        self._ready()
        try:
            from flame_reward.rerank import rank
        except ImportError:  # the reranker is optional here: round-robin through the core
            rank = None
        try:
            if rank is not None:
                ranking = rank(request.prompt, list(request.candidates), strategy, judge=judge,
                               pair_task=pair_task.name, point_task=point_task.name, criteria=criteria,
                               pair_options=pair_options, point_options=point_options,
                               seed=int(request.seed), rounds=request.rounds or None)
                order, scores, calls, details = ranking.order, ranking.scores, ranking.judge_calls, ranking.details
            else:
                if strategy != "round_robin":
                    raise _invalid("strategy", "only round_robin is available (flame_reward.rerank is not installed)")
                order, scores, calls, details = _round_robin(judge, pair_task.name, request.prompt,
                                                             list(request.candidates), criteria, pair_options)
        except InvalidInput as exc:
            raise _invalid(exc.field, exc.reason) from None
        return pb.RankResponse(
            request_id=request.request_id, order=[int(i) for i in order],
            scores=[wire.rank_score(s) for s in scores], judge_calls=int(calls),
            strategy=strategy, details=wire.dict_to_struct(details), model=self.model_name,
        )

    def ListTaskTypes(self, request: pb.ListTaskTypesRequest,  # noqa: N802
                      context: grpc.ServicerContext) -> pb.ListTaskTypesResponse:
        return pb.ListTaskTypesResponse(task_types=[wire.task_type_info(t) for t in list_task_types().values()])

    def ScoreStream(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[pb.ScoreResponse]:  # noqa: N802
        """Requests are read on a helper thread and queued as they arrive (at most
        ``max_stream_inflight`` per stream, then the reader waits: back-pressure through
        HTTP/2 flow control); responses are yielded as their batches finish."""
        deadline = self._deadline(context)
        out: queue.Queue[Any] = queue.Queue()
        room = threading.BoundedSemaphore(self.max_stream_inflight)
        lock = threading.Lock()
        state = {"outstanding": 0, "reading": True}
        pending: set[Future] = set()  # queued or running, cancelled if the stream ends
        end = object()

        def settle() -> None:
            with lock:
                if not state["reading"] and state["outstanding"] == 0:
                    out.put(end)

        def done(future: Future, request: pb.ScoreRequest, started: float) -> None:
            out.put((request, future, started))
            room.release()
            with lock:
                state["outstanding"] -= 1
                pending.discard(future)
            settle()

        def reader() -> None:
            try:
                for raw in requests:
                    started = time.perf_counter()
                    request = _parse(METHODS["ScoreStream"], raw)
                    if not request.request_id:
                        request.request_id = uuid.uuid4().hex[:12]
                    task = self._task(request.task, "pointwise")
                    self._count(len(request.items), "items")
                    defaults = wire.options_to_dict(request.options)
                    examples = [wire.item_to_example(item, defaults) for item in request.items]
                    batcher = self._ready()
                    while not room.acquire(timeout=0.5):
                        if not context.is_active():
                            return
                    try:
                        future = batcher.submit(task.name, examples, deadline=deadline,
                                                request_id=request.request_id, block=True)
                    except BaseException:
                        room.release()
                        raise
                    with lock:
                        state["outstanding"] += 1
                        pending.add(future)
                    future.add_done_callback(lambda f, r=request, s=started: done(f, r, s))
            except grpc.RpcError:
                pass  # the client went away; nothing to answer
            except BaseException as exc:  # noqa: BLE001 (ends the stream with a status)
                out.put(_from_error(exc))
            finally:
                with lock:
                    state["reading"] = False
                settle()

        def cancel_pending() -> None:
            with lock:
                queued = list(pending)
            for f in queued:
                f.cancel()

        context.add_callback(cancel_pending)
        threading.Thread(target=reader, name="flame-reward-stream-reader", daemon=True).start()
        while True:
            try:
                item = out.get(timeout=0.5)
            except queue.Empty:
                if not context.is_active():
                    return
                continue
            if item is end:
                return
            if isinstance(item, _Status):
                raise item
            request, future, started = item
            try:
                results = future.result(0)
            except BaseException as exc:  # noqa: BLE001
                raise _from_error(exc) from None
            self.metrics.inc("requests_total", method="ScoreStream.request", code="OK")
            event("rpc", method="ScoreStream.request", request_id=request.request_id, items=len(results),
                  code="OK", latency_ms=round((time.perf_counter() - started) * 1000, 2))
            yield pb.ScoreResponse(request_id=request.request_id, model=self.model_name,
                                   results=[wire.result_to_proto(i, r) for i, r in enumerate(results)])


class _QueuedJudge:
    """A judge for the reranker whose calls go through the micro-batcher (and the RPC's deadline)."""

    def __init__(self, servicer: RewardServicer, deadline: float | None, request_id: str,
                 context: grpc.ServicerContext) -> None:
        self.servicer = servicer
        self.deadline = deadline
        self.request_id = request_id
        self.context = context

    def judge(self, task: str | TaskType, examples: Sequence[Mapping[str, Any]], on_error: str = "return",
              **_: Any) -> list[Verdict | ItemError]:
        name = task if isinstance(task, str) else task.name
        try:
            future = self.servicer._ready().submit(name, list(examples), deadline=self.deadline,
                                                   request_id=self.request_id, block=True)
        except FlameRewardError as exc:
            raise _from_error(exc) from None
        self.context.add_callback(future.cancel)
        results = self.servicer._wait(future, self.deadline)
        if on_error == "raise":
            for r in results:
                if isinstance(r, ItemError):
                    raise InvalidInput(r.field, f"{r.message} (item {r.index})")
        return results


def _round_robin(judge: _QueuedJudge, task: str, prompt: str, candidates: list[str], criteria: str | None,
                 options: Mapping[str, Any]) -> tuple[list[int], list[float], int, dict[str, Any]]:
    """Every pair once (the core judges both presentation orders): score_i = expected wins,
    sum_j P(i beats j), as :func:`flame_reward.rerank.tournament.round_robin` scores it."""
    n = len(candidates)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    extra = {**({"criteria": criteria} if criteria else {}), **options}
    results = judge.judge(task, [{"prompt": prompt, "response_a": candidates[i], "response_b": candidates[j], **extra}
                                 for i, j in pairs]) if pairs else []
    wins = [0.0] * n
    errors = 0
    for (i, j), r in zip(pairs, results):
        p = r.score if isinstance(r, Verdict) else 0.5
        errors += isinstance(r, ItemError)
        wins[i] += p
        wins[j] += 1.0 - p
    order = sorted(range(n), key=lambda i: (-wins[i], i))
    return order, wins, 2 * len(pairs), {"games": len(pairs), "judge_errors": errors}


# -- handlers: parsing, status mapping, logs and metrics -----------------------------------
def _parse(method: wire.Method, raw: bytes) -> Any:
    try:
        return method.request.FromString(raw)
    except (DecodeError, ValueError, TypeError):
        raise _invalid("request", f"not a valid {method.request.DESCRIPTOR.full_name} message") from None


def _items(request: Any) -> int:
    for name in ("items", "pairs", "candidates"):
        if hasattr(request, name):
            return len(getattr(request, name))
    return 0


def _unary_handler(servicer: RewardServicer, method: wire.Method) -> grpc.RpcMethodHandler:
    fn = getattr(servicer, method.name)
    metrics = servicer.metrics

    def handle(raw: bytes, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        code, request_id, items, message = StatusCode.OK, "", 0, ""
        try:
            request = _parse(method, raw)
            if hasattr(request, "request_id"):
                if not request.request_id:
                    request.request_id = uuid.uuid4().hex[:12]
                request_id = request.request_id
            items = _items(request)
            return fn(request, context)
        except Exception as exc:  # noqa: BLE001 (every failure becomes a status)
            status = _from_error(exc)
            if status.code == StatusCode.INTERNAL:
                log.exception("internal error", extra={"fields": {"method": method.name, "request_id": request_id}})
            code, message = status.code, status.message
            context.abort(status.code, status.message)
        finally:
            seconds = time.perf_counter() - started
            metrics.inc("requests_total", method=method.name, code=code.name)
            metrics.observe("rpc_latency_seconds", seconds, method=method.name)
            fields: dict[str, Any] = {"method": method.name, "request_id": request_id, "items": items,
                                      "code": code.name, "latency_ms": round(seconds * 1000, 2)}
            if message:
                fields["message"] = message
            event("rpc", **fields)

    return grpc.unary_unary_rpc_method_handler(handle, response_serializer=method.response.SerializeToString)


def _stream_handler(servicer: RewardServicer, method: wire.Method) -> grpc.RpcMethodHandler:
    metrics = servicer.metrics

    def handle(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
        started = time.perf_counter()
        code, message, answered = StatusCode.OK, "", 0
        try:
            for response in servicer.ScoreStream(requests, context):
                answered += 1
                yield response
        except Exception as exc:  # noqa: BLE001
            status = _from_error(exc)
            code, message = status.code, status.message
            context.abort(status.code, status.message)
        finally:
            seconds = time.perf_counter() - started
            metrics.inc("requests_total", method=method.name, code=code.name)
            metrics.observe("rpc_latency_seconds", seconds, method=method.name)
            event("rpc", method=method.name, responses=answered, code=code.name,
                  latency_ms=round(seconds * 1000, 2), **({"message": message} if message else {}))

    return grpc.stream_stream_rpc_method_handler(handle, response_serializer=method.response.SerializeToString)


def method_handlers(servicer: RewardServicer) -> grpc.GenericRpcHandler:
    """The service's handlers. Requests arrive as bytes and are parsed in the handler, so
    an unparseable message is INVALID_ARGUMENT (not gRPC's generic INTERNAL)."""
    handlers = {
        m.name: (_stream_handler if m.request_streaming else _unary_handler)(servicer, m)
        for m in METHODS.values()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


# -- auth ----------------------------------------------------------------------------------
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


# -- the server ----------------------------------------------------------------------------
class RewardServer:
    """A ``grpc.Server`` with the service's parts: ``servicer``, ``health``, ``metrics``.

    ``start()``, ``stop(grace)`` and ``wait_for_termination()`` behave like grpc's;
    ``stop`` also turns health NOT_SERVING first and stops the batcher after the drain.
    ``set_judge(judge)`` starts serving when the server was created without one.
    """

    def __init__(self, server: grpc.Server, servicer: RewardServicer, health_servicer: health.HealthServicer,
                 port: int, address: str) -> None:
        self.grpc_server = server
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
            self.servicer.close(timeout=30)
            if self.metrics_http is not None:
                self.metrics_http.shutdown()
                self.metrics_http.server_close()
            event("stopped")
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
    max_message_bytes: int = 16 * 1024 * 1024,
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
    see it loading). ``max_batch_size`` items per call into the core, gathered for up to
    ``max_wait_ms``; ``max_queue`` items waiting before RESOURCE_EXHAUSTED; ``max_items``
    per request. ``tls_cert``/``tls_key`` (PEM paths or bytes) serve TLS, with
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
                              max_items=max_items, max_rank_candidates=max_rank_candidates, metrics=metrics,
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
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_concurrent_rpcs + 4, thread_name_prefix="flame-reward-rpc"),
        interceptors=interceptors, options=options, maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
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
    reward_server = RewardServer(server, servicer, health_servicer, port, address)
    if judge is not None:
        reward_server.set_judge(judge)
    return reward_server, port


__all__ = ["BearerTokenInterceptor", "RANK_STRATEGIES", "RewardServer", "RewardServicer", "create_server",
           "method_handlers"]
