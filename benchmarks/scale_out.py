"""Scale-out faces side by side, in one run: HTTP /get_reward, Ray Serve and Ray Data vs in-process.

    python benchmarks/scale_out.py                  # embedded default, 64 short real HH-RLHF items
    python benchmarks/scale_out.py --items 32 --skip serve

What is measured (pointwise ratings, one forward per item, the OpenRLHF PPO case):
- in-process: ``judge.judge("pointwise", items)`` in one call, timed again right before
  each contender (the ratio uses that contender's own baseline: the load on a shared
  machine drifts);
- HTTP: the ``flame-reward serve --http`` face (in this process, over the shared
  micro-batcher) answering 32 concurrent one-sample clients that call OpenRLHF's own
  ``SingleTurnAgentExecutor._fetch_rewards_via_http`` (a new aiohttp session per call, as
  OpenRLHF does); target >= 0.8x in-process;
- Ray Serve: one replica of ``flame_reward.integrations.ray_serve:app`` (its own model
  copy, ``@serve.batch``) with 32 concurrent handle calls; target >= 0.7x;
- Ray Data: ``--engine ray``'s ``judge_examples`` over the same items with 1 and then 2
  actors (each loading its own model: the wall time includes that), the ratio 2 vs 1, and
  the overhead per row against in-process.
Every verdict is checked against the in-process one (max |reward difference| reported).
Torch runs 1 thread everywhere (in this process and in each Ray actor). Writes Markdown
and JSON under ``--out``; the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

CLIENTS = 32


def _items(n: int, max_chars: int) -> list[dict[str, Any]]:
    from flame_reward.data import load_pairs

    out = []
    for r in load_pairs("hh-helpful", split="dev").records:
        if len(r.prompt) + len(r.response_a) <= max_chars and r.response_a.strip():
            out.append({"prompt": r.prompt.strip(), "response": r.response_a.strip()})
        if len(out) == n:
            return out
    raise SystemExit(f"only {len(out)} HH items are short enough")


def _baseline(judge: Any, items: list[dict[str, Any]]) -> tuple[float, list[float]]:
    started = time.perf_counter()
    verdicts = judge.judge("pointwise", items)
    return time.perf_counter() - started, [v.score for v in verdicts]


def _http(judge: Any, items: list[dict[str, Any]]) -> tuple[float, list[float], dict[str, float]]:
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    from flame_reward.sidecar.http import serve_http
    from flame_reward.sidecar.service import RewardServicer

    servicer = RewardServicer(judge, max_batch_size=32, max_wait_ms=5.0)
    http = serve_http(servicer, "127.0.0.1", 0)
    try:
        # HH transcripts carry no chat markup: with strip_markup off the judge reads exactly the
        # in-process items (OpenRLHF's query is prompt + response).
        executor = SingleTurnAgentExecutor(f"http://127.0.0.1:{http.port}/get_reward?strip_markup=false")
        queries = [(it["prompt"] + it["response"], it["prompt"]) for it in items]
        scores: list[float] = [0.0] * len(items)

        async def client(k: int) -> None:
            for i in range(k, len(items), CLIENTS):
                q, p = queries[i]
                (reply,) = await executor._fetch_rewards_via_http([q], [p], [None])
                scores[i] = reply["rewards"][0]

        async def run_all() -> None:
            await asyncio.gather(*(client(k) for k in range(CLIENTS)))

        started = time.perf_counter()
        asyncio.run(run_all())
        seconds = time.perf_counter() - started
        count, total = servicer.metrics.histogram("batch_items")
        return seconds, scores, {"batches": count, "mean_batch": total / max(1, count)}
    finally:
        http.stop()
        servicer.close()


def _serve(items: list[dict[str, Any]], model: str | None) -> tuple[float, float, list[float]]:
    from ray import serve

    from flame_reward.integrations.ray_serve import app

    args = {"max_length": "512", "batch_size": "8", "threads": "1", "num_cpus": "1", "max_batch_size": "32"}
    if model:
        args["model"] = model
    started = time.perf_counter()
    handle = serve.run(app(args), name="bench", route_prefix=None)
    handle.judge.remote("pointwise", items[0]).result(timeout_s=600)  # warm
    startup = time.perf_counter() - started
    scores: list[float] = [0.0] * len(items)

    async def client(k: int) -> None:
        for i in range(k, len(items), CLIENTS):
            scores[i] = (await handle.judge.remote("pointwise", items[i]))["score"]

    async def run_all() -> None:
        await asyncio.gather(*(client(k) for k in range(CLIENTS)))

    started = time.perf_counter()
    asyncio.run(run_all())
    seconds = time.perf_counter() - started
    serve.delete("bench")
    return seconds, startup, scores


def _ray_data(items: list[dict[str, Any]], actors: int, model: str | None) -> tuple[float, list[float]]:
    from flame_reward.integrations.ray_data import judge_examples

    options = {"model": model, "max_length": 512, "batch_size": 8, "threads": 1}
    started = time.perf_counter()
    scores = [r.score for r in judge_examples("pointwise", items, actors=actors, model_options=options,
                                              rows_per_call=16, progress=False)]
    return time.perf_counter() - started, scores


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--max-chars", type=int, default=700, help="longest prompt+response kept (short rows)")
    ap.add_argument("--model", default=None, help="judge model (default: the embedded default)")
    ap.add_argument("--skip", default="", help="comma-separated contenders to skip: http, serve, data")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    import ray
    import torch

    from flame_reward.autorater import Autorater

    torch.set_num_threads(1)
    items = _items(args.items, args.max_chars)
    load_before = os.getloadavg()
    judge = Autorater.from_pretrained(args.model, batch_size=8, max_length=512, threads=1)
    judge.judge("pointwise", items[:2])  # warm-up
    rows: list[dict[str, Any]] = []

    def record(name: str, seconds: float, base_s: float, scores: list[float], base: list[float], **extra: Any) -> None:
        row = {"contender": name, "seconds": seconds, "items_per_s": len(items) / seconds,
               "in_process_s": base_s, "in_process_items_per_s": len(items) / base_s,
               "ratio": base_s / seconds, "max_diff": max(abs(a - b) for a, b in zip(scores, base)), **extra}
        rows.append(row)
        print(json.dumps(row), flush=True)

    if "http" not in skip:
        base_s, base = _baseline(judge, items)
        seconds, scores, stats = _http(judge, items)
        record(f"HTTP /get_reward, {CLIENTS} one-sample clients", seconds, base_s, scores, base, **stats)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        if "serve" not in skip:
            base_s, base = _baseline(judge, items)
            seconds, startup, scores = _serve(items, args.model)
            record(f"Ray Serve, 1 replica, {CLIENTS} handle clients", seconds, base_s, scores, base,
                   startup_s=startup)
            from ray import serve

            serve.shutdown()
        if "data" not in skip:
            base_s, base = _baseline(judge, items)
            one_s, one = _ray_data(items, 1, args.model)
            two_s, two = _ray_data(items, 2, args.model)
            record("Ray Data, 1 actor (incl. model load)", one_s, base_s, one, base,
                   overhead_ms_per_row=1000 * (one_s - base_s) / len(items))
            record("Ray Data, 2 actors (incl. model load)", two_s, base_s, two, base,
                   overhead_ms_per_row=1000 * (two_s - base_s) / len(items), speedup_vs_1_actor=one_s / two_s)
    finally:
        ray.shutdown()
    load_after = os.getloadavg()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": f"{platform.platform()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
            "ray": ray.__version__, "model": judge.model_name, "items": len(items), "clients": CLIENTS,
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
            "command": " ".join(sys.argv)}
    (out / "scale_out.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"# Scale-out faces vs in-process ({meta['model']}, {len(items)} short HH-RLHF items, pointwise)", "",
             f"Machine: {meta['machine']}, torch {meta['torch']} with 1 thread everywhere, ray {meta['ray']}; "
             f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after. Command: `{meta['command']}`.",
             "", "In-process = `judge.judge(\"pointwise\", items)` in one call, timed again right before each "
             "contender; ratio = in-process seconds / contender seconds.", "",
             "| contender | seconds | items/s | in-process items/s | ratio | max diff | notes |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        notes = []
        if "mean_batch" in r:
            notes.append(f"{r['batches']} batches, mean {r['mean_batch']:.1f} items")
        if "startup_s" in r:
            notes.append(f"deploy + first call {r['startup_s']:.1f} s (not in the time)")
        if "overhead_ms_per_row" in r:
            notes.append(f"overhead {r['overhead_ms_per_row']:.0f} ms/row vs in-process")
        if "speedup_vs_1_actor" in r:
            notes.append(f"{r['speedup_vs_1_actor']:.2f}x the 1-actor run")
        lines.append(f"| {r['contender']} | {r['seconds']:.1f} | {r['items_per_s']:.2f} | "
                     f"{r['in_process_items_per_s']:.2f} | {r['ratio']:.2f} | {r['max_diff']:.1e} | {'; '.join(notes)} |")
    (out / "scale_out.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
