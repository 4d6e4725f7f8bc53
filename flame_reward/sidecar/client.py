"""Clients of the gRPC scoring sidecar (``flame-reward serve``): sync and asyncio.

>>> from flame_reward.sidecar.client import RewardClient
>>> with RewardClient("127.0.0.1:50051") as judge:
...     v = judge.compare("What is 2+2?", "4", "5")      # the same Verdict as Autorater.compare
...     judge.judge("pointwise", [{"prompt": p, "response": r}])

The methods mirror :class:`~flame_reward.autorater.Autorater` (``judge``, ``compare``,
``compare_batch``, ``score``, ``score_batch``, ``classify``, ``classify_batch``,
``task_types``) and return the same :class:`~flame_reward.results.Verdict` /
:class:`~flame_reward.results.ItemError` objects, so a client can stand in for an
in-process judge: the TRL reward functions (:mod:`flame_reward.trl`) and the reranker
(:mod:`flame_reward.rerank`) accept it unchanged. One difference: ``judge()`` defaults to
``on_error="return"`` (an invalid item is an ``ItemError`` in its slot), the contract of a
remote verdict source; pass ``on_error="raise"`` for the Autorater's behaviour.

Scaling out: give several endpoints (``["10.0.0.1:50051", "10.0.0.2:50051"]``) or a DNS
name with several addresses (``"dns:///reward.default.svc.cluster.local:50051"``, e.g. a
Kubernetes headless service): requests are spread with gRPC's own ``round_robin`` load
balancing, which skips endpoints that are down.

Retries: a call that fails with UNAVAILABLE (server restarting, model loading, endpoint
down) is retried with exponential backoff and jitter, within the call's overall timeout.
Scoring is idempotent, so retrying is always safe. Other errors are raised at once:
INVALID_ARGUMENT as :class:`~flame_reward.errors.InvalidInput` naming the field (or
:class:`~flame_reward.errors.UnknownTaskType`), everything else as :class:`ServerError`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import grpc

from flame_reward.errors import FlameRewardError, InvalidInput, UnknownTaskType
from flame_reward.results import ItemError, Verdict
from flame_reward.sidecar import wire
from flame_reward.sidecar.wire import METHODS, SERVICE, pb

OnError = Literal["raise", "return"]
DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class ServerError(FlameRewardError):
    """A call to the scoring server failed; ``code`` is the ``grpc.StatusCode``."""

    def __init__(self, code: grpc.StatusCode, details: str, method: str = "") -> None:
        self.code = code
        self.details = details
        self.method = method
        super().__init__(f"{method or 'RPC'} failed with {code.name}: {details}")


@dataclass(frozen=True)
class RankResult:
    """What the Rank RPC returns (the fields of :class:`flame_reward.rerank.ranking.Ranking`)."""

    order: list[int]
    #: One per candidate: a number, or a tuple compared lexicographically (knockout, swiss).
    scores: list[float | tuple[float, ...]]
    judge_calls: int
    strategy: str
    details: dict[str, Any] = field(default_factory=dict)
    model: str = ""

    @property
    def best(self) -> int:
        return self.order[0]


@dataclass(frozen=True)
class FieldInfo:
    name: str
    description: str
    required: bool
    truncatable: bool


@dataclass(frozen=True)
class TaskTypeInfo:
    """A task type registered on the server (plugins included)."""

    name: str
    description: str
    fields: tuple[FieldInfo, ...]
    options: tuple[str, ...]
    generative: bool
    pairwise: bool


# -- channels ------------------------------------------------------------------------------
def channel_target(endpoints: str | Sequence[str]) -> str:
    """A gRPC target for one endpoint or several.

    One string is used as is (``host:port``, ``dns:///name:port``, ``unix:/path``), unless
    it lists several ``host:port`` separated by commas. Several endpoints become a static
    ``ipv4:`` (or ``ipv6:``) address list; host names among them are resolved once, now.
    """
    if isinstance(endpoints, str):
        if "," not in endpoints or "://" in endpoints or endpoints.startswith(("ipv4:", "ipv6:")):
            return endpoints
        endpoints = [e.strip() for e in endpoints.split(",") if e.strip()]
    endpoints = list(endpoints)
    if not endpoints:
        raise InvalidInput("target", "no endpoints given")
    if len(endpoints) == 1:
        return endpoints[0]
    v4: list[str] = []
    v6: list[str] = []
    for ep in endpoints:
        host, sep, port = ep.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise InvalidInput("target", f"expected HOST:PORT, got {ep!r}")
        host = host.strip("[]")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            try:
                ip = ipaddress.ip_address(socket.getaddrinfo(host, int(port), socket.AF_INET)[0][4][0])
            except OSError as exc:
                raise InvalidInput("target", f"cannot resolve {host!r}: {exc}") from None
        (v4 if ip.version == 4 else v6).append(f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}")
    if v4 and v6:
        raise InvalidInput("target", "cannot mix IPv4 and IPv6 endpoints in one channel")
    return ("ipv4:" + ",".join(v4)) if v4 else ("ipv6:" + ",".join(v6))


def channel_options(*, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, server_name: str | None = None,
                    max_reconnect_backoff_ms: int = 2000) -> list[tuple[str, Any]]:
    """Channel arguments: round_robin load balancing over every resolved address, message
    size limits, and a short reconnect backoff (a restarted sidecar is found quickly)."""
    config = {"loadBalancingConfig": [{"round_robin": {}}]}
    options: list[tuple[str, Any]] = [
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.service_config", json.dumps(config)),
        ("grpc.max_receive_message_length", int(max_message_bytes)),
        ("grpc.max_send_message_length", int(max_message_bytes)),
        ("grpc.initial_reconnect_backoff_ms", min(200, max_reconnect_backoff_ms)),
        ("grpc.min_reconnect_backoff_ms", min(100, max_reconnect_backoff_ms)),
        ("grpc.max_reconnect_backoff_ms", int(max_reconnect_backoff_ms)),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


def _read(value: str | Path | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


def _credentials(tls: bool, root_certificates: Any, private_key: Any, certificate_chain: Any) -> Any:
    if not (tls or root_certificates or private_key or certificate_chain):
        return None
    return grpc.ssl_channel_credentials(root_certificates=_read(root_certificates), private_key=_read(private_key),
                                        certificate_chain=_read(certificate_chain))


def _translate(error: grpc.RpcError, method: str) -> FlameRewardError:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else "") or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        name, sep, reason = details.partition(": ")
        if sep and re.fullmatch(r"[A-Za-z_][\w.\-]*", name):
            unknown = re.match(r"unknown task type '([^']*)'; registered: (.*)$", reason)
            if unknown:
                return UnknownTaskType(unknown.group(1), [x.strip() for x in unknown.group(2).split(",")])
            return InvalidInput(name, reason)
        return InvalidInput("request", details)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        details += (" (a gRPC message size limit: the server's --max-message-mb for requests, this client's "
                    "max_message_bytes for responses; send fewer or shorter items per call)")
    return ServerError(code, details, method)


# -- requests and results (shared by both clients) -----------------------------------------
def _chunks(examples: list[Any], size: int) -> list[tuple[int, list[Any]]]:
    return [(start, examples[start:start + size]) for start in range(0, len(examples), size)] or [(0, [])]


def _score_request(task: str, examples: Sequence[Any], request_id: str | None = None) -> pb.ScoreRequest:
    return pb.ScoreRequest(request_id=request_id or uuid.uuid4().hex[:12], task=task,
                           items=[wire.example_to_item(ex) for ex in examples])


def _shift(results: list[Verdict | ItemError], offset: int) -> list[Verdict | ItemError]:
    return [ItemError(r.index + offset, r.field, r.message) if isinstance(r, ItemError) and offset else r
            for r in results]


def _check(results: list[Verdict | ItemError], on_error: OnError) -> list[Verdict | ItemError]:
    if on_error == "raise":
        for r in results:
            if isinstance(r, ItemError):
                raise InvalidInput(r.field, f"{r.message} (item {r.index})")
    return results


def _task_name(task: Any) -> str:
    return task if isinstance(task, str) else str(getattr(task, "name", task))


def _check_judge_kwargs(kwargs: Mapping[str, Any]) -> None:
    if kwargs.get("both_orders", True) is False:
        raise InvalidInput("both_orders", "the scoring service always judges both presentation orders")
    unknown = sorted(set(kwargs) - {"both_orders", "progress"})
    if unknown:
        raise TypeError(f"judge() got unexpected keyword arguments: {', '.join(unknown)}")


def _pairs(pairs: Sequence[Any], criteria: str | None, allow_tie: bool, tie_margin: float) -> list[dict[str, Any]]:
    """Examples exactly as ``Autorater.compare_batch`` builds them."""
    out = []
    for item in pairs:
        ex = dict(item) if isinstance(item, Mapping) else dict(zip(("prompt", "response_a", "response_b"), item))
        ex.setdefault("allow_tie", allow_tie)
        ex.setdefault("tie_margin", tie_margin)
        if criteria is not None:
            ex.setdefault("criteria", criteria)
        out.append(ex)
    return out


def _singles(items: Sequence[Any], option: str, value: Any, criteria: str | None) -> list[dict[str, Any]]:
    """Examples as ``Autorater.score_batch`` / ``classify_batch`` build them."""
    out = []
    for item in items:
        ex = dict(item) if isinstance(item, Mapping) else dict(zip(("prompt", "response"), item))
        ex.setdefault(option, value)
        if criteria is not None:
            ex.setdefault("criteria", criteria)
        out.append(ex)
    return out


def _single(prompt: str, response: str, **optional: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"prompt": prompt, "response": response}
    item.update({k: v for k, v in optional.items() if v is not None})
    return item


def _rank_request(prompt: str, candidates: Sequence[str], strategy: str, criteria: str | None,
                  options: Mapping[str, Any] | None, seed: int, rounds: int | None, pair_task: str | None,
                  point_task: str | None) -> pb.RankRequest:
    opts = dict(options or {})
    if criteria is not None:
        opts["criteria"] = criteria
    return pb.RankRequest(request_id=uuid.uuid4().hex[:12], prompt=prompt, candidates=list(candidates),
                          strategy=strategy, options=wire.options_to_proto(opts), seed=seed, rounds=rounds or 0,
                          pair_task=pair_task or "", point_task=point_task or "")


def _rank_result(response: pb.RankResponse) -> RankResult:
    return RankResult(order=list(response.order), scores=[wire.rank_score_value(s) for s in response.scores],
                      judge_calls=response.judge_calls,
                      strategy=response.strategy, details=wire.struct_to_dict(response.details), model=response.model)


def _task_types(response: pb.ListTaskTypesResponse) -> dict[str, TaskTypeInfo]:
    return {
        t.name: TaskTypeInfo(t.name, t.description,
                             tuple(FieldInfo(f.name, f.description, f.required, f.truncatable) for f in t.fields),
                             tuple(t.options), t.generative, t.pairwise)
        for t in response.task_types
    }


class _Settings:
    def __init__(self, target: str | Sequence[str], token: str | None, tls: bool, root_certificates: Any,
                 private_key: Any, certificate_chain: Any, server_name: str | None, timeout: float, retries: int,
                 backoff: float, max_backoff: float, max_message_bytes: int, max_items_per_request: int,
                 options: Sequence[tuple[str, Any]]) -> None:
        if max_items_per_request < 1:
            raise InvalidInput("max_items_per_request", f"must be >= 1, got {max_items_per_request}")
        self.target = channel_target(target)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.credentials = _credentials(tls, root_certificates, private_key, certificate_chain)
        self.options = channel_options(max_message_bytes=max_message_bytes, server_name=server_name,
                                       max_reconnect_backoff_ms=int(max_backoff * 1000)) + list(options)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.chunk = max_items_per_request

    def pause(self, attempt: int) -> float:
        """Exponential backoff with jitter (half to full of the exponential step)."""
        step = min(self.max_backoff, self.backoff * (2 ** attempt))
        return step * (0.5 + 0.5 * random.random())


class _Attempts:
    """The one retry and deadline policy of both clients, for one call.

    Only UNAVAILABLE is retried (scoring is idempotent, so that is always safe), with
    jittered exponential backoff, and never past the call's deadline; the sync and async
    clients differ only in how they sleep.
    """

    def __init__(self, settings: _Settings, method: str, timeout: float | None) -> None:
        self.settings, self.method = settings, method
        self.deadline = time.monotonic() + (settings.timeout if timeout is None else timeout)
        self.attempt = 0

    def remaining(self) -> float:
        """Seconds left for the next attempt; raises DEADLINE_EXCEEDED when none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ServerError(grpc.StatusCode.DEADLINE_EXCEEDED, "no attempt left before the timeout", self.method)
        return left

    def pause_after(self, error: grpc.RpcError) -> float:
        """Seconds to wait before retrying after ``error``; raises it (translated) when no retry is allowed."""
        if error.code() != grpc.StatusCode.UNAVAILABLE or self.attempt >= self.settings.retries:
            raise _translate(error, self.method) from None
        pause = self.settings.pause(self.attempt)
        if time.monotonic() + pause >= self.deadline:
            raise _translate(error, self.method) from None
        self.attempt += 1
        return pause


def _rebuild(cls: type, target: Any, kwargs: dict[str, Any]) -> Any:
    return cls(target, **kwargs)


def _connect(client: Any, channels: Any, target: str | Sequence[str], **kw: Any) -> None:
    """The set-up both clients share: settings, the pickling recipe (``client._init``), the
    channel from ``channels`` (``grpc`` or ``grpc.aio``) and one callable per RPC."""
    client._init = (target, {**kw, "root_certificates": _read(kw["root_certificates"]),
                             "private_key": _read(kw["private_key"]),
                             "certificate_chain": _read(kw["certificate_chain"]), "options": list(kw["options"])})
    s = client.settings = _Settings(target, **kw)
    client.target = s.target
    if s.credentials is not None:
        client.channel = channels.secure_channel(s.target, s.credentials, options=s.options)
    else:
        client.channel = channels.insecure_channel(s.target, options=s.options)
    client._calls = {
        m.name: (client.channel.stream_stream if m.request_streaming else client.channel.unary_unary)(
            m.path, request_serializer=m.request.SerializeToString, response_deserializer=m.response.FromString)
        for m in METHODS.values()
    }


# -- connection set-up shared by both clients ----------------------------------------------
class _ClientBase:
    """The constructor both clients share; ``_aio`` picks ``grpc`` or ``grpc.aio`` channels."""

    _aio = False

    def __init__(
        self,
        target: str | Sequence[str] = DEFAULT_TARGET,
        *,
        token: str | None = None,
        tls: bool = False,
        root_certificates: str | Path | bytes | None = None,
        private_key: str | Path | bytes | None = None,
        certificate_chain: str | Path | bytes | None = None,
        server_name: str | None = None,
        timeout: float = 120.0,
        retries: int = 5,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_items_per_request: int = 256,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        _connect(self, grpc.aio if self._aio else grpc, target, token=token, tls=tls, root_certificates=root_certificates,
                 private_key=private_key, certificate_chain=certificate_chain, server_name=server_name,
                 timeout=timeout, retries=retries, backoff=backoff, max_backoff=max_backoff,
                 max_message_bytes=max_message_bytes, max_items_per_request=max_items_per_request, options=options)


# -- the sync client -----------------------------------------------------------------------
class RewardClient(_ClientBase):
    """A judge whose verdicts come from a scoring server (see the module docstring).

    ``target``: ``host:port``, a list of them (round_robin), or any gRPC target such as
    ``dns:///name:port``. ``token``: bearer token. ``tls=True`` (system roots) or
    ``root_certificates`` (PEM path/bytes) for TLS; ``private_key``/``certificate_chain``
    for mTLS; ``server_name`` overrides the name checked in the server's certificate.
    ``timeout``: seconds per call, retries included. ``retries``: extra attempts on
    UNAVAILABLE. ``max_items_per_request``: larger ``judge()`` calls are split and
    streamed (the server micro-batches them with everyone else's).
    Thread-safe: share one client between threads.
    """

    # -- plumbing -------------------------------------------------------------------------
    def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        attempts = _Attempts(self.settings, method, timeout)
        while True:
            try:
                return self._calls[method](request, timeout=attempts.remaining(), metadata=self.settings.metadata)
            except grpc.RpcError as exc:
                time.sleep(attempts.pause_after(exc))

    # -- generic --------------------------------------------------------------------------
    def judge(self, task: Any, examples: Iterable[Mapping[str, Any]], *, on_error: OnError = "return",
              timeout: float | None = None, **kwargs: Any) -> list[Verdict | ItemError]:
        """Verdicts for examples of any task type registered on the server, in input order.

        ``on_error="return"`` (default) puts an :class:`ItemError` in an invalid item's slot;
        ``"raise"`` raises :class:`InvalidInput` for the first one, like the Autorater.
        """
        _check_judge_kwargs(kwargs)
        examples = list(examples)
        if not examples:
            return []
        name = _task_name(task)
        parts = _chunks(examples, self.settings.chunk)
        if len(parts) == 1:
            response = self._call("Score", _score_request(name, examples), timeout)
            return _check(wire.results_from_proto(response.results), on_error)
        results: list[Verdict | ItemError] = []
        for (start, _), part in zip(parts, self.judge_many([(name, p) for _, p in parts], timeout=timeout)):
            results.extend(_shift(part, start))
        return _check(results, on_error)

    def judge_many(self, jobs: Iterable[tuple[Any, Sequence[Mapping[str, Any]]]], *,
                   timeout: float | None = None) -> Iterator[list[Verdict | ItemError]]:
        """Many ``(task, examples)`` requests over one bidirectional stream (for throughput);
        yields each one's results in input order. Requests still unanswered when the
        stream fails with UNAVAILABLE are sent again on a new stream."""
        requests = [_score_request(_task_name(t), list(ex)) for t, ex in jobs]
        if not requests:
            return
        by_id = {r.request_id: i for i, r in enumerate(requests)}
        answers: dict[int, list[Verdict | ItemError]] = {}
        attempts = _Attempts(self.settings, "ScoreStream", timeout)
        following = 0
        while len(answers) < len(requests):
            todo = [r for i, r in enumerate(requests) if i not in answers]
            try:
                for response in self._calls["ScoreStream"](iter(todo), timeout=attempts.remaining(),
                                                           metadata=self.settings.metadata):
                    index = by_id.get(response.request_id)
                    if index is None:
                        continue
                    answers[index] = wire.results_from_proto(response.results)
                    while following in answers:
                        yield answers[following]
                        following += 1
            except grpc.RpcError as exc:
                time.sleep(attempts.pause_after(exc))
                continue
            if len(answers) < len(requests):
                raise ServerError(grpc.StatusCode.INTERNAL, "the stream ended before every request was answered",
                                  "ScoreStream")
        while following < len(requests):
            yield answers[following]
            following += 1

    def task_types(self, timeout: float | None = None) -> dict[str, TaskTypeInfo]:
        """The task types registered on the server (plugins included)."""
        return _task_types(self._call("ListTaskTypes", pb.ListTaskTypesRequest(), timeout))

    # -- pairwise -------------------------------------------------------------------------
    def compare(self, prompt: str, response_a: str, response_b: str, *, criteria: str | None = None,
                allow_tie: bool = False, tie_margin: float = 0.0, timeout: float | None = None) -> Verdict:
        """Which response is better? ``score`` = P(A better), averaged over both orders."""
        return self.compare_batch([(prompt, response_a, response_b)], criteria=criteria, allow_tie=allow_tie,
                                  tie_margin=tie_margin, timeout=timeout)[0]  # type: ignore[return-value]

    def compare_batch(self, pairs: Sequence[Any], *, criteria: str | None = None, allow_tie: bool = False,
                      tie_margin: float = 0.0, task: str = "pairwise", on_error: OnError = "raise",
                      timeout: float | None = None, progress: bool = False) -> list[Verdict | ItemError]:
        """:meth:`compare` for many ``(prompt, response_a, response_b)`` tuples or mappings
        (the Compare RPC)."""
        examples = _pairs(pairs, criteria, allow_tie, tie_margin)
        if not examples:
            return []
        results: list[Verdict | ItemError] = []
        for start, part in _chunks(examples, self.settings.chunk):
            request = pb.CompareRequest(request_id=uuid.uuid4().hex[:12], task=task,
                                        pairs=[wire.example_to_pair(ex) for ex in part])
            results.extend(_shift(wire.results_from_proto(self._call("Compare", request, timeout).results), start))
        return _check(results, on_error)

    # -- pointwise and classification -----------------------------------------------------
    def score(self, prompt: str, response: str, *, scale: tuple[int, int] = (1, 5), criteria: str | None = None,
              source: str | None = None, reference: str | None = None, timeout: float | None = None) -> Verdict:
        """Rate one response; ``score`` = the expected rating on ``scale``."""
        item = _single(prompt, response, source=source, reference=reference)
        return self.score_batch([item], scale=scale, criteria=criteria, timeout=timeout)[0]  # type: ignore[return-value]

    def score_batch(self, items: Sequence[Any], *, scale: tuple[int, int] = (1, 5), criteria: str | None = None,
                    on_error: OnError = "raise", timeout: float | None = None,
                    progress: bool = False) -> list[Verdict | ItemError]:
        return self.judge("pointwise", _singles(items, "scale", scale, criteria), on_error=on_error, timeout=timeout)

    def classify(self, prompt: str, response: str, *, labels: Sequence[str] = ("yes", "no"),
                 criteria: str | None = None, source: str | None = None, timeout: float | None = None) -> Verdict:
        """Pick a label for ``response``; ``score`` = P(first label)."""
        item = _single(prompt, response, source=source)
        return self.classify_batch([item], labels=labels, criteria=criteria, timeout=timeout)[0]  # type: ignore[return-value]

    def classify_batch(self, items: Sequence[Any], *, labels: Sequence[str] = ("yes", "no"),
                       criteria: str | None = None, on_error: OnError = "raise", timeout: float | None = None,
                       progress: bool = False) -> list[Verdict | ItemError]:
        return self.judge("classification", _singles(items, "labels", list(labels), criteria), on_error=on_error,
                          timeout=timeout)

    # -- reranking ------------------------------------------------------------------------
    def rank(self, prompt: str, candidates: Sequence[str], strategy: str = "round_robin", *,
             criteria: str | None = None, options: Mapping[str, Any] | None = None, seed: int = 0,
             rounds: int | None = None, pair_task: str | None = None, point_task: str | None = None,
             timeout: float | None = None) -> RankResult:
        """Rank candidate responses to ``prompt`` on the server (Best-of-N)."""
        request = _rank_request(prompt, candidates, strategy, criteria, options, seed, rounds, pair_task, point_task)
        return _rank_result(self._call("Rank", request, timeout))

    # -- health ---------------------------------------------------------------------------
    def health(self, service: str = "", timeout: float = 5.0) -> str:
        """``SERVING``, ``NOT_SERVING`` (model loading, shutting down) or ``UNKNOWN``
        (the standard ``grpc.health.v1`` check; ``service=""`` is the whole server)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout,
                               metadata=self.settings.metadata)
        except grpc.RpcError as exc:
            raise _translate(exc, "Health.Check") from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def wait_until_serving(self, timeout: float = 60.0, service: str = SERVICE) -> None:
        """Block until health says SERVING; raise :class:`ServerError` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                last = self.health(service, timeout=max(0.1, min(2.0, deadline - time.monotonic())))
                if last == "SERVING":
                    return
            except ServerError as exc:
                last = exc.code.name
            time.sleep(0.1)
        raise ServerError(grpc.StatusCode.DEADLINE_EXCEEDED, f"not SERVING after {timeout:g}s (last: {last})",
                          "Health.Check")

    def close(self) -> None:
        self.channel.close()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its settings (a channel cannot be pickled): the copy opens its own
        channel, e.g. in a trainer's spawned reward worker. The pickle holds the token."""
        return (_rebuild, (type(self), self._init[0], self._init[1]))

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RewardClient(target={self.target!r})"


# -- the asyncio client --------------------------------------------------------------------
class AsyncRewardClient(_ClientBase):
    """:class:`RewardClient` for asyncio (``grpc.aio``); the same arguments and methods,
    as coroutines. Create it inside the event loop that uses it."""

    _aio = True

    async def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        attempts = _Attempts(self.settings, method, timeout)
        while True:
            try:
                return await self._calls[method](request, timeout=attempts.remaining(),
                                                 metadata=self.settings.metadata)
            except grpc.RpcError as exc:
                await asyncio.sleep(attempts.pause_after(exc))

    async def judge(self, task: Any, examples: Iterable[Mapping[str, Any]], *, on_error: OnError = "return",
                    timeout: float | None = None, **kwargs: Any) -> list[Verdict | ItemError]:
        """See :meth:`RewardClient.judge`; large calls are split into concurrent requests."""
        _check_judge_kwargs(kwargs)
        examples = list(examples)
        if not examples:
            return []
        name = _task_name(task)
        parts = _chunks(examples, self.settings.chunk)
        responses = await asyncio.gather(*(self._call("Score", _score_request(name, p), timeout) for _, p in parts))
        results: list[Verdict | ItemError] = []
        for (start, _), response in zip(parts, responses):
            results.extend(_shift(wire.results_from_proto(response.results), start))
        return _check(results, on_error)

    async def judge_many(self, jobs: Iterable[tuple[Any, Sequence[Mapping[str, Any]]]], *,
                         timeout: float | None = None) -> AsyncIterator[list[Verdict | ItemError]]:
        """Many requests over one bidirectional stream; yields results in input order.
        Requests still unanswered when the stream fails with UNAVAILABLE are sent again on a
        new stream, as by :meth:`RewardClient.judge_many`."""
        requests = [_score_request(_task_name(t), list(ex)) for t, ex in jobs]
        if not requests:
            return
        by_id = {r.request_id: i for i, r in enumerate(requests)}
        answers: dict[int, list[Verdict | ItemError]] = {}
        attempts = _Attempts(self.settings, "ScoreStream", timeout)
        following = 0
        while len(answers) < len(requests):
            todo = [r for i, r in enumerate(requests) if i not in answers]
            try:
                async for response in self._calls["ScoreStream"](iter(todo), timeout=attempts.remaining(),
                                                                 metadata=self.settings.metadata):
                    index = by_id.get(response.request_id)
                    if index is None:
                        continue
                    answers[index] = wire.results_from_proto(response.results)
                    while following in answers:
                        yield answers[following]
                        following += 1
            except grpc.RpcError as exc:
                await asyncio.sleep(attempts.pause_after(exc))
                continue
            if len(answers) < len(requests):
                raise ServerError(grpc.StatusCode.INTERNAL, "the stream ended before every request was answered",
                                  "ScoreStream")
        while following < len(requests):
            yield answers[following]
            following += 1

    async def task_types(self, timeout: float | None = None) -> dict[str, TaskTypeInfo]:
        return _task_types(await self._call("ListTaskTypes", pb.ListTaskTypesRequest(), timeout))

    async def compare(self, prompt: str, response_a: str, response_b: str, *, criteria: str | None = None,
                      allow_tie: bool = False, tie_margin: float = 0.0, timeout: float | None = None) -> Verdict:
        return (await self.compare_batch([(prompt, response_a, response_b)], criteria=criteria, allow_tie=allow_tie,
                                         tie_margin=tie_margin, timeout=timeout))[0]  # type: ignore[return-value]

    async def compare_batch(self, pairs: Sequence[Any], *, criteria: str | None = None, allow_tie: bool = False,
                            tie_margin: float = 0.0, task: str = "pairwise", on_error: OnError = "raise",
                            timeout: float | None = None, progress: bool = False) -> list[Verdict | ItemError]:
        examples = _pairs(pairs, criteria, allow_tie, tie_margin)
        if not examples:
            return []
        parts = _chunks(examples, self.settings.chunk)
        responses = await asyncio.gather(*(
            self._call("Compare", pb.CompareRequest(request_id=uuid.uuid4().hex[:12], task=task,
                                                    pairs=[wire.example_to_pair(ex) for ex in part]), timeout)
            for _, part in parts))
        results: list[Verdict | ItemError] = []
        for (start, _), response in zip(parts, responses):
            results.extend(_shift(wire.results_from_proto(response.results), start))
        return _check(results, on_error)

    async def score(self, prompt: str, response: str, *, scale: tuple[int, int] = (1, 5),
                    criteria: str | None = None, source: str | None = None, reference: str | None = None,
                    timeout: float | None = None) -> Verdict:
        item = _single(prompt, response, source=source, reference=reference)
        return (await self.score_batch([item], scale=scale, criteria=criteria, timeout=timeout))[0]  # type: ignore[return-value]

    async def score_batch(self, items: Sequence[Any], *, scale: tuple[int, int] = (1, 5),
                          criteria: str | None = None, on_error: OnError = "raise", timeout: float | None = None,
                          progress: bool = False) -> list[Verdict | ItemError]:
        return await self.judge("pointwise", _singles(items, "scale", scale, criteria), on_error=on_error,
                                timeout=timeout)

    async def classify(self, prompt: str, response: str, *, labels: Sequence[str] = ("yes", "no"),
                       criteria: str | None = None, source: str | None = None,
                       timeout: float | None = None) -> Verdict:
        item = _single(prompt, response, source=source)
        return (await self.classify_batch([item], labels=labels, criteria=criteria, timeout=timeout))[0]  # type: ignore[return-value]

    async def classify_batch(self, items: Sequence[Any], *, labels: Sequence[str] = ("yes", "no"),
                             criteria: str | None = None, on_error: OnError = "raise", timeout: float | None = None,
                             progress: bool = False) -> list[Verdict | ItemError]:
        return await self.judge("classification", _singles(items, "labels", list(labels), criteria),
                                on_error=on_error, timeout=timeout)

    async def rank(self, prompt: str, candidates: Sequence[str], strategy: str = "round_robin", *,
                   criteria: str | None = None, options: Mapping[str, Any] | None = None, seed: int = 0,
                   rounds: int | None = None, pair_task: str | None = None, point_task: str | None = None,
                   timeout: float | None = None) -> RankResult:
        request = _rank_request(prompt, candidates, strategy, criteria, options, seed, rounds, pair_task, point_task)
        return _rank_result(await self._call("Rank", request, timeout))

    async def health(self, service: str = "", timeout: float = 5.0) -> str:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout,
                                     metadata=self.settings.metadata)
        except grpc.RpcError as exc:
            raise _translate(exc, "Health.Check") from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def close(self) -> None:
        await self.channel.close()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self._init[0], self._init[1]))

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncRewardClient(target={self.target!r})"


__all__ = ["AsyncRewardClient", "FieldInfo", "RankResult", "RewardClient", "ServerError", "TaskTypeInfo",
           "channel_target", "channel_options"]
