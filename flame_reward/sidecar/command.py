"""``flame-reward serve``: the gRPC scoring sidecar.

The port opens first with health NOT_SERVING; the model loads; health turns SERVING.
SIGTERM / SIGINT: health turns NOT_SERVING, new calls are refused, in-flight ones finish
(up to ``--grace`` seconds), then the process exits 0. Logs are JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.hookspecs import hookimpl


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from flame_reward.model_options import add_model_options

    p = subparsers.add_parser("serve", help="Serve verdicts over gRPC (the scoring sidecar; see docs/server.md).",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 or [::] for all)")
    g.add_argument("--port", type=int, default=50051, help="port (default 50051; 0 picks a free one)")
    g.add_argument("--port-file", default=None, help="write the bound port to this file once listening")
    g.add_argument("--max-batch-size", type=int, default=32, help="items per call into the scoring core (default 32)")
    g.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a request may wait for others to fill its batch (default 5)")
    g.add_argument("--max-queue", type=int, default=1024,
                   help="judgments admitted and not yet judged before new requests get RESOURCE_EXHAUSTED "
                        "(default 1024; a judgment is one item, one pair, one Rank game)")
    g.add_argument("--max-items", type=int, default=1024,
                   help="judgments per request; a Rank counts its tournament's pairs (default 1024)")
    g.add_argument("--max-field-chars", type=int, default=None,
                   help="characters per field: longer truncatable fields (responses, sources) are cut before "
                        "tokenizing, other over-long fields refused (default: 32 x --max-length)")
    g.add_argument("--max-batch-chars", type=int, default=65536,
                   help="characters per call into the scoring core, so long inputs are judged in small pieces "
                        "between which deadlines and cancellations are checked (default 65536)")
    g.add_argument("--max-batch-seconds", type=float, default=1.0,
                   help="about how long one call into the scoring core may take, from its recent pace (default 1; "
                        "0: no bound): large requests are judged in pieces of this size, between which other "
                        "requests are served and deadlines and cancellations are checked")
    g.add_argument("--max-message-mb", type=float, default=16.0, help="largest request or response (default 16 MiB)")
    g.add_argument("--max-inflight-mb", type=float, default=256.0,
                   help="requests in progress at once, in MiB: beyond it new requests get RESOURCE_EXHAUSTED "
                        "before they are parsed, which bounds memory (default 256)")
    g.add_argument("--max-concurrent-rpcs", type=int, default=256, help="RPCs in progress at once (default 256)")
    g.add_argument("--max-connection-age-s", type=float, default=None,
                   help="close client connections after this many seconds so clients re-resolve DNS "
                        "(finds new replicas behind a headless service)")
    g.add_argument("--grace", type=float, default=30.0, help="seconds in-flight requests get on shutdown (default 30)")
    g.add_argument("--tls-cert", default=None, help="PEM certificate chain (serve TLS; needs --tls-key)")
    g.add_argument("--tls-key", default=None, help="PEM private key")
    g.add_argument("--tls-client-ca", default=None, help="PEM CA bundle: require client certificates (mTLS)")
    g.add_argument("--token-file", default=None,
                   help="require 'authorization: Bearer <token>' with the token(s) in this file, one per line "
                        "(or set FLAME_REWARD_TOKEN)")
    g.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus text metrics on this port")
    g.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    h = p.add_argument_group("HTTP (OpenRLHF's POST /get_reward; needs the 'http' extra; see docs/ppo.md)")
    h.add_argument("--http", type=int, default=None, metavar="PORT",
                   help="also serve HTTP on this port (0: any free one) through the same batcher, auth and TLS")
    h.add_argument("--http-port-file", default=None, help="write the bound HTTP port to this file once listening")
    h.add_argument("--http-mode", choices=("pointwise", "reference"), default="pointwise",
                   help="/get_reward's default mode (a URL may override it: ?mode=reference)")
    h.add_argument("--http-option", action="append", default=[], metavar="KEY=VALUE",
                   help="other /get_reward defaults: scale=1-5, normalize=true, criteria=..., invalid_reward=0")
    h.add_argument("--no-grpc", action="store_true", help="serve HTTP only (with --http)")
    add_model_options(p)
    p.set_defaults(fn=cmd_serve)


def _tokens(args: argparse.Namespace) -> list[str]:
    if args.token_file:
        try:
            lines = Path(args.token_file).read_text().splitlines()
        except OSError as exc:
            raise InvalidInput("--token-file", f"cannot read {args.token_file}: {exc}") from None
        tokens = [t.strip() for t in lines if t.strip() and not t.startswith("#")]
        if not tokens:
            raise InvalidInput("--token-file", f"{args.token_file} holds no token")
        return tokens
    env = os.environ.get("FLAME_REWARD_TOKEN", "").strip()
    return [env] if env else []


def _write_port(path: str | None, port: int) -> None:
    if path:
        tmp = Path(path + ".tmp")
        tmp.write_text(f"{port}\n")
        tmp.replace(path)  # readers never see a half-written file


def _http_spec(args: argparse.Namespace) -> Any:
    from flame_reward.integrations.openrlhf import RewardSpec, parse_options

    options: dict[str, str] = {}
    for item in args.http_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput("--http-option", f"expected KEY=VALUE, got {item!r}")
        options[key.strip()] = value
    if "mode" in options:
        raise InvalidInput("--http-option", "set the mode with --http-mode")
    return RewardSpec(mode=args.http_mode, **parse_options(options))


def cmd_serve(args: argparse.Namespace) -> int:
    from flame_reward.sidecar.observability import configure_json_logging, log

    for name in ("max_batch_size", "max_queue", "max_items", "max_concurrent_rpcs", "max_batch_chars",
                 "max_field_chars"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InvalidInput("--" + name.replace("_", "-"), f"must be >= 1, got {value}")
    if not args.max_batch_seconds >= 0:
        raise InvalidInput("--max-batch-seconds", f"must be >= 0, got {args.max_batch_seconds}")
    for name in ("max_message_mb", "max_inflight_mb"):
        if not getattr(args, name) > 0:
            raise InvalidInput("--" + name.replace("_", "-"), f"must be > 0, got {getattr(args, name)}")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidInput("--tls-cert" if args.tls_cert is None else "--tls-key",
                           "TLS needs both --tls-cert and --tls-key")
    if args.no_grpc and args.http is None:
        raise InvalidInput("--no-grpc", "needs --http PORT (there would be nothing to serve)")
    spec = _http_spec(args) if args.http is not None else None
    tokens = _tokens(args)  # checked before logging is set up: a refusal leaves nothing behind
    level, propagate = log.level, log.propagate
    handler = configure_json_logging(getattr(logging, args.log_level.upper()))
    try:
        return _serve(args, tokens, spec)
    finally:
        # Run in-process (tests, embedding), the handler would outlive the stream it writes to.
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


def _serve(args: argparse.Namespace, tokens: list[str], spec: Any) -> int:
    from flame_reward.model_options import load_judge
    from flame_reward.sidecar.observability import event
    from flame_reward.sidecar.server import create_server

    host = args.host if not (":" in args.host and not args.host.startswith("[")) else f"[{args.host}]"
    server, port = create_server(
        f"{host}:{0 if args.no_grpc else args.port}", None, max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, max_items=args.max_items,
        max_field_chars=args.max_field_chars, max_batch_chars=args.max_batch_chars,
        max_batch_seconds=args.max_batch_seconds or None, max_message_bytes=int(args.max_message_mb * 2**20),
        max_inflight_bytes=int(args.max_inflight_mb * 2**20), max_concurrent_rpcs=args.max_concurrent_rpcs,
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca, token=tokens or None,
        max_connection_age_s=args.max_connection_age_s,
    )
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    graceful = False
    http = None
    try:
        if not args.no_grpc:  # with --no-grpc the service object only runs the batcher for HTTP
            server.start()
        if args.http is not None:
            from flame_reward.sidecar.http import serve_http

            http = serve_http(server.servicer, args.host.strip("[]"), args.http, tokens=tokens, spec=spec,
                              max_body_bytes=int(args.max_message_mb * 2**20), tls_cert=args.tls_cert,
                              tls_key=args.tls_key, tls_client_ca=args.tls_client_ca, grace_s=args.grace)
            _write_port(args.http_port_file, http.port)
        if args.metrics_port is not None:
            event("metrics", port=server.serve_metrics(args.host.strip("[]"), args.metrics_port))
        if not args.no_grpc:
            _write_port(args.port_file, port)
        event("loading", model=args.model or "embedded default", tls=args.tls_cert is not None, auth=bool(tokens))
        judge = load_judge(args)
        if not stop.is_set():
            server.set_judge(judge)
        while not stop.wait(1.0):
            pass
        event("signal", grace_s=args.grace)
        graceful = True
    finally:
        # Whatever ends the command (a signal, a model that fails to load), both faces stop.
        if http is not None:
            http.stop(args.grace + 5 if graceful else 10)
        server.stop(args.grace if graceful else 0).wait(args.grace + 35)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("flame-reward serve: stopped", file=sys.stderr)
    return 0
