"""The gRPC sidecar under hostile requests: does one request starve the others, and does
resident memory come back? Each scenario gets a fresh ``flame-reward serve`` subprocess
(embedded default unless ``--model``) on 127.0.0.1, so one scenario's leftovers cannot
spoil the next and the server's own RSS is read from ``/proc/<pid>/status``.

    python benchmarks/grpc_hostile.py                       # every scenario, this checkout
    cd /other/checkout && python /this/checkout/benchmarks/grpc_hostile.py --label before
                                # the server runs the code of the working directory

Scenarios (``--scenarios``):

* ``rank32``: a round-robin Rank of 32 candidates (496 pairs) with a 2 s deadline, then
  at once a normal Compare: how long the Compare takes (the Rank's leftover work delays it
  unless it is dropped), against the Compare's own time on an idle server.
* ``rank64``: a round-robin Rank of 64 candidates (2,016 pairs), with a 10 s deadline:
  refused (and how) or accepted.
* ``field15mb``: a Compare whose ``response_a`` holds 15,000,000 characters: its time,
  the server's peak and settled RSS, then a normal Compare's time.
* ``swiss_cancel``: a Swiss Rank of 32 candidates (5 rounds of 16 pairs) cancelled 1 s
  after it starts: how many judgments the server still runs afterwards (from its
  ``items_total`` metric).

Writes ``--out``/grpc_hostile_<label>.json and prints one line per figure. Figures depend
on the machine and what else runs on it: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """``flame-reward serve`` in a subprocess, with its metrics port and an RSS sampler."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="grpc-hostile-"))
        port_file = self.tmp / "port"
        self.metrics_port = _free_port()
        cmd = [sys.executable, "-m", "flame_reward.cli", "serve", "--host", "127.0.0.1", "--port", "0",
               "--port-file", str(port_file), "--metrics-port", str(self.metrics_port), "--log-level", "warning",
               "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
               "--threads", str(args.threads), "--grace", "0"]
        if args.model:
            cmd += ["--model", args.model]
        self.log = open(self.tmp / "serve.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 300
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server did not start; see {self.tmp / 'serve.log'}")
            time.sleep(0.1)
        self.target = f"127.0.0.1:{int(port_file.read_text())}"
        self.peak = 0.0
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._sampling.wait(0.1):
            try:
                self.peak = max(self.peak, rss_mb(self.proc.pid))
            except OSError:
                return

    def rss(self) -> float:
        return rss_mb(self.proc.pid)

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=30) as r:
            text = r.read().decode()
        full = "flame_reward_server_" + name
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith(full) and line[len(full):len(full) + 1] in ("{", " "))

    def stop(self) -> None:
        sampling = getattr(self, "_sampling", None)
        if sampling is not None:
            sampling.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.close()


def _client(target: str, timeout: float) -> Any:
    from flame_reward.sidecar.client import RewardClient

    return RewardClient(target, timeout=timeout, retries=0)


def timed(fn: Any) -> tuple[float, str]:
    """(seconds, outcome): ``OK`` or the status code and message."""
    started = time.perf_counter()
    try:
        fn()
        outcome = "OK"
    except Exception as exc:  # noqa: BLE001 (the outcome is the figure)
        code = getattr(exc, "code", None)
        outcome = f"{getattr(code, 'name', type(exc).__name__)}: {str(exc)[:200]}"
    return time.perf_counter() - started, outcome


def compare_time(target: str, timeout: float) -> tuple[float, str]:
    with _client(target, timeout) as c:
        return timed(lambda: c.compare("What is 2+2?", "4", "5"))


def baseline(server: Server, timeout: float) -> float:
    """The median of three normal Compares on the idle server (after one warm-up)."""
    compare_time(server.target, timeout)
    return statistics.median(compare_time(server.target, timeout)[0] for _ in range(3))


def _candidates(n: int) -> list[str]:
    return [f"Answer {i}: the capital of France is Paris, " + "indeed " * (i % 7) for i in range(n)]


def scenario_rank32(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    idle = baseline(server, args.timeout)
    with _client(server.target, args.timeout) as c:
        rank_s, rank_outcome = timed(lambda: c.rank("What is the capital of France?", _candidates(32), timeout=2.0))
    after_s, after_outcome = compare_time(server.target, args.timeout)
    return {"idle_compare_s": idle, "rank_s": rank_s, "rank_outcome": rank_outcome,
            "next_compare_s": after_s, "next_compare_outcome": after_outcome}


def scenario_rank64(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    with _client(server.target, args.timeout) as c:
        seconds, outcome = timed(lambda: c.rank("What is the capital of France?", _candidates(64), timeout=10.0))
    return {"rank_s": seconds, "rank_outcome": outcome}


def scenario_field15mb(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    idle = baseline(server, args.timeout)
    before = server.rss()
    server.peak = before
    big = ("lorem ipsum dolor sit amet " * 600_000)[:15_000_000]
    with _client(server.target, args.timeout) as c:
        seconds, outcome = timed(lambda: c.compare("Summarise the text.", big, "A short answer."))
    del big
    time.sleep(2.0)
    settled = server.rss()
    after_s, after_outcome = compare_time(server.target, args.timeout)
    return {"idle_compare_s": idle, "field_s": seconds, "field_outcome": outcome, "rss_before_mb": before,
            "rss_peak_mb": server.peak, "rss_after_mb": settled, "next_compare_s": after_s,
            "next_compare_outcome": after_outcome}


def scenario_swiss_cancel(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    from flame_reward.sidecar.wire import METHODS, pb

    idle = baseline(server, args.timeout)
    judged_before = server.metric("items_total")
    method = METHODS["Rank"]
    with grpc.insecure_channel(server.target) as channel:
        call = channel.unary_unary(method.path, request_serializer=method.request.SerializeToString,
                                   response_deserializer=method.response.FromString)
        future = call.future(pb.RankRequest(prompt="What is the capital of France?", candidates=_candidates(32),
                                            strategy="swiss"), timeout=args.timeout)
        time.sleep(1.0)
        future.cancel()
    cancelled_at = server.metric("items_total") - judged_before
    # The count moves when a core call ends: wait until it has not moved for as long as a
    # whole round (16 pairs) takes at the idle pace, so a running round is always seen.
    quiet = 20 * idle
    last, since = server.metric("items_total"), time.monotonic()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(2.0)
        now = server.metric("items_total")
        if now != last:
            last, since = now, time.monotonic()
    return {"idle_compare_s": idle, "swiss_pairs": 5 * 16, "judged_when_cancelled": cancelled_at,
            "judged_in_total": last - judged_before}


SCENARIOS = {"rank32": scenario_rank32, "rank64": scenario_rank64, "field15mb": scenario_field15mb,
             "swiss_cancel": scenario_swiss_cancel}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    ap.add_argument("--model", default=None, help="judge model (default: the embedded default)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900.0, help="the longest any call may take")
    ap.add_argument("--label", default="after", help="names the result file (e.g. before / after)")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()

    import flame_reward

    results: dict[str, Any] = {}
    load_before = os.getloadavg()
    for name in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        server = Server(args)
        try:
            with _client(server.target, 300) as probe:
                probe.wait_until_serving(timeout=300)
            results[name] = SCENARIOS[name](args, server)
        finally:
            server.stop()
        print(name, json.dumps(results[name], default=lambda x: round(x, 3)), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"label": args.label, "code": str(Path(flame_reward.__file__).parent),
              "setup": {"model": args.model or "embedded default", "batch_size": args.batch_size,
                        "max_length": args.max_length, "threads": args.threads},
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "loadavg_before": [round(x, 2) for x in load_before],
                          "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
              "results": results}
    path = out / f"grpc_hostile_{args.label}.json"
    path.write_text(json.dumps(record, indent=2, default=lambda x: round(x, 3)) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
