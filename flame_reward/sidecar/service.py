"""The gRPC scoring service: a thin servicer over one judge, through the micro-batcher.

>>> server, port = create_server("127.0.0.1:0", judge)   # judge: an Autorater (or None: load later)
>>> server.start()
>>> ...
>>> server.stop(grace=30).wait()                          # drains in-flight requests

Status codes (the message of a request-level error starts with the offending field):

* INVALID_ARGUMENT: unknown or open-ended task type, no items, more judgments than the
  server takes per request (a Rank's tournament counts its pairs), an over-long field
  that may not be cut, an unparseable message, a bad strategy or round count.
  Item-level problems are ``ItemError`` results.
* RESOURCE_EXHAUSTED: the queue is full (retry later) or a message exceeds the size limit.
* DEADLINE_EXCEEDED: the deadline passed; work not yet judged is dropped, never scored.
* CANCELLED: the caller cancelled; work not yet judged is dropped.
* UNAVAILABLE: the model is still loading (health NOT_SERVING) or the server is stopping.
* UNAUTHENTICATED: a bearer token is configured and the call lacks it (health is exempt).

Work is counted in judgments (one example through the core; a pair is one judgment,
scored in both presentation orders): see :mod:`flame_reward.sidecar.batcher`.

The server never imports training code; it reaches the scoring core only through the
judge object's ``judge(task, examples, on_error="return")``.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2

from flame_reward.errors import FlameRewardError, InvalidInput, UnknownTaskType
from flame_reward.rerank import rank
from flame_reward.rerank.tournament import swiss_rounds
from flame_reward.results import ItemError, Verdict
from flame_reward.sidecar import wire
from flame_reward.sidecar.batcher import Closed, DeadlineExpired, MicroBatcher, QueueFull, Reservation
from flame_reward.sidecar.observability import Metrics, event, log
from flame_reward.sidecar.wire import METHODS, SERVICE, pb
from flame_reward.tasks.base import TaskType
from flame_reward.tasks.registry import get_task_type, list_task_types

#: Strategies the Rank RPC accepts (the judge-driven ones of :mod:`flame_reward.rerank`).
RANK_STRATEGIES = ("round_robin", "swiss", "knockout", "pointwise", "random")
#: The per-field character cap, when not given, is this many characters per token of the
#: judge's ``max_length`` (65,536 for the default 2048): natural text averages about 4, so
#: a field cut there still holds far more tokens than the core's budget keeps.
FIELD_CHARS_PER_TOKEN = 32
#: Entries a list-valued option (``labels``) may hold: the core's label-token check is
#: quadratic in the label count.
MAX_LIST_ITEMS = 256
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


def _on_end(context: grpc.ServicerContext, fn: Callable[[], Any]) -> None:
    """Call ``fn`` when the RPC ends (cancelled, deadline, done), or now if it already has."""
    if not context.add_callback(fn):
        fn()


def _short(name: str, limit: int = 100) -> str:
    return name if len(name) <= limit else name[:limit] + "..."


@dataclass
class _Prepared:
    """A request's examples after the per-field character cap: what goes to the core, and
    how to put the answers back in the request's slots."""

    send: list[Any]
    slots: list[int]  # the request index of each example sent
    errors: dict[int, ItemError]  # refused before the core
    cut: dict[int, tuple[str, ...]]  # fields cut by characters
    total: int

    def merge(self, results: Sequence[Verdict | ItemError]) -> list[Verdict | ItemError]:
        out: list[Any] = [None] * self.total
        for index, error in self.errors.items():
            out[index] = error
        for slot, r in zip(self.slots, results):
            if isinstance(r, ItemError):
                r = ItemError(slot, r.field, r.message)
            elif slot in self.cut:
                r = dataclasses.replace(r, truncated=tuple(sorted(set(r.truncated) | set(self.cut[slot]))))
            out[slot] = r
        return out


class _ByteBudget:
    """Bytes of requests being handled at once: parsing a request copies it several times
    over (protobuf, then Python strings), so a crowd of large requests is refused here
    (RESOURCE_EXHAUSTED) before any copy is made, and resident memory stays bounded."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.used = 0
        self._metrics = metrics
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        with self._lock:
            if self.used and self.used + n > self.limit:
                self._metrics.inc("rejected_total", reason="inflight_bytes")
                raise _Status(StatusCode.RESOURCE_EXHAUSTED,
                              f"request: {n} bytes would exceed the server's {self.limit // 2**20} MiB of requests "
                              f"in progress ({self.used} bytes now); retry later")
            self.used += n

    def give(self, n: int) -> None:
        with self._lock:
            self.used -= n


# -- the servicer --------------------------------------------------------------------------
class RewardServicer:
    """Implements ``flame_reward.v1.RewardService`` over one judge (see the module docstring).

    ``max_items``: judgments per request (also bounded by ``max_queue``);
    ``max_field_chars``: characters per field before tokenizing (``None``:
    :data:`FIELD_CHARS_PER_TOKEN` times the judge's ``max_length``); ``max_batch_chars``
    and ``max_batch_seconds``: characters and (estimated) seconds per call into the core
    (see :class:`MicroBatcher`).
    """

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
        max_field_chars: int | None = None,
        max_batch_chars: int = 65536,
        max_batch_seconds: float | None = 1.0,
        max_inflight_bytes: int = 256 * 2**20,
        metrics: Metrics | None = None,
        health_servicer: health.HealthServicer | None = None,
    ) -> None:
        for name, value in (("max_items", max_items), ("max_queue", max_queue), ("max_batch_chars", max_batch_chars),
                            ("max_field_chars", 1 if max_field_chars is None else max_field_chars)):
            if value < 1:
                raise InvalidInput(name, f"must be >= 1, got {value}")
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.max_queue = max_queue
        self.max_items = max_items
        self.max_rank_candidates = max_rank_candidates
        self.max_stream_inflight = max_stream_inflight
        self.max_batch_chars = max_batch_chars
        self.max_batch_seconds = max_batch_seconds
        self._field_chars = max_field_chars
        self.metrics = metrics or Metrics()
        self.inflight = _ByteBudget(max_inflight_bytes, self.metrics)
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

    @property
    def max_field_chars(self) -> int:
        """Characters a field may hold before it is cut (truncatable) or refused."""
        if self._field_chars is not None:
            return self._field_chars
        max_length = getattr(getattr(self.judge, "scorer", None), "max_length", None)
        return FIELD_CHARS_PER_TOKEN * int(max_length if isinstance(max_length, int) and max_length > 0 else 2048)

    @property
    def request_limit(self) -> int:
        """Judgments one request may ask for: ``max_items``, and never more than the queue holds."""
        return min(self.max_items, self.max_queue)

    # -- lifecycle ------------------------------------------------------------------------
    def set_judge(self, judge: Any) -> None:
        """Start serving with ``judge`` (health turns SERVING)."""
        if not callable(getattr(judge, "judge", None)):
            raise InvalidInput("judge", "needs a judge(task, examples, on_error=...) method, "
                                        f"got {type(judge).__name__}")
        old = self.batcher
        self.judge = judge
        self.model_name = str(getattr(judge, "model_name", "") or "")
        self.batcher = MicroBatcher(judge, max_batch_size=self.max_batch_size, max_wait_ms=self.max_wait_ms,
                                    max_queue=self.max_queue, max_batch_chars=self.max_batch_chars,
                                    max_batch_seconds=self.max_batch_seconds, metrics=self.metrics)
        if old is not None:
            old.close(30)
        if self.health is not None:
            self.health.set(health.OVERALL_HEALTH, health_pb2.HealthCheckResponse.SERVING)
            self.health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        event("serving", model=self.model_name, max_batch_size=self.max_batch_size, max_wait_ms=self.max_wait_ms,
              max_queue=self.max_queue, max_items=self.request_limit, max_field_chars=self.max_field_chars)

    def close(self, timeout: float | None = None) -> bool:
        """Finish queued work and stop the batcher; returns whether its worker stopped."""
        if self.batcher is not None:
            return self.batcher.close(timeout)
        return True

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
        if n > self.request_limit:
            raise _invalid(field, f"{n} items exceed the server's limit of {self.request_limit} per request")

    def _cap(self, task: TaskType, example: Any) -> tuple[Any, tuple[str, ...]]:
        """``example`` with over-long truncatable fields cut to ``max_field_chars``
        characters (and their names); :class:`InvalidInput` for any other over-long value."""
        if not isinstance(example, Mapping):
            return example, ()
        limit = self.max_field_chars
        truncatable = set(task.truncatable())
        out: dict[str, Any] | None = None
        cut: list[str] = []
        for key, value in example.items():
            if isinstance(value, str) and len(value) > limit:
                if key not in truncatable:
                    cuttable = ", ".join(sorted(truncatable)) or "none"
                    raise InvalidInput(_short(str(key)), f"{len(value)} characters exceed the server's limit of "
                                                         f"{limit} per field (fields cut to fit for task type "
                                                         f"{task.name!r}: {cuttable})")
                out = dict(example) if out is None else out
                out[key] = value[:limit]
                cut.append(str(key))
            elif isinstance(value, (list, tuple)):
                if len(value) > MAX_LIST_ITEMS:
                    raise InvalidInput(_short(str(key)), f"{len(value)} entries exceed the server's limit of "
                                                         f"{MAX_LIST_ITEMS}")
                chars = sum(len(x) for x in value if isinstance(x, str))
                if chars > limit:  # labels are rendered together, into the instruction
                    raise InvalidInput(_short(str(key)), f"{chars} characters in all exceed the server's limit of "
                                                         f"{limit} per field")
        return (example if out is None else out), tuple(cut)

    def _prepare(self, task: TaskType, examples: list[Any]) -> _Prepared:
        prepared = _Prepared([], [], {}, {}, len(examples))
        for index, example in enumerate(examples):
            try:
                example, cut = self._cap(task, example)
            except InvalidInput as exc:
                prepared.errors[index] = ItemError(index, exc.field, exc.reason)
                continue
            if cut:
                prepared.cut[index] = cut
            prepared.send.append(example)
            prepared.slots.append(index)
        return prepared

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

    def _judge(self, task: TaskType, examples: list[Any], request_id: str,
               context: grpc.ServicerContext) -> list[Verdict | ItemError]:
        deadline = self._deadline(context)
        batcher = self._ready()
        prepared = self._prepare(task, examples)
        try:
            future = batcher.submit(task.name, prepared.send, deadline=deadline, request_id=request_id,
                                    alive=context.is_active)
        except (FlameRewardError, CancelledError) as exc:
            raise _from_error(exc) from None
        _on_end(context, future.cancel)  # the RPC ended (cancelled, deadline): drop unjudged work
        return prepared.merge(self._wait(future, deadline))

    # -- RPCs -----------------------------------------------------------------------------
    def Score(self, request: pb.ScoreRequest, context: grpc.ServicerContext) -> pb.ScoreResponse:  # noqa: N802
        task = self._task(request.task, "pointwise")
        self._count(len(request.items), "items")
        defaults = wire.options_to_dict(request.options)
        examples = [wire.item_to_example(item, defaults) for item in request.items]
        results = self._judge(task, examples, request.request_id, context)
        return pb.ScoreResponse(request_id=request.request_id, model=self.model_name,
                                results=[wire.result_to_proto(i, r) for i, r in enumerate(results)])

    def Compare(self, request: pb.CompareRequest, context: grpc.ServicerContext) -> pb.CompareResponse:  # noqa: N802
        task = self._task(request.task, "pairwise")
        self._count(len(request.pairs), "pairs")
        defaults = wire.options_to_dict(request.options)
        examples = [wire.pair_to_example(pair, defaults) for pair in request.pairs]
        results = self._judge(task, examples, request.request_id, context)
        return pb.CompareResponse(request_id=request.request_id, model=self.model_name,
                                  results=[wire.result_to_proto(i, r) for i, r in enumerate(results)])

    def _rank_cost(self, strategy: str, n: int, rounds: int) -> int:
        """Judgments a Rank may ask for (an upper bound: identical texts and rematches are
        not judged): every pair for round_robin, n/2 pairs a round for swiss, n - 1 for
        knockout, n ratings for pointwise, none for random."""
        pairs = n * (n - 1) // 2
        if strategy == "round_robin":
            return pairs
        if strategy == "swiss":
            return min(pairs, (rounds or swiss_rounds(n)) * (n // 2))
        if strategy == "knockout":
            return max(0, n - 1)
        if strategy == "pointwise":
            return n
        return 0

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
        if request.rounds < 0 or request.rounds > n:
            raise _invalid("rounds", f"must be between 0 (the default, ceil(log2 n)) and the number of candidates "
                                     f"({n}), got {request.rounds}")
        cost = self._rank_cost(strategy, n, request.rounds)
        if cost > self.request_limit:
            field = "rounds" if strategy == "swiss" and request.rounds else "candidates"
            raise _invalid(field, f"{n} candidates with strategy {strategy!r} need up to {cost} judgments, over the "
                                  f"server's limit of {self.request_limit} per request (--max-items, --max-queue); "
                                  "send fewer candidates or use swiss, knockout or pointwise")
        pair_task = self._task(request.pair_task, "pairwise", "pair_task")
        point_task = self._task(request.point_task, "pointwise", "point_task")
        options = wire.options_to_dict(request.options)
        task = point_task if strategy == "pointwise" else pair_task
        candidates, cut = self._rank_texts(task, request.prompt, list(request.candidates), options)
        criteria = options.pop("criteria", None)
        pair_options = {k: v for k, v in options.items() if k in pair_task.options}
        point_options = {k: v for k, v in options.items() if k in point_task.options}
        deadline = self._deadline(context)
        batcher = self._ready()
        try:
            reservation = batcher.reserve(cost, deadline=deadline, request_id=request.request_id,
                                          alive=context.is_active)
        except (FlameRewardError, CancelledError) as exc:
            raise _from_error(exc) from None
        with reservation:
            judge = _QueuedJudge(self, reservation, context)
            try:
                ranking = rank(request.prompt, candidates, strategy, judge=judge, pair_task=pair_task.name,
                               point_task=point_task.name, criteria=criteria, pair_options=pair_options,
                               point_options=point_options, seed=int(request.seed), rounds=request.rounds or None)
            except InvalidInput as exc:
                raise _invalid(exc.field, exc.reason) from None
        details = dict(ranking.details)
        if cut:
            details["cut_candidates"] = cut
        return pb.RankResponse(
            request_id=request.request_id, order=[int(i) for i in ranking.order],
            scores=[wire.rank_score(s) for s in ranking.scores], judge_calls=int(ranking.judge_calls),
            strategy=strategy, details=wire.dict_to_struct(details), model=self.model_name,
        )

    def _rank_texts(self, task: TaskType, prompt: str, candidates: list[str],
                    options: dict[str, Any]) -> tuple[list[str], list[int]]:
        """The character cap for a Rank: the prompt and options as the task's, each
        candidate as its response field (cut when that field is truncatable)."""
        response = "response" if "response" in {f.name for f in task.fields} else "response_a"
        try:
            self._cap(task, {"prompt": prompt, **options})
        except InvalidInput as exc:
            raise _invalid(exc.field, exc.reason) from None
        out: list[str] = []
        cut: list[int] = []
        for i, text in enumerate(candidates):
            try:
                capped, names = self._cap(task, {response: text})
            except InvalidInput as exc:
                raise _invalid("candidates", f"candidate {i}: {exc.reason}") from None
            out.append(capped[response])
            if names:
                cut.append(i)
        return out, cut

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

        def done(future: Future, request: pb.ScoreRequest, prepared: _Prepared, started: float) -> None:
            out.put((request, future, prepared, started))
            room.release()
            with lock:
                state["outstanding"] -= 1
                pending.discard(future)
            settle()

        def reader() -> None:
            try:
                for raw in requests:
                    started = time.perf_counter()
                    self.inflight.take(len(raw))
                    try:  # parsed and cut, a request holds at most its capped fields
                        request = _parse(METHODS["ScoreStream"], raw)
                        if not request.request_id:
                            request.request_id = uuid.uuid4().hex[:12]
                        task = self._task(request.task, "pointwise")
                        self._count(len(request.items), "items")
                        defaults = wire.options_to_dict(request.options)
                        prepared = self._prepare(task, [wire.item_to_example(item, defaults)
                                                        for item in request.items])
                    finally:
                        self.inflight.give(len(raw))
                    del raw
                    batcher = self._ready()
                    while not room.acquire(timeout=0.5):
                        if not context.is_active():
                            return
                    try:
                        future = batcher.submit(task.name, prepared.send, deadline=deadline,
                                                request_id=request.request_id, alive=context.is_active, block=True)
                    except BaseException:
                        room.release()
                        raise
                    with lock:
                        state["outstanding"] += 1
                        pending.add(future)
                    future.add_done_callback(lambda f, r=request, p=prepared, s=started: done(f, r, p, s))
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

        _on_end(context, cancel_pending)
        reading = threading.Thread(target=reader, name="flame-reward-stream-reader", daemon=True)
        reading.start()
        try:
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
                request, future, prepared, started = item
                try:
                    results = prepared.merge(future.result(0))
                except BaseException as exc:  # noqa: BLE001
                    raise _from_error(exc) from None
                self.metrics.inc("requests_total", method="ScoreStream.request", code="OK")
                event("rpc", method="ScoreStream.request", request_id=request.request_id, items=len(results),
                      code="OK", latency_ms=round((time.perf_counter() - started) * 1000, 2))
                yield pb.ScoreResponse(request_id=request.request_id, model=self.model_name,
                                       results=[wire.result_to_proto(i, r) for i, r in enumerate(results)])
        finally:
            cancel_pending()
            reading.join(5.0)  # it stops once the request stream ends, which the RPC's end forces


class _QueuedJudge:
    """A judge for the reranker whose calls go through the micro-batcher, drawn from the
    Rank's reservation; a call after the RPC was cancelled or its deadline passed is
    refused, so later tournament rounds never run for a caller that is gone."""

    def __init__(self, servicer: RewardServicer, reservation: Reservation, context: grpc.ServicerContext) -> None:
        self.servicer = servicer
        self.reservation = reservation
        self.context = context

    def judge(self, task: str | TaskType, examples: Sequence[Mapping[str, Any]], on_error: str = "return",
              **_: Any) -> list[Verdict | ItemError]:
        name = task if isinstance(task, str) else task.name
        deadline = self.reservation.deadline
        if not self.context.is_active():
            raise _Status(StatusCode.CANCELLED, "the request was cancelled")
        if deadline is not None and time.monotonic() >= deadline:
            raise _Status(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded while the request was being scored")
        try:
            future = self.reservation.submit(name, list(examples))
        except FlameRewardError as exc:
            raise _from_error(exc) from None
        _on_end(self.context, future.cancel)
        results = self.servicer._wait(future, deadline)
        if on_error == "raise":
            for r in results:
                if isinstance(r, ItemError):
                    raise InvalidInput(r.field, f"{r.message} (item {r.index})")
        return results


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
        taken = 0
        try:
            servicer.inflight.take(len(raw))
            taken = len(raw)
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
            servicer.inflight.give(taken)
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


__all__ = ["RANK_STRATEGIES", "RewardServicer", "method_handlers"]
