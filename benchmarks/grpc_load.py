"""gRPC sidecar under load: throughput and latency at 1, 8 and 32 concurrent clients, and
the ratio to in-process scoring of the same items in the same run.

    python benchmarks/grpc_load.py                   # embedded default, 64 real HH-RLHF pairs
    python benchmarks/grpc_load.py --tiny            # tiny random Llama: a quick mechanics check
    python benchmarks/grpc_load.py --server subprocess --pairs 128 --concurrency 1,8,32,64

What is measured (one judgment = one pair, both presentation orders):
- in-process: ``judge.judge("pairwise", all pairs)`` in one call, the core batching
  everything itself (the best case a caller holding the model can do);
- gRPC: N client threads, each with its own channel, send one pair per Compare request
  until every pair is judged; the server micro-batches across the concurrent requests.
  Throughput = pairs / wall time; latency per request (p50 / p99). Every gRPC verdict is
  checked against the in-process one (max |score difference| is reported).
The server runs in this process by default (sharing the loaded model, so client threads
and server compete for the same cores), or as ``flame-reward serve`` in a subprocess
(``--server subprocess``). Writes Markdown and JSON under ``--out``. Figures depend on the
machine and on whatever else runs on it: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any


def _tiny_judge(batch_size: int) -> Any:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from flame_reward.autorater import Autorater
    from flame_reward.models.backends import TorchBackend
    from flame_reward.models.embedded import embedded_model_dir
    from flame_reward.models.loading import LoadedModel
    from flame_reward.scoring import Scorer

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         tie_word_embeddings=True, initializer_range=0.5)
    loaded = LoadedModel(LlamaForCausalLM(config).eval(), tok, "tiny-random-llama", "<memory>", "cpu", "float32")
    return Autorater(Scorer(TorchBackend(loaded), tok, batch_size=batch_size, max_length=1024),
                     model_name="tiny-random-llama")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scraped_batches(metrics_url: str) -> tuple[int, float]:
    """(count, sum) of the server's batch_items histogram, from its /metrics page."""
    with urllib.request.urlopen(metrics_url, timeout=30) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        for key in ("count", "sum"):
            if line.startswith(f"flame_reward_server_batch_items_{key} "):
                values[key] = float(line.split()[-1])
    return int(values.get("count", 0)), values.get("sum", 0.0)


def _start_subprocess_server(args: argparse.Namespace) -> tuple[str, Any, str]:
    tmp = Path(tempfile.mkdtemp(prefix="grpc-load-"))
    port_file = tmp / "port"
    metrics_port = _free_port()
    cmd = [sys.executable, "-m", "flame_reward.cli", "serve", "--port", "0", "--port-file", str(port_file),
           "--batch-size", str(args.batch_size), "--max-length", "1024", "--max-batch-size", str(args.max_batch_size),
           "--max-wait-ms", str(args.max_wait_ms), "--max-batch-seconds", str(args.max_batch_seconds),
           "--metrics-port", str(metrics_port),
           "--log-level", "warning"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.model:
        cmd += ["--model", args.model]
    if args.backend != "torch":
        cmd += ["--backend", args.backend]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(tmp / "serve.log", "w"))
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the server did not start; see {tmp / 'serve.log'}")
        time.sleep(0.1)
    return f"127.0.0.1:{int(port_file.read_text())}", proc, f"http://127.0.0.1:{metrics_port}/metrics"


def run_level(target: str, examples: list[dict[str, Any]], clients: int, timeout: float) -> dict[str, Any]:
    from flame_reward.sidecar.client import RewardClient

    lock = threading.Lock()
    cursor = [0]
    latencies: list[float] = []
    verdicts: dict[int, Any] = {}
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def worker() -> None:
        with RewardClient(target, timeout=timeout, retries=2) as client:
            client.compare("warm", "up", "channel")  # connect before the clock starts
            barrier.wait()
            while True:
                with lock:
                    i = cursor[0]
                    cursor[0] += 1
                if i >= len(examples):
                    return
                started = time.perf_counter()
                try:
                    v = client.compare_batch([examples[i]])[0]
                except Exception as exc:  # noqa: BLE001 (reported)
                    errors.append(repr(exc))
                    continue
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    verdicts[i] = v

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"clients": clients, "seconds": wall, "pairs_per_s": len(verdicts) / wall,
            "p50_ms": 1000 * _percentile(latencies, 0.5), "p99_ms": 1000 * _percentile(latencies, 0.99),
            "errors": errors, "verdicts": verdicts}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--tiny", action="store_true", help="tiny random Llama (mechanics check, not a speed figure)")
    ap.add_argument("--model", default=None, help="judge model (default: the embedded default)")
    ap.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts (default 1,8,32)")
    ap.add_argument("--server", choices=["inprocess", "subprocess"], default="inprocess")
    ap.add_argument("--batch-size", type=int, default=8, help="rows per forward pass (both paths)")
    ap.add_argument("--max-batch-size", type=int, default=32, help="server: items per call into the core")
    ap.add_argument("--max-wait-ms", type=float, default=5.0, help="server: micro-batching wait")
    ap.add_argument("--max-batch-seconds", type=float, default=1.0,
                    help="server: about how long one call into the core may take, from its pace (0: no bound)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (both paths)")
    ap.add_argument("--backend", default="torch", help="runtime of the judge (both paths; see --backend of serve)")
    ap.add_argument("--baseline", choices=["each", "once"], default="each",
                    help="time in-process scoring again right before each gRPC level and compare each level with "
                         "its own baseline (default: on a shared machine the load drifts), or once at the start")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()

    import torch

    from flame_reward.autorater import Autorater
    from flame_reward.data import load_pairs

    records = load_pairs("hh-helpful", split="dev").records
    random.Random(0).shuffle(records)
    records = records[: args.pairs]
    examples = [{"prompt": r.prompt, "response_a": r.response_a, "response_b": r.response_b} for r in records]
    load_before = os.getloadavg()
    if args.tiny:
        if args.threads:
            torch.set_num_threads(args.threads)
        judge = _tiny_judge(args.batch_size)
        if args.server == "subprocess":
            raise SystemExit("--tiny needs --server inprocess (the tiny model exists only in this process)")
    else:
        judge = Autorater.from_pretrained(args.model, batch_size=args.batch_size, max_length=1024,
                                          threads=args.threads, backend=args.backend)

    judge.judge("pairwise", examples[:2])  # warm-up
    started = time.perf_counter()
    local = judge.judge("pairwise", examples)
    local_s = time.perf_counter() - started
    local_tput = len(examples) / local_s
    print(f"in-process: {len(examples)} pairs in {local_s:.2f}s = {local_tput:.2f} pairs/s", flush=True)

    server = proc = None
    metrics_url = ""
    if args.server == "inprocess":
        from flame_reward.sidecar import create_server

        server, port = create_server("127.0.0.1:0", judge, max_batch_size=args.max_batch_size,
                                     max_wait_ms=args.max_wait_ms, max_batch_seconds=args.max_batch_seconds or None)
        server.start()
        target = f"127.0.0.1:{port}"
    else:
        target, proc, metrics_url = _start_subprocess_server(args)
    from flame_reward.sidecar.client import RewardClient

    try:
        with RewardClient(target, timeout=300) as probe:
            probe.wait_until_serving(timeout=300)
            probe.compare_batch(examples[:2])  # warm-up
        rows = []
        for clients in [int(x) for x in args.concurrency.split(",") if x.strip()]:
            def batches() -> tuple[int, float]:
                return server.metrics.histogram("batch_items") if server is not None else _scraped_batches(metrics_url)

            baseline = local_tput
            if args.baseline == "each" and rows:
                t0 = time.perf_counter()
                judge.judge("pairwise", examples)
                baseline = len(examples) / (time.perf_counter() - t0)
                print(f"in-process again: {baseline:.2f} pairs/s", flush=True)
            before = batches()
            level = run_level(target, examples, clients, timeout=600)
            after = batches()
            diffs = [abs(level["verdicts"][i].score - local[i].score) for i in level["verdicts"]]
            calls = after[0] - before[0]
            level.update(baseline_pairs_per_s=baseline, ratio=level["pairs_per_s"] / baseline,
                         max_score_diff=max(diffs) if diffs else None,
                         mean_batch=((after[1] - before[1]) / calls) if calls else None)
            level.pop("verdicts")
            rows.append(level)
            print(f"{clients:>3} clients: {level['pairs_per_s']:.2f} pairs/s ({level['ratio']:.2f}x in-process "
                  f"{baseline:.2f}), "
                  f"p50 {level['p50_ms']:.0f} ms, p99 {level['p99_ms']:.0f} ms"
                  + (f", mean batch {level['mean_batch']:.1f}" if level["mean_batch"] else "")
                  + f", max |score diff| {level['max_score_diff']:.2e}"
                  + (f", {len(level['errors'])} errors" if level["errors"] else ""), flush=True)
    finally:
        if server is not None:
            server.stop(5).wait(30)
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    load_after = os.getloadavg()

    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
               "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
               "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after]}
    setup = {"model": "tiny-random-llama" if args.tiny else (args.model or "embedded default"),
             "backend": args.backend, "pairs": len(examples),
             "server": args.server, "batch_size": args.batch_size, "max_batch_size": args.max_batch_size,
             "max_wait_ms": args.max_wait_ms, "max_batch_seconds": args.max_batch_seconds}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "grpc_load_tiny" if args.tiny else "grpc_load"
    (out / f"{stem}.json").write_text(json.dumps({"machine": machine, "setup": setup, "in_process": {
        "seconds": local_s, "pairs_per_s": local_tput}, "grpc": rows}, indent=2))
    lines = [f"# gRPC load ({setup['model']}, {len(examples)} HH-RLHF helpful dev pairs, server {args.server})", "",
             f"Machine: {machine['platform']}, {machine['cpus']} CPUs, torch {machine['torch']} with "
             f"{machine['torch_threads']} threads; load average {machine['loadavg_before'][0]} before, "
             f"{machine['loadavg_after'][0]} after.", "",
             "In-process = `judge.judge(\"pairwise\", pairs)` in one call"
             + (", timed again right before each gRPC level (the ratio uses that level's own baseline)."
                if args.baseline == "each" else ", timed once at the start."), "",
             "| clients (1 pair/request) | gRPC pairs/s | in-process pairs/s | ratio | p50 ms | p99 ms | mean batch "
             "| max score diff |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        mean_batch = f"{r['mean_batch']:.1f}" if r["mean_batch"] else "-"
        diff = f"{r['max_score_diff']:.1e}" if r["max_score_diff"] is not None else "-"
        lines.append(f"| {r['clients']} | {r['pairs_per_s']:.2f} | {r['baseline_pairs_per_s']:.2f} | "
                     f"{r['ratio']:.2f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {mean_batch} | {diff} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
