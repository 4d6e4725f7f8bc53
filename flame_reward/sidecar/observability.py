"""Structured logs (JSON lines) and Prometheus text metrics for the scoring server.

Logs: every record of the ``flame_reward.sidecar`` logger carries an ``event`` (``rpc``,
``batch``, ``serving``, ...) and its fields (latency in ms, batch size, request id, status
code); :class:`JsonLinesFormatter` writes one JSON object per line.

Metrics: :class:`Metrics` keeps counters and histograms in memory (no dependency) and
renders the Prometheus text exposition format; :func:`serve_metrics` exposes it on
``/metrics`` over plain HTTP (``flame-reward serve --metrics-port``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOGGER_NAME = "flame_reward.sidecar"
log = logging.getLogger(LOGGER_NAME)


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event (cheap when the level is disabled)."""
    if log.isEnabledFor(level):
        log.log(level, name, extra={"fields": fields})


class JsonLinesFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "event": ..., **fields}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_json_logging(level: int | str = logging.INFO, stream: Any = None) -> logging.Handler:
    """Send the server's logs to ``stream`` (stderr) as JSON lines; returns the handler."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    return handler


# -- metrics -------------------------------------------------------------------------------
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in labels)
    return "{" + inner + "}"


class _Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1


class Metrics:
    """Counters, histograms and gauges of the scoring server (thread-safe)."""

    PREFIX = "flame_reward_server_"
    HELP = {
        "requests_total": ("counter", "RPCs answered, by method and status code."),
        "items_total": ("counter", "Items judged, by task type."),
        "item_errors_total": ("counter", "Items answered with a per-item error, by task type."),
        "head_verdicts_total": ("counter", "Verdicts a trained verdict head took part in, by task type and head "
                                           "(route name)."),
        "raw_verdicts_total": ("counter", "Verdicts of the raw model (no trained head took part), by task type."),
        "batches_total": ("counter", "Calls into the scoring core (one per micro-batch and task type)."),
        "dropped_total": ("counter", "Requests whose unjudged work was dropped, by reason (deadline, cancelled)."),
        "rejected_total": ("counter", "Requests refused, by reason (queue_full, too_large, inflight_bytes, "
                                       "unauthenticated)."),
        "rpc_latency_seconds": ("histogram", "RPC latency, by method."),
        "batch_items": ("histogram", "Items per call into the scoring core."),
        "queue_wait_seconds": ("histogram", "Time a request waited in the queue before its batch ran."),
        "queue_items": ("gauge", "Judgments admitted and not yet handed to the scoring core (queued or reserved)."),
        "serving": ("gauge", "1 when the model is loaded and the server accepts work."),
        "core_forwards_total": ("counter", "Forward passes run by the scoring core."),
        "core_tokens_total": ("counter", "Tokens scored by the scoring core."),
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self._hists: dict[str, dict[tuple[tuple[str, str], ...], _Histogram]] = {}
        self._gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + value

    def observe(self, name: str, value: float, buckets: Sequence[float] = LATENCY_BUCKETS, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._hists.setdefault(name, {})
            hist = series.get(key)
            if hist is None:
                hist = series[key] = _Histogram(buckets)
            hist.observe(value)

    def gauge(self, name: str, fn: Callable[[], float]) -> None:
        """A value read when the metrics are rendered."""
        with self._lock:
            self._gauges[name] = fn

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value (0 when never incremented); the sum over the other
        labels when only some are given."""
        want = set(labels.items())
        with self._lock:
            return sum(v for k, v in self._counters.get(name, {}).items() if want <= set(k))

    def histogram(self, name: str, **labels: str) -> tuple[int, float]:
        """(count, sum) of a histogram series."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            hist = self._hists.get(name, {}).get(key)
            return (hist.total, hist.sum) if hist else (0, 0.0)

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        with self._lock:
            counters = {k: dict(v) for k, v in self._counters.items()}
            hists = {k: dict(v) for k, v in self._hists.items()}
            gauges = dict(self._gauges)
        names = sorted(set(counters) | set(hists) | set(gauges))
        for name in names:
            full = self.PREFIX + name
            kind, text = self.HELP.get(name, ("untyped", name))
            lines += [f"# HELP {full} {text}", f"# TYPE {full} {kind}"]
            for key, value in sorted(counters.get(name, {}).items()):
                lines.append(f"{full}{_labels(key)} {value:g}")
            for key, hist in sorted(hists.get(name, {}).items()):
                for bound, count in zip(hist.buckets, hist.counts):
                    lines.append(f"{full}_bucket{_labels(key + (('le', f'{bound:g}'),))} {count}")
                lines.append(f"{full}_bucket{_labels(key + (('le', '+Inf'),))} {hist.total}")
                lines.append(f"{full}_sum{_labels(key)} {hist.sum:g}")
                lines.append(f"{full}_count{_labels(key)} {hist.total}")
            if name in gauges:
                try:
                    lines.append(f"{full} {float(gauges[name]()):g}")
                except Exception:  # a gauge must never break the scrape
                    lines.append(f"{full} NaN")
        return "\n".join(lines) + "\n"


def serve_metrics(metrics: Metrics, host: str, port: int) -> ThreadingHTTPServer:
    """Serve ``metrics.render()`` on ``http://host:port/metrics`` from a daemon thread.
    Call ``shutdown()`` and ``server_close()`` on the result to stop it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="flame-reward-metrics", daemon=True).start()
    return httpd


__all__ = ["JsonLinesFormatter", "LOGGER_NAME", "Metrics", "configure_json_logging", "event", "serve_metrics"]
